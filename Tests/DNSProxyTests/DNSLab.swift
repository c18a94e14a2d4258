import Capture
import DNSProxy
import DNSResolution
import DNSWire
import Logging
import NIOPosix
import Netfilter
import PodLab
import Synchronization
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// A scratch network namespace holding the DNS proxy (in-process, on an event loop whose thread lives in
/// the namespace) and, when asked, dnsmasq as the upstream nameserver on a loopback address of its own.
/// Every address dialled here exists only inside that namespace.
final class DNSLab: @unchecked Sendable {
    static let proxyEndpoint = Endpoint(IPAddress("127.0.0.1")!, 15053)
    static let upstreamEndpoint = Endpoint(IPAddress("127.0.0.2")!, 53)
    /// Nothing listens here: an upstream that is down.
    static let deadUpstream = Endpoint(IPAddress("127.0.0.3")!, 53)

    /// Names dnsmasq answers: `upstream.test` A, `nowhere.test` NXDOMAIN, `text.test` TXT, and
    /// `big.test` with 60 A records (about 1 KB, more than a plain UDP answer holds).
    static let upstreamAddress = "198.51.100.7"
    static let bigRecordCount = 60

    let namespace: PodLab.ScratchNamespace
    let group: MultiThreadedEventLoopGroup
    let store: LookupTableStore
    let counts = MetricCounts()
    private(set) var proxy: DNSProxyServer?
    private(set) var upstream: BackgroundProcess?
    private let files: TemporaryDirectory

    init(table: NameTable?, upstreams: [Endpoint] = [DNSLab.upstreamEndpoint], startUpstream: Bool = true,
         forwardInParallel: Bool = false, forwardTimeout: Duration = .seconds(2)) async throws {
        namespace = try PodLab.ScratchNamespace(prefix: "sluice-dns", loopbackUp: true)
        // Threads inherit their creator's network namespace: the loop's sockets are made in this one.
        group = try namespace.run { MultiThreadedEventLoopGroup(numberOfThreads: 1) }
        files = try TemporaryDirectory(prefix: "sluice-dns")
        store = LookupTableStore(table.map { Self.lookupTable($0) })
        if startUpstream { try startDnsmasq() }
        proxy = try await DNSProxyServer.start(
            DNSProxyConfiguration(listenAddresses: [Self.proxyEndpoint], upstreams: upstreams, forwardInParallel: forwardInParallel,
                                  forwardTimeout: forwardTimeout),
            store: store, metrics: counts.metrics, group: group, logger: Logger(label: "dns-test"))
    }

    static func lookupTable(_ table: NameTable) -> LookupTable {
        LookupTable(table, proxyDomain: "svc.cluster.local", podNamespace: "default",
                    searchDomains: ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"])
    }

    func shutdown() async {
        await proxy?.close()
        proxy = nil
        stopUpstream()
        try? await group.shutdownGracefully()
        files.remove()
    }

    // MARK: The upstream

    func startDnsmasq() throws {
        let hosts = (1...Self.bigRecordCount).map { "198.51.100.\(100 + $0) big.test" }.joined(separator: "\n") + "\n"
        try files.write("big-hosts", hosts)
        upstream = try BackgroundProcess("/usr/sbin/dnsmasq", [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root", "--pid-file=",
            "--listen-address=\(Self.upstreamEndpoint.address)", "--bind-interfaces", "--port=53",
            "--log-queries", "--log-facility=-",
            "--address=/upstream.test/\(Self.upstreamAddress)", "--address=/nowhere.test/",
            "--txt-record=text.test,\"from dnsmasq\"", "--addn-hosts=\(files.file("big-hosts"))",
        ], in: namespace.namespace, environment: Subprocess.defaultEnvironment, outputPath: files.file("dnsmasq.log"))
        // Ready when it answers; bounded in count and time.
        for _ in 0..<100 {
            if let answer = try? query("upstream.test", .a, server: Self.upstreamEndpoint, timeout: .milliseconds(200)),
               !answer.answers.isEmpty { return }
            usleep(50_000)
        }
        throw LabFailure(description: "dnsmasq did not start: \(upstream?.output() ?? "")")
    }

    func stopUpstream() {
        upstream?.signal(SIGTERM)
        _ = upstream?.waitForExit(timeout: .seconds(5))
        upstream = nil
    }

    var upstreamLog: String { (try? TextFile.read(files.file("dnsmasq.log"))) ?? "" }

    // MARK: Asking

    func query(_ name: String, _ type: DNSRecordType, server: Endpoint = DNSLab.proxyEndpoint, transport: DNSTransport = .udp,
               udpPayloadSize: UInt16? = nil, retryOverTCP: Bool = false, timeout: Duration = .seconds(3)) throws -> DNSMessage {
        guard let name = DNSName(name) else { throw LabFailure(description: "bad name \(name)") }
        return try namespace.run {
            try DNSClient.query(name, type: type, server: server, transport: transport, udpPayloadSize: udpPayloadSize,
                                retryOverTCP: retryOverTCP, timeout: timeout)
        }
    }

    /// Raw bytes to the proxy; the answer's bytes, or nil when none came within `timeout`.
    func exchange(_ bytes: [UInt8], transport: DNSTransport = .udp, timeout: Duration = .milliseconds(500)) throws -> [UInt8]? {
        try namespace.run { try? DNSClient.exchange(bytes, server: Self.proxyEndpoint, transport: transport, timeout: timeout) }
    }

    /// `dig` inside the namespace.
    func dig(_ arguments: [String]) throws -> String {
        let output = try Subprocess.run("/usr/bin/dig", ["@127.0.0.1", "-p", "15053", "+time=3", "+tries=1"] + arguments,
                                        in: namespace.namespace)
        guard output.status == 0 else { throw LabFailure(description: "dig \(arguments) failed: \(output)") }
        return output.standardOutput
    }

    /// Writes `table` as the watched file's new contents.
    func tableFile() -> String { files.file("name-table.json") }
}

/// Runs `body` with a lab and shuts the lab down (proxy, event loop, dnsmasq, files) before returning,
/// whether `body` succeeded or threw.
func withDNSLab(table: NameTable?, upstreams: [Endpoint] = [DNSLab.upstreamEndpoint], startUpstream: Bool = true,
                forwardInParallel: Bool = false, forwardTimeout: Duration = .seconds(2),
                _ body: (DNSLab) async throws -> Void) async throws {
    let lab = try await DNSLab(table: table, upstreams: upstreams, startUpstream: startUpstream,
                               forwardInParallel: forwardInParallel, forwardTimeout: forwardTimeout)
    do {
        try await body(lab)
    } catch {
        await lab.shutdown()
        throw error
    }
    await lab.shutdown()
}

/// The proxy's metrics, counted.
final class MetricCounts: Sendable {
    private let values = Mutex<[String: Int]>([:])

    subscript(_ name: String) -> Int { values.withLock { $0[name, default: 0] } }

    private func add(_ name: String) { values.withLock { $0[name, default: 0] += 1 } }

    var metrics: DNSProxyMetrics {
        DNSProxyMetrics(request: { self.add("requests") }, upstreamRequest: { self.add("upstream") },
                        upstreamFailure: { self.add("failures") }, upstreamDuration: { _ in self.add("durations") })
    }
}

/// The mesh's names used throughout: a Kubernetes service in another namespace, one in the pod's
/// namespace with both families, an external ServiceEntry, a wildcard, and a service with 40 addresses.
let meshTable = NameTable(table: [
    "reviews.bookinfo.svc.cluster.local": .init(ips: ["198.51.100.10"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo"),
    "productpage.default.svc.cluster.local": .init(ips: ["198.51.100.20", "2001:db8:5::20"], registry: "Kubernetes",
                                                   shortname: "productpage", namespace: "default"),
    "api.example.test": .init(ips: ["203.0.113.30"], registry: "External"),
    "*.wild.example.test": .init(ips: ["203.0.113.40"], registry: "External"),
    "many.default.svc.cluster.local": .init(ips: (1...40).map { "203.0.113.\(100 + $0)" }, registry: "Kubernetes",
                                            shortname: "many", namespace: "default"),
])

func addresses(_ message: DNSMessage) -> [String] {
    message.answers.compactMap { record in
        guard case .address(let bytes) = record.data else { return nil }
        return IPAddress(family: bytes.count == 4 ? .ipv4 : .ipv6, bytes: bytes).description
    }
}

func cnameTargets(_ message: DNSMessage) -> [String] {
    message.answers.compactMap { record in
        guard case .name(let target) = record.data, record.type == .cname else { return nil }
        return target.description
    }
}
