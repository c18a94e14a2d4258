import Capture
import Netfilter
import PodLab
import Testing
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// DNS capture end to end: `sluice-init --redirect-dns` and the agent's DNS proxy, with the pod's
/// resolv.conf pointing at a "cluster DNS" (dnsmasq) in the peer netns.
@Suite("DNS capture end to end", .serialized)
struct DNSCaptureTests {
    /// The cluster's DNS server, on a peer address.
    static let clusterDNS = PodLab.externalIPv4[1]
    static let resolvConf = """
        search default.svc.cluster.local svc.cluster.local cluster.local
        nameserver \(clusterDNS)
        options ndots:5

        """
    static let nameTable = """
        {"table": {
          "reviews.bookinfo.svc.cluster.local": {"ips": ["198.51.100.10"], "registry": "Kubernetes", "shortname": "reviews", "namespace": "bookinfo"},
          "productpage.default.svc.cluster.local": {"ips": ["198.51.100.20"], "registry": "Kubernetes", "shortname": "productpage", "namespace": "default"}
        }}
        """

    @Test("the app's resolver gets table names from the proxy and other names from the cluster DNS; the agent's own query is not captured; readiness waits for the table")
    func endToEnd() throws {
        let files = try TemporaryDirectory(prefix: "sluice-dns-e2e", mode: 0o755)
        defer { files.remove() }
        try files.write("resolv.conf", Self.resolvConf, mode: 0o644)
        let resolvConfPath = files.file("resolv.conf")
        let tablePath = files.file("name-table.json")

        let lab = try SidecarLab(
            prefix: "sluice-dns-e2e", executables: try .built(),
            environment: ["ISTIO_META_DNS_CAPTURE": "true", "SLUICE_RESOLV_CONF": resolvConfPath, "SLUICE_NAME_TABLE": tablePath],
            captureArguments: ["--redirect-dns", "--resolv-conf", resolvConfPath])
        defer { lab.tearDown() }
        let dnsmasq = try BackgroundProcess("/usr/sbin/dnsmasq", [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root", "--pid-file=",
            "--listen-address=\(Self.clusterDNS)", "--bind-interfaces", "--port=53", "--log-queries", "--log-facility=-",
            "--address=/upstream.test/198.51.100.7",
        ], in: lab.lab.peer, environment: Subprocess.defaultEnvironment, outputPath: files.file("dnsmasq.log"))
        defer {
            dnsmasq.signal(SIGTERM)
            _ = dnsmasq.waitForExit(timeout: .seconds(5))
        }

        // No table yet: the pod is not ready, and says why.
        #expect(!lab.waitUntilReady(timeout: .seconds(2)))
        let notReady = try LabHTTP.request("GET", "/healthz/ready", port: 15020, in: lab.lab.pod, timeout: .seconds(2))
        #expect(notReady.status == 503)
        #expect(notReady.body.contains("DNS lookup table is not ready yet"))

        try TextFile.writeAtomically(Self.nameTable, to: tablePath)
        guard lab.waitUntilReady(timeout: .seconds(10)) else {
            Issue.record("never ready after the table arrived; agent log:\n\(lab.agentLog)")
            return
        }

        // glibc's resolver as the app (UID 1000), with the pod's resolv.conf: search list and ndots applied
        // by the resolver, every query sent to the cluster DNS's address and captured to 15053.
        #expect(try appLookup(lab, "reviews.bookinfo", resolvConf: resolvConfPath) == ["198.51.100.10"])
        #expect(try appLookup(lab, "productpage", resolvConf: resolvConfPath) == ["198.51.100.20"])
        #expect(try appLookup(lab, "reviews.bookinfo.svc.cluster.local", resolvConf: resolvConfPath) == ["198.51.100.10"])
        #expect(try appLookup(lab, "upstream.test", resolvConf: resolvConfPath) == ["198.51.100.7"])

        // dig as the app, straight at the cluster DNS's address: answered by the proxy (authoritative).
        let dig = try lab.lab.run("/usr/bin/setpriv", ["--reuid", "1000", "--regid", "1000", "--clear-groups",
                                                       "/usr/bin/dig", "@\(Self.clusterDNS)", "+time=3", "+tries=1", "reviews.bookinfo.svc.cluster.local"])
        #expect(dig.standardOutput.contains("flags: qr aa rd ra"), "\(dig)")

        // The cluster DNS saw the forwarded name from the pod, never the table's names: the agent's own
        // query (UID 1337) left the pod instead of being captured back to 15053.
        let log = (try? TextFile.read(files.file("dnsmasq.log"))) ?? ""
        #expect(log.contains("query[A] upstream.test from \(PodLab.podIPv4)"), "\(log)")
        #expect(!log.contains("reviews.bookinfo"), "\(log)")
        #expect(!log.contains("productpage"), "\(log)")

        let nameTable = try LabHTTP.request("GET", "/debug/ndsz", port: 15020, in: lab.lab.pod, timeout: .seconds(2))
        #expect(nameTable.status == 200)
        #expect(nameTable.body.contains("\"reviews.bookinfo.svc.cluster.local\""), "\(nameTable.body)")

        let metrics = try LabHTTP.request("GET", "/stats/prometheus", port: 15020, in: lab.lab.pod, timeout: .seconds(5)).body
        #expect(metricValue(metrics, "istio_agent_dns_requests_total").map { $0 >= 5 } == true, "\(metrics)")
        #expect(metricValue(metrics, "istio_agent_dns_upstream_requests_total").map { $0 >= 1 } == true)
        #expect(metricValue(metrics, "istio_agent_dns_upstream_failures_total") == 0)
        #expect(metrics.contains("istio_agent_dns_upstream_request_duration_seconds_bucket"))
    }

    /// `getent ahostsv4 NAME` as UID 1000 in a private mount namespace whose /etc/resolv.conf is the pod's.
    private func appLookup(_ lab: SidecarLab, _ name: String, resolvConf: String) throws -> [String] {
        let script = "mount --bind \"$1\" /etc/resolv.conf && exec setpriv --reuid 1000 --regid 1000 --clear-groups getent ahostsv4 \"$2\""
        let output = try lab.lab.run("/usr/bin/unshare", ["--mount", "/bin/sh", "-c", script, "sh", resolvConf, name])
        guard output.status == 0 else {
            Issue.record("lookup of \(name) failed: \(output)")
            return []
        }
        // getent prints each address once per socket type; keep the first of each.
        var seen: [String] = []
        for line in output.standardOutput.split(separator: "\n") {
            if let address = line.split(separator: " ").first.map(String.init), !seen.contains(address) { seen.append(address) }
        }
        return seen
    }

    private func metricValue(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}
