// swift-tools-version:6.0
import PackageDescription

// The init side (sluice-init and everything it links) deliberately depends on nothing but the
// toolchain and Debian's libnftnl/libmnl/libcap: it runs in every pod's init container and must
// build fast and stay small. The agent's heavy dependencies (gRPC, NIO) belong to other targets.
let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sluice-init", targets: ["sluice-init"]),
        .executable(name: "sluice-demo", targets: ["sluice-demo"]),
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
        .target(name: "Netfilter", dependencies: ["Capture", "CNetfilter", "CCapabilities"]),
        // The sluice-init command: reads the environment, runs the pure pipeline, applies at the edge.
        .target(name: "SluiceInit", dependencies: ["Capture", "Netfilter"]),
        .executableTarget(name: "sluice-init", dependencies: ["SluiceInit"]),
        // A pod and a peer in network namespaces joined by veth, and probes that send real packets:
        // shared by the demo and the kernel tests.
        .target(name: "PodLab", dependencies: ["Capture", "Netfilter"]),
        .executableTarget(name: "sluice-demo", dependencies: ["SluiceInit", "PodLab", "Netfilter", "Capture"]),
        // Snapshots and fixtures are read from the source tree (#filePath), so re-recording writes them there.
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "SluiceInit"], exclude: ["Snapshots"]),
        // PodLab for ScratchNamespace and the nft helpers shared with the kernel tests.
        .testTarget(name: "NetfilterTests", dependencies: ["Capture", "Netfilter", "PodLab"]),
        .testTarget(name: "KernelTests", dependencies: ["Capture", "Netfilter", "SluiceInit", "PodLab"]),
        // Istio's golden rulesets against Sluice's, probe by probe, with real packets.
        .testTarget(name: "ConformanceTests", dependencies: ["Capture", "Netfilter", "PodLab"], exclude: ["Fixtures"]),
    ]
)
