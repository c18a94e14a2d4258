import Capture
import Glibc
import Netfilter
import PodLab
import Testing

/// `sluice-init -m TPROXY` (the built binary) in a pod namespace whose 15006 listener is transparent,
/// as Envoy's is in TPROXY mode (RULES.md §3 "TPROXY mode"): inbound connections reach it without NAT,
/// and the policy routing (`ip rule fwmark 1337 lookup 133`, `local default dev lo table 133`) is
/// programmed in the same run, never duplicated, and removed again by `--cleanup-only`.
@Suite("sluice-init -m TPROXY in a pod namespace")
struct TproxyKernelTests {
    @Test("peer → pod:8080 reaches the transparent listener with source and destination preserved, and its reply returns",
          arguments: Family.allCases)
    func inboundReachesTheTransparentListener(family: Family) throws {
        let pod = try TproxyPod(family)
        let peer = family.peerAddress
        let result = pod.lab.connect(from: .peer, to: family.pod(8080), source: peer)
        // The probe read the listener's report over the connection: the reply made it back to the peer.
        #expect(result.landing == .proxyInbound(originalDestination: family.pod(8080)), "\(result)")
        let arrival = try #require(result.arrival, "\(result)")
        #expect(arrival.role == .inboundProxy)
        // No NAT: the accepted socket's own addresses are the original ones (REDIRECT would show
        // local port 15006), which is what Envoy reads under TPROXY.
        #expect(arrival.local == family.pod(8080))
        #expect(arrival.remote.address == peer)
        // Outbound capture is REDIRECT in TPROXY mode too, and the policy routing does not disturb it.
        #expect(pod.lab.connect(as: .app, to: family.external(80)).landing
            == .proxyOutbound(originalDestination: family.external(80)))
    }

    @Test("an address the pod does not own reaches the listener only through the fwmark rule and table 133",
          arguments: Family.allCases)
    func nonLocalDestinationUsesThePolicyRoute(family: Family) throws {
        let pod = try TproxyPod(family)
        // The peer sends it to the pod, as a node would for a gateway or an Envoy with original_dst.
        let foreign = family.unownedPodSubnetAddress
        try pod.lab.peer.run {
            try RouteNetlink().addRoute(to: CIDR(address: foreign, prefixLength: family == .ipv4 ? 32 : 128),
                                        via: family == .ipv4 ? PodLab.podIPv4 : PodLab.podIPv6)
        }
        let result = pod.lab.connect(from: .peer, to: Endpoint(foreign, 8080), source: family.peerAddress)
        #expect(result.landing == .proxyInbound(originalDestination: Endpoint(foreign, 8080)), "\(result)")
        #expect(result.arrival?.local == Endpoint(foreign, 8080))
        #expect(result.arrival?.remote.address == family.peerAddress)
        // Control: without the fwmark rule the same connection goes nowhere (the pod does not forward).
        try pod.lab.ip((family == .ipv4 ? [] : ["-6"]) + ["rule", "del", "fwmark", "1337", "lookup", "133"])
        guard case .failed = pod.lab.connect(from: .peer, to: Endpoint(foreign, 8080), source: family.peerAddress,
                                             timeout: .milliseconds(500)).landing else {
            Issue.record("\(foreign) must be unreachable without the policy route")
            return
        }
    }

    @Test("-d ports (15021) go direct to the app", arguments: Family.allCases)
    func excludedPortGoesDirect(family: Family) throws {
        let pod = try TproxyPod(family)
        for port: UInt16 in [15021, 15090, 15020] {
            #expect(pod.lab.connect(from: .peer, to: family.pod(port), source: family.peerAddress).landing
                == .direct(.pod, family.pod(port)))
        }
    }

    @Test("an identical re-run changes nothing: ruleset, fib rules, routes, addresses", arguments: Family.allCases)
    func identicalRerunIsNoOp(family: Family) throws {
        let pod = try TproxyPod(family)
        // Traffic first, so counters are non-zero and a re-created table would show.
        #expect(pod.lab.connect(from: .peer, to: family.pod(8080), source: family.peerAddress).landing
            == .proxyInbound(originalDestination: family.pod(8080)))
        let before = try pod.observe()
        #expect(before.ruleset.contains("tproxy \(family == .ipv4 ? "ip" : "ip6") to :15006"))
        #expect(before.fwmarkRules(family) == 1, "\(before)")
        #expect(before.routes(family).contains("local default dev lo"), "\(before)")
        #expect(before.loopbackIPv6.contains("::6/128") == (family == .ipv6))
        let rerun = try pod.lab.sluiceInit(pod.arguments)
        #expect(rerun.status == 0, "\(rerun)")
        #expect(rerun.standardOutput.contains("nothing changed"), "\(rerun)")
        #expect(try pod.observe() == before)
        #expect(pod.lab.connect(from: .peer, to: family.pod(8080), source: family.peerAddress).landing
            == .proxyInbound(originalDestination: family.pod(8080)))
    }

    @Test("--cleanup-only with the same flags leaves no table, no fib rule, no route in 133, no ::6",
          arguments: Family.allCases)
    func cleanupRemovesEverything(family: Family) throws {
        let pod = try TproxyPod(family)
        let cleanup = try pod.lab.sluiceInit(pod.arguments + ["--cleanup-only"])
        #expect(cleanup.status == 0, "\(cleanup)")
        let after = try pod.observe()
        #expect(!after.ruleset.contains("istio-proxy"), "left behind:\n\(after.ruleset)")
        #expect(!after.rulesIPv4.contains("fwmark") && !after.rulesIPv6.contains("fwmark"), "\(after)")
        #expect(after.routesIPv4.isEmpty && after.routesIPv6.isEmpty, "\(after)")
        #expect(!after.loopbackIPv6.contains("::6/"), "\(after)")
        // Nothing captures any more: inbound lands on the app itself.
        #expect(pod.lab.connect(from: .peer, to: family.pod(8080), source: family.peerAddress).landing
            == .direct(.pod, family.pod(8080)))
        // Nothing left to clean: still success, still nothing.
        #expect(try pod.lab.sluiceInit(pod.arguments + ["--cleanup-only"]).status == 0)
        #expect(try pod.observe() == after)
    }

    @Test("rules Istio's re-runs duplicated are not duplicated again, and cleanup removes every copy but nothing foreign")
    func istioLeftoversAndForeignRules() throws {
        let pod = try TproxyPod(.ipv4, applying: false)
        // What two istio-iptables runs leave (netlink.RuleAdd picks a new priority each time), and a
        // rule and a route that are someone else's.
        try pod.lab.ip(["rule", "add", "fwmark", "1337", "lookup", "133"])
        try pod.lab.ip(["rule", "add", "fwmark", "1337", "lookup", "133"])
        try pod.lab.ip(["rule", "add", "fwmark", "1337", "iif", "eth0", "lookup", "133"])
        try pod.lab.ip(["route", "add", "203.0.113.0/24", "via", "192.0.2.1", "table", "133"])
        let apply = try pod.lab.sluiceInit(pod.arguments)
        #expect(apply.status == 0, "\(apply)")
        let applied = try pod.observe()
        #expect(applied.fwmarkRules(.ipv4) == 2, "no rule added next to Istio's two:\n\(applied.rulesIPv4)")
        #expect(pod.lab.connect(from: .peer, to: Family.ipv4.pod(8080), source: PodLab.peerIPv4).landing
            == .proxyInbound(originalDestination: Family.ipv4.pod(8080)))

        let cleanup = try pod.lab.sluiceInit(pod.arguments + ["--cleanup-only"])
        #expect(cleanup.status == 0, "\(cleanup)")
        let after = try pod.observe()
        #expect(after.fwmarkRules(.ipv4) == 0, "\(after.rulesIPv4)")
        #expect(after.rulesIPv4.contains("fwmark 0x539 iif eth0 lookup 133"), "\(after.rulesIPv4)")
        #expect(after.routesIPv4 == "203.0.113.0/24 via 192.0.2.1 dev eth0", "\(after.routesIPv4)")
    }

    @Test("a table already routing elsewhere: exit 1 naming the step and the route in the way")
    func conflictingRouteFailsPrecisely() throws {
        let pod = try TproxyPod(.ipv4, applying: false)
        try pod.lab.ip(["route", "add", "default", "via", "192.0.2.1", "table", "133"])
        let result = try pod.lab.sluiceInit(pod.arguments)
        #expect(result.status == 1, "\(result)")
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "want one line on stderr, got:\n\(result.standardError)")
        #expect(result.standardError.contains("`ip route add local default dev lo table 133`"), "\(result)")
        #expect(result.standardError.contains("default via 192.0.2.1 dev eth0 table 133"), "\(result)")
        #expect(result.standardError.contains("-r"), "\(result)")
        // The rule this run had added is taken back: no half of the plan stays behind.
        #expect(result.standardError.contains("undone: `ip rule add fwmark 1337 lookup 133`"), "\(result)")
        #expect(try !pod.observe().rulesIPv4.contains("fwmark"))
        // With another table it goes through, and only that table is looked up.
        let other = try pod.lab.sluiceInit(pod.arguments + ["-r", "134"])
        #expect(other.status == 0, "\(other)")
        let rules = try pod.observe().rulesIPv4.split(separator: "\n").filter { $0.contains("fwmark") }
        #expect(rules.count == 1 && rules[0].hasSuffix("from all fwmark 0x539 lookup 134"), "\(rules)")
        #expect(pod.lab.connect(from: .peer, to: Family.ipv4.pod(8080), source: PodLab.peerIPv4).landing
            == .proxyInbound(originalDestination: Family.ipv4.pod(8080)))
    }

    @Test("--dry-run prints the routing plan as comments: still valid nft -f input, and nothing is touched",
          arguments: [false, true])
    func dryRunIsValidNftInput(cleanup: Bool) throws {
        let pod = try TproxyPod(.ipv6, applying: false)
        let before = try pod.observe()
        let result = try pod.lab.sluiceInit(pod.arguments + ["--dry-run"] + (cleanup ? ["--cleanup-only"] : []))
        #expect(result.status == 0, "\(result)")
        let verb = cleanup ? "del" : "add"
        #expect(result.standardOutput.contains("\n# ip rule \(verb) fwmark 1337 lookup 133\n"), "\(result)")
        #expect(result.standardOutput.contains("\n# ip -6 route \(verb) local default dev lo table 133\n"), "\(result)")
        let file = try TemporaryFile(contents: result.standardOutput)
        defer { file.remove() }
        let check = try pod.lab.run(try PodLab.systemExecutable("nft"), ["-c", "-f", file.path])
        #expect(check.status == 0, "nft -c -f rejected the dry-run output: \(check)")
        #expect(try pod.observe() == before)
    }
}

/// A pod with a transparent inbound listener, after `sluice-init -m TPROXY` ran in it.
struct TproxyPod {
    static let tproxyArguments = CapturedPod.replacing(["-m", "TPROXY"])

    let lab: PodLab
    let arguments: [String]

    init(_ family: Family, applying: Bool = true) throws {
        try requireRoot()
        var layout = PodLab.Layout()
        layout.transparentInboundListener = true
        lab = try PodLab(layout: layout)
        arguments = Self.tproxyArguments + family.arguments
        if applying {
            let result = try lab.sluiceInit(arguments)
            try #require(result.status == 0, "sluice-init \(arguments) failed: \(result)")
        }
    }

    /// The kernel state TPROXY touches, as `nft` and `ip` show it (handles and counters included).
    struct Observation: Equatable, CustomStringConvertible {
        var ruleset: String
        var rulesIPv4: String
        var rulesIPv6: String
        var routesIPv4: String
        var routesIPv6: String
        var loopbackIPv6: String

        func fwmarkRules(_ family: Family) -> Int {
            (family == .ipv4 ? rulesIPv4 : rulesIPv6).split(separator: "\n")
                .filter { $0.hasSuffix("from all fwmark 0x539 lookup 133") }.count
        }

        func routes(_ family: Family) -> String { family == .ipv4 ? routesIPv4 : routesIPv6 }

        var description: String {
            "ip rule:\n\(rulesIPv4)\nip -6 rule:\n\(rulesIPv6)\ntable 133:\n\(routesIPv4)\n\(routesIPv6)\nlo:\n\(loopbackIPv6)"
        }
    }

    func observe() throws -> Observation {
        Observation(ruleset: try lab.listRuleset(handles: true),
                           rulesIPv4: try show(["rule", "show"]), rulesIPv6: try show(["-6", "rule", "show"]),
                           routesIPv4: try show(["route", "show", "table", "133"]),
                           routesIPv6: try show(["-6", "route", "show", "table", "133"]),
                           loopbackIPv6: try show(["-6", "-o", "addr", "show", "dev", "lo"]))
    }

    private func show(_ arguments: [String]) throws -> String {
        try lab.ip(arguments).split(separator: "\n").map { $0.trimmingSpaces }.joined(separator: "\n")
    }
}

extension Family {
    var peerAddress: IPAddress { PodLab.peerAddress(ipFamily) }

    /// In the pod's subnet but assigned to nobody: only policy routing makes the pod accept it.
    var unownedPodSubnetAddress: IPAddress { IPAddress(self == .ipv4 ? "192.0.2.99" : "2001:db8:1::99")! }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
