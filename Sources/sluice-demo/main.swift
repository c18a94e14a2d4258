// sluice-demo: the whole sidecar on an embedded default. It builds a pod and a peer in network
// namespaces, runs the real `sluice-init` in the pod with the injector's default flags, starts
// `pilot-agent proxy sidecar` (as root; it switches to UID 1337) which starts `sluice-proxy`, sends
// real HTTP requests both ways and a DNS query the agent's proxy answers, reads the proxy's stats, and
// stops the agent with SIGTERM while a request is in flight. It prints a report and exits 0 only if
// every check passed.
import Capture
import DNSProxy
import DNSWire
import FoundationEssentials
import Netfilter
import PodLab
import SecretDiscovery
import Synchronization
import WorkloadIdentity
#if canImport(Glibc)
import Glibc
#endif

/// To fd 2 directly: Swift 6 treats C's `stderr` global as shared mutable state.
func printError(_ message: String) {
    let bytes = Array("sluice-demo: \(message)\n".utf8)
    _ = write(2, bytes, bytes.count)
}

func fail(_ message: String) -> Never {
    printError(message)
    exit(1)
}

func indented(_ text: String, by prefix: String = "    ") -> String {
    text.split(separator: "\n").map { prefix + $0 }.joined(separator: "\n")
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

/// Every check the demo makes, printed as it goes and counted at the end.
final class Report {
    private(set) var passed = 0
    private(set) var failed: [String] = []

    func check(_ label: String, _ detail: @autoclosure () -> String = "", _ condition: Bool) {
        let text = detail()
        print("  \(condition ? "✔" : "✘") \(label)\(text.isEmpty ? "" : "  — \(text)")")
        if condition { passed += 1 } else { failed.append(label) }
    }
}

/// An HTTP exchange for the report: the status and the first line of the body, or the error.
func describe(_ result: Result<LabHTTP.Response, any Error>) -> String {
    switch result {
    case .success(let response): "HTTP \(response.status): \(response.body.split(separator: "\n").first ?? "")"
    case .failure(let error): "failed: \(error)"
    }
}

func attempt(_ body: () throws -> LabHTTP.Response) -> Result<LabHTTP.Response, any Error> {
    Result { try body() }
}

func succeeded(_ result: Result<LabHTTP.Response, any Error>, bodyContains text: String) -> Bool {
    if case .success(let response) = result { return response.status == 200 && response.body.contains(text) }
    return false
}

/// A request run on its own thread, to be in flight while the agent is stopped.
final class InFlightRequest: Sendable {
    private final class Outcome: Sendable {
        let value = Mutex<(result: Result<LabHTTP.Response, any Error>, took: Duration)?>(nil)
    }

    private let outcome = Outcome()
    private let thread: LabThread

    init(_ work: @escaping @Sendable () -> Result<LabHTTP.Response, any Error>) {
        let outcome = self.outcome
        thread = LabThread {
            let start = ContinuousClock.now
            let result = work()
            outcome.value.withLock { $0 = (result, ContinuousClock.now - start) }
        }
    }

    func wait() -> (result: Result<LabHTTP.Response, any Error>, took: Duration) {
        thread.join()
        return outcome.value.withLock { $0! }
    }
}

guard geteuid() == 0 else { fail("needs root: it creates network namespaces and programs nftables in them") }
let executables: SidecarLab.Executables
do {
    executables = try SidecarLab.Executables.built()
} catch {
    fail("\(error) (build everything first: swift build)")
}

print("Sluice demo: one pod with its sidecar, and a peer, in network namespaces\n")
let started = ContinuousClock.now
// DNS capture on, as with `ISTIO_META_DNS_CAPTURE=true`: the pod's resolv.conf names a cluster DNS on the
// peer, and the agent answers the mesh's names from its name table (istiod's NDS push, as a file here).
let clusterDNS = Endpoint(PodLab.externalIPv4[1], 53)
let dnsFiles: TemporaryDirectory
do {
    dnsFiles = try TemporaryDirectory(prefix: "sluice-demo-dns", mode: 0o755)
    try dnsFiles.write("resolv.conf", "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver \(clusterDNS.address)\noptions ndots:5\n", mode: 0o644)
    try dnsFiles.write("name-table.json", #"{"table": {"reviews.default.svc.cluster.local": {"ips": ["198.51.100.10"], "registry": "Kubernetes", "shortname": "reviews", "namespace": "default"}}}"#, mode: 0o644)
} catch {
    fail("cannot write the demo's resolv.conf and name table: \(error)")
}
let dnsCaptureArguments = ["--redirect-dns", "--resolv-conf", dnsFiles.file("resolv.conf")]
let sidecar: SidecarLab
do {
    // Dual-stack, so IPv6 is captured and the proxy listens on [::] too.
    sidecar = try SidecarLab(prefix: "sluice-demo", executables: executables,
                             environment: ["ISTIO_DUAL_STACK": "true", "ISTIO_META_DNS_CAPTURE": "true",
                                           "SLUICE_RESOLV_CONF": dnsFiles.file("resolv.conf"), "SLUICE_NAME_TABLE": dnsFiles.file("name-table.json")],
                             captureArguments: dnsCaptureArguments)
} catch {
    dnsFiles.remove()
    fail("cannot build the lab: \(error)")
}
let report = Report()
let lab = sidecar.lab
print("pod   netns \(lab.podNamespaceName): eth0 \(PodLab.podIPv4), \(PodLab.podIPv6); app (uid 1000) serving HTTP on :\(SidecarLab.appPort)")
print("peer  netns \(lab.peerNamespaceName): HTTP service on \(SidecarLab.peerService) and \(SidecarLab.peerServiceIPv6); "
    + "the app's Service \(SidecarLab.appService) leads back to the pod\n")

let quoted = (CaptureConfig.injectorDefaultArguments + ["--dual-stack"] + dnsCaptureArguments).map { $0.isEmpty || $0 == "*" ? "'\($0)'" : $0 }
print("1. Capture rules: sluice-init \(quoted.joined(separator: " "))")
print(indented(sidecar.captureOutput))

print("\n2. Sidecar: pilot-agent proxy sidecar (switches to uid 1337) → sluice-proxy")
let ready = sidecar.waitUntilReady()
report.check("ready: 127.0.0.1:15021/healthz/ready answered 200", "after \(milliseconds(ContinuousClock.now - started)) ms from the start of the demo", ready)
if !ready {
    print(indented(sidecar.agentLog))
}

// The workload certificate, as the data plane would fetch it over SDS.
let sdsSocket = sidecar.root + "/var/run/secrets/workload-spiffe-uds/socket"
let workloadCertificate: Result<String, any Error> = await {
    do {
        let client = try SecretDiscoveryClient(socketPath: sdsSocket)
        let response = try await client.fetch(["default", "ROOTCA"])
        await client.close()
        let secrets = try response.secrets()
        guard secrets.count == 2, case .tlsCertificate(let certificate)? = secrets[0].type else {
            return .failure(WorkloadIdentityError("the answer lacks default or ROOTCA"))
        }
        let chain = try CertificateChain(pem: String(decoding: certificate.certificateChain.inlineBytes, as: UTF8.self))
        return .success("\(chain.leafURIs.joined(separator: " ")), valid until \(chain.notAfter)")
    } catch {
        return .failure(error)
    }
}()
let expectedIdentity = "spiffe://cluster.local/ns/default/sa/demo-app"
report.check("SDS on the workload socket (uid 1337, 0600): default is \(expectedIdentity), from the local CA",
             { switch workloadCertificate { case .success(let text): text; case .failure(let error): "\(error)" } }(),
             { if case .success(let text) = workloadCertificate { return text.hasPrefix(expectedIdentity + ",") } else { return false } }())

// The app's lookup, sent where its resolv.conf says and captured to the agent's DNS proxy on 15053.
let lookup: Result<DNSMessage, any Error> = Result {
    try lab.pod.run(as: .app) {
        try DNSClient.query(DNSName("reviews.default.svc.cluster.local")!, type: .a, server: clusterDNS)
    }
}
report.check("app → \(clusterDNS) (its resolv.conf's nameserver): reviews.default.svc.cluster.local answered by the agent's DNS proxy (15053) from its name table",
             { switch lookup {
               case .success(let answer): answer.answers.map(DNSPresentation.render).joined(separator: ", ")
                   + (answer.header.isAuthoritative ? " (authoritative)" : "")
               case .failure(let error): "\(error)" } }(),
             { if case .success(let answer) = lookup {
                 return answer.header.isAuthoritative && answer.answers.map(\.data) == [.address([198, 51, 100, 10])] } else { return false } }())

print("\n3. Traffic")
let outbound = attempt { try sidecar.appRequest(to: SidecarLab.peerService) }
report.check("app → \(SidecarLab.peerService): outbound through 15001", describe(outbound),
             succeeded(outbound, bodyContains: "request from \(PodLab.podIPv4)"))
let outbound6 = attempt { try sidecar.appRequest(to: SidecarLab.peerServiceIPv6) }
report.check("app → \(SidecarLab.peerServiceIPv6): outbound over IPv6", describe(outbound6),
             succeeded(outbound6, bodyContains: "request from \(PodLab.podIPv6)"))
let inbound = attempt { try sidecar.peerRequest(to: Endpoint(PodLab.podIPv4, SidecarLab.appPort)) }
report.check("peer → \(PodLab.podIPv4):\(SidecarLab.appPort): inbound through 15006, forwarded from 127.0.0.6", describe(inbound),
             succeeded(inbound, bodyContains: "request from 127.0.0.6"))
let hairpin = attempt { try sidecar.appRequest(to: SidecarLab.appService) }
report.check("app → its own Service \(SidecarLab.appService): out through 15001, back in through 15006, no loop", describe(hairpin),
             succeeded(hairpin, bodyContains: "request from 127.0.0.6"))
let selfCall = attempt { try sidecar.appRequest(to: Endpoint(PodLab.podIPv4, SidecarLab.appPort)) }
report.check("app → its own pod IP: not captured (Istio's loopback bypass)", describe(selfCall),
             succeeded(selfCall, bodyContains: "request from \(PodLab.podIPv4)"))
let readiness = attempt { try sidecar.peerRequest("/healthz/ready", to: Endpoint(PodLab.podIPv4, 15021)) }
report.check("peer → \(PodLab.podIPv4):15021/healthz/ready: the kubelet's probe, not captured", describe(readiness),
             { if case .success(let response) = readiness { return response.status == 200 } else { return false } }())

print("\n4. The proxy's own count (GET 127.0.0.1:15000/stats in the pod)")
do {
    let stats = try sidecar.proxyStats()
    let shown = [
        "listener.0.0.0.0_15001.downstream_cx_total", "listener.0.0.0.0_15006.downstream_cx_total",
        "cluster.PassthroughCluster;.upstream_cx_total", "cluster.InboundPassthroughCluster;.upstream_cx_total",
        "tcp.PassthroughCluster.downstream_cx_rx_bytes_total", "tcp.PassthroughCluster.downstream_cx_tx_bytes_total",
        "tcp.InboundPassthroughCluster.downstream_cx_tx_bytes_total", "tcp.PassthroughCluster.downstream_cx_no_route",
        "server.state", "server.concurrency", "server.memory_physical_size",
    ]
    for name in shown { print("    \(name): \(stats[name].map(String.init) ?? "(absent)")") }
    let outboundCount = stats["listener.0.0.0.0_15001.downstream_cx_total"] ?? 0
    let inboundCount = stats["listener.0.0.0.0_15006.downstream_cx_total"] ?? 0
    report.check("three outbound connections counted on 15001 (IPv4, IPv6, hairpin)", "\(outboundCount)", outboundCount == 3)
    report.check("two inbound connections counted on 15006 (peer, hairpin)", "\(inboundCount)", inboundCount == 2)
} catch {
    report.check("proxy stats readable", "\(error)", false)
}

print("\n5. Shutdown: SIGTERM to pilot-agent while the peer's request to the app takes 1.5 s")
let slow = InFlightRequest {
    attempt { try sidecar.peerRequest("/slow?ms=1500", to: Endpoint(PodLab.podIPv4, SidecarLab.appPort), timeout: .seconds(10)) }
}
usleep(300_000)
let stopping = ContinuousClock.now
let exitCode = sidecar.stopAgent(signal: SIGTERM)
let inFlight = slow.wait()
report.check("the in-flight request completed during the drain", "\(describe(inFlight.result)) after \(milliseconds(inFlight.took)) ms",
             succeeded(inFlight.result, bodyContains: "request from 127.0.0.6"))
report.check("pilot-agent drained and exited 0", "exit \(exitCode.map(String.init) ?? "none (still running)") after \(milliseconds(ContinuousClock.now - stopping)) ms",
             exitCode == 0)

print("")
if report.failed.isEmpty {
    sidecar.tearDown()
    dnsFiles.remove()
    print("all \(report.passed) checks passed: capture, the workload certificate over SDS, DNS from the name table, the proxy both ways, the hairpin, stats, and a clean drain")
    exit(0)
}
print("\(report.failed.count) of \(report.passed + report.failed.count) checks failed: \(report.failed.joined(separator: "; "))")
print("agent and proxy log:\n" + indented(sidecar.agentLog))
sidecar.tearDown()
dnsFiles.remove()
exit(1)
