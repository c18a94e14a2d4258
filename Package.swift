// swift-tools-version:6.0
import PackageDescription

// The init side (sluice-init and everything it links) deliberately depends on nothing but the
// toolchain and Debian's libnftnl/libmnl/libcap: it runs in every pod's init container and must
// build fast and stay small. The agent's dependencies (NIO, service lifecycle, logging, metrics)
// belong to the agent's targets only, and none of them pulls in Foundation.
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
]

let grpc: [Target.Dependency] = [
    .product(name: "GRPCCore", package: "grpc-swift-2"),
    .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
    .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
]
let x509: [Target.Dependency] = [
    .product(name: "X509", package: "swift-certificates"),
    .product(name: "Crypto", package: "swift-crypto"),
    .product(name: "_CryptoExtras", package: "swift-crypto"),
    .product(name: "SwiftASN1", package: "swift-asn1"),
]

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sluice-init", targets: ["sluice-init"]),
        .executable(name: "pilot-agent", targets: ["pilot-agent"]),
        .executable(name: "sluice-proxy", targets: ["sluice-proxy"]),
        .executable(name: "sluice-demo", targets: ["sluice-demo"]),
        .executable(name: "sluice-sds", targets: ["sluice-sds"]),
        .executable(name: "sluice-dns", targets: ["sluice-dns"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // SDS and the CA client: gRPC over HTTP/2 (NIO transport, TLS through swift-nio-ssl), protobuf
        // messages, and X.509 for keys, CSRs and the local CA.
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // C libraries from Debian: libnftnl + libmnl (nftables netlink) and libcap.
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        .systemLibrary(
            name: "CCapabilities",
            providers: [.apt(["libcap-dev"])]
        ),
        // Pure: flags + env -> validated config -> ruleset model -> nft text. No syscalls.
        .target(name: "Capture"),
        // Kernel edge: the only module that speaks netlink (nftables and rtnetlink) or enters namespaces.
        .target(name: "Netfilter", dependencies: ["Capture", "Sockets", "TextFiles", "CNetfilter", "CCapabilities"]),
        // Socket addresses as the socket API spells them, and conntrack's original destination.
        .target(name: "Sockets", dependencies: ["Capture"]),
        // Small whole files as text (configuration, resolv.conf, procfs), read one way everywhere.
        .target(name: "TextFiles"),
        // The sluice-init command: reads the environment, runs the pure pipeline, applies at the edge.
        .target(name: "SluiceInit", dependencies: ["Capture", "Netfilter", "Sockets", "TextFiles", "ConfigFormats"]),
        .executableTarget(name: "sluice-init", dependencies: ["SluiceInit"]),
        // A pod and a peer in network namespaces joined by veth, and probes that send real packets:
        // shared by the demo and the kernel tests.
        .target(name: "PodLab", dependencies: ["Capture", "Netfilter", "Sockets", "TextFiles"]),
        .executableTarget(name: "sluice-demo", dependencies: [
            "SluiceInit", "PodLab", "Netfilter", "Capture", "SecretDiscovery", "WorkloadIdentity", "DNSProxy", "DNSWire",
        ]),

        // --- The agent (pilot-agent) ---
        // Pure: ordered JSON values, a strict JSON parser and printer, YAML read into the same values.
        // Standard library only: Foundation, statically linked, would cost the agent 7-10 MB resident.
        .target(name: "ConfigFormats"),
        // Pure: pilot-agent's command line, environment, ProxyConfig merge, node identity, paths under --root.
        .target(name: "AgentConfig", dependencies: ["ConfigFormats", "Capture"]),
        // Pure: the Envoy v3 bootstrap and the data plane's command line.
        .target(name: "Bootstrap", dependencies: ["ConfigFormats"]),
        // Network edge: a small HTTP/1.1 server and client on SwiftNIO (status server, admin calls, probes).
        .target(name: "AgentHTTP", dependencies: ["Capture"] + nio),
        // The status server on 15020: readiness, merged metrics, drain/quit, application probes.
        .target(name: "StatusServer", dependencies: [
            "AgentHTTP", "TextFiles",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Process edge: spawning, reaping (also as PID 1), signal forwarding, restart and drain policies.
        .target(name: "Supervisor", dependencies: [
            "CCapabilities",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The agent: wires configuration, bootstrap, supervisor and status server into one ServiceGroup.
        .target(name: "Agent", dependencies: [
            "AgentConfig", "Bootstrap", "AgentHTTP", "StatusServer", "Supervisor", "SluiceInit", "ConfigFormats",
            "Capture", "Netfilter", "Sockets", "TextFiles", "CCapabilities",
            "SecretDiscovery", "IstioCA", "WorkloadIdentity", "DNSProxy", "DNSResolution",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ] + nio),
        .executableTarget(name: "pilot-agent", dependencies: ["Agent"]),
        // Generated once from Protos/ by scripts/generate-protos and committed: Envoy's SDS and discovery
        // messages and Istio's CA service, a subset written for Sluice with the upstream packages and numbers.
        .target(name: "SDSProtos", dependencies: [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ]),
        // Pure: SPIFFE identities, workload keys and CSRs, the local CA, chain checks, the rotation policy.
        .target(name: "WorkloadIdentity", dependencies: ["CalendarTime"] + x509),
        // Network edge: Istio's CA (IstioCertificateService/CreateCertificate) over gRPC and TLS.
        .target(name: "IstioCA", dependencies: [
            "WorkloadIdentity", "SDSProtos", "TextFiles", .product(name: "Logging", package: "swift-log"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ] + grpc),
        // The SDS server on the workload socket: Envoy's SotW protocol, the secret cache, file and CA
        // sources, rotation pushes, and the peer-credential check.
        .target(name: "SecretDiscovery", dependencies: [
            "WorkloadIdentity", "SDSProtos", "TextFiles", .product(name: "Logging", package: "swift-log"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ] + grpc + nio),
        // Asks a running agent for its secrets, as the data plane would: for node admins and benchmarks.
        .executableTarget(name: "sluice-sds", dependencies: ["SecretDiscovery", "WorkloadIdentity"]),
        // The SDS push benchmark's in-process side: one store, one server, many streams, one rotation.
        .executableTarget(name: "sds-push-bench", dependencies: ["SecretDiscovery", "WorkloadIdentity", "SDSProtos"] + nio,
                          path: "Benchmarks/SDSPushBench"),
        // A stand-in data plane for the supervisor's tests: an Envoy-style admin API and nothing else.
        .executableTarget(name: "sluice-test-dataplane", dependencies: nio),

        // --- The DNS proxy (pilot-agent, 15053) ---
        // Pure: the DNS wire format (names with compression, EDNS0, truncation, TCP framing), strict on input.
        .target(name: "DNSWire"),
        // Pure: Istio's name table and the agent's lookup table with search-domain aliases (resolv.conf is Capture's ResolvConf).
        .target(name: "DNSResolution", dependencies: ["Capture", "ConfigFormats"]),
        // Network edge: the UDP and TCP listeners, upstream forwarding, the table file watch.
        .target(name: "DNSProxy", dependencies: [
            "DNSWire", "DNSResolution", "Capture", "Sockets", "TextFiles", .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // Asks a DNS server one question over UDP or TCP and prints the answer: for node admins and tests.
        .executableTarget(name: "sluice-dns", dependencies: ["DNSProxy", "DNSWire"]),

        // --- The data plane (sluice-proxy) ---
        // Kernel calls Swift's Glibc module does not export (epoll, accept4, splice, pipe2), compiled
        // with _GNU_SOURCE behind plain C signatures.
        .target(name: "CSockets", cSettings: [.define("_GNU_SOURCE")]),
        // Pure: Envoy's command line and the subset of the v3 bootstrap sluice-proxy honours.
        .target(name: "DataPlaneConfig", dependencies: ["ConfigFormats", "Capture"]),
        // Pure: calendar dates from epoch days, for log lines and certificate times without Foundation.
        .target(name: "CalendarTime"),
        // Pure: Envoy-named counters and gauges, the stats matcher, tag extraction, admin renderings.
        .target(name: "ProxyStats"),
        // Kernel edge: the transparent L4 path, one epoll loop per worker, bytes moved with splice(2).
        .target(name: "Forwarding", dependencies: [
            "CSockets", "Sockets", "Capture", "ProxyStats", .product(name: "Logging", package: "swift-log"),
        ]),
        // The data plane: admin API, HTTP route listeners, drain and lifecycle around the forwarding engine.
        .target(name: "DataPlane", dependencies: [
            "DataPlaneConfig", "ProxyStats", "Forwarding", "AgentHTTP", "ConfigFormats", "Capture", "Sockets", "CSockets",
            "TextFiles", "CalendarTime",
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        .executableTarget(name: "sluice-proxy", dependencies: ["DataPlane"]),

        // Snapshots and fixtures are read from the source tree (#filePath), so re-recording writes them there.
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "SluiceInit"], exclude: ["Snapshots"]),
        // PodLab for ScratchNamespace and the nft helpers shared with the kernel tests.
        .testTarget(name: "NetfilterTests", dependencies: ["Capture", "Netfilter", "PodLab"]),
        .testTarget(name: "KernelTests", dependencies: ["Capture", "Netfilter", "SluiceInit", "PodLab"]),
        // Istio's golden rulesets against Sluice's, probe by probe, with real packets.
        .testTarget(name: "ConformanceTests", dependencies: ["Capture", "Netfilter", "PodLab", "SluiceInit"], exclude: ["Fixtures"]),
        .testTarget(name: "ConfigFormatsTests", dependencies: ["ConfigFormats"]),
        .testTarget(name: "AgentConfigTests", dependencies: ["AgentConfig", "ConfigFormats"]),
        .testTarget(name: "BootstrapTests", dependencies: ["Bootstrap", "ConfigFormats"], exclude: ["Snapshots"]),
        .testTarget(name: "StatusServerTests", dependencies: [
            "StatusServer", "AgentHTTP", "AgentConfig", "ConfigFormats", .product(name: "Logging", package: "swift-log"),
        ] + nio),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor"]),
        .testTarget(name: "WorkloadIdentityTests", dependencies: ["WorkloadIdentity"] + x509),
        // A CA server implementing CreateCertificate over TLS with token checks, and the client against it.
        .testTarget(name: "IstioCATests", dependencies: [
            "IstioCA", "WorkloadIdentity", "SDSProtos", "TextFiles", "PodLab", .product(name: "Logging", package: "swift-log"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ] + grpc + x509),
        // A real gRPC client on the workload socket: first responses, ACK/NACK, pushes, file reloads, peer credentials.
        .testTarget(name: "SecretDiscoveryTests", dependencies: [
            "SecretDiscovery", "WorkloadIdentity", "SDSProtos", "IstioCA", "TextFiles", "PodLab",
            .product(name: "Logging", package: "swift-log"),
        ] + grpc + x509 + nio),
        .testTarget(name: "AgentTests", dependencies: [
            "Agent", "AgentConfig", "AgentHTTP", "Supervisor", "PodLab", "Netfilter", "TextFiles", "SecretDiscovery", "WorkloadIdentity",
        ]),
        .testTarget(name: "DNSWireTests", dependencies: ["DNSWire"]),
        .testTarget(name: "DNSResolutionTests", dependencies: ["DNSResolution", "Capture", "ConfigFormats"]),
        // dig, dnsmasq and the proxy in a scratch netns; thousands of mutated packets.
        .testTarget(name: "DNSProxyTests", dependencies: [
            "DNSProxy", "DNSWire", "DNSResolution", "Capture", "PodLab", "Sockets", "TextFiles", .product(name: "Logging", package: "swift-log"),
        ] + nio),
        .testTarget(name: "DataPlaneConfigTests", dependencies: ["DataPlaneConfig", "ConfigFormats", "Capture"]),
        .testTarget(name: "ProxyStatsTests", dependencies: ["ProxyStats", "TextFiles"]),
        // Optimised even in debug builds: the bulk tests hash 100 MB several times, which unoptimised
        // Swift does twenty times slower.
        .testTarget(
            name: "ForwardingTests", dependencies: ["Forwarding", "ProxyStats", "Sockets", "Capture", "PodLab", "Netfilter"],
            swiftSettings: [.unsafeFlags(["-O"])]),
        // The whole sidecar: sluice-init, pilot-agent and sluice-proxy as built, in a pod and a peer netns.
        .testTarget(name: "SidecarTests", dependencies: ["PodLab", "Capture", "Netfilter"]),
        .testTarget(name: "DataPlaneTests", dependencies: [
            "DataPlane", "DataPlaneConfig", "ProxyStats", "Forwarding", "AgentHTTP", "ConfigFormats", "PodLab",
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
    ]
)
