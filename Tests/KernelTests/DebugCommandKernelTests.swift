import Capture
import Foundation
import Netfilter
import PodLab
import Testing

/// `sluice-init inspect`, `explain` and `graph` as a node admin runs them: the built binary, from the
/// node's namespace, entering the pod with `--netns`/`--pid`, with real rules and real traffic.
@Suite(.serialized) struct DebugCommandKernelTests {
    static let injectorDefault = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
                                  "-b", "*", "-d", "15090,15021,15020"]

    /// The built sluice-init, run from this (the node's) namespace.
    static func sluiceInit(_ arguments: [String]) throws -> ProcessOutput {
        let here = try NetworkNamespace.open(path: "/proc/self/ns/net")
        return try Subprocess.run(try PodLab.sluiceInitExecutable(), arguments, in: here)
    }

    static func podPath(_ lab: PodLab) -> String { "\(NetworkNamespace.namedNamespaceDirectory)/\(lab.podNamespaceName)" }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static func warningKinds(_ report: [String: Any]) -> [String] {
        ((report["warnings"] as? [[String: Any]]) ?? []).compactMap { $0["kind"] as? String }
    }

    @Test func inspectShowsCountersTheFlagsAndNoWarnings() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        #expect(try lab.sluiceInit(Self.injectorDefault).status == 0)
        for _ in 0..<3 {
            guard case .proxyOutbound = lab.connect(as: .app, to: Endpoint(PodLab.externalIPv4[1], 80)).landing else {
                Issue.record("the app's connection was not captured")
                return
            }
        }
        let text = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab)])
        #expect(text.status == 0, "\(text)")
        #expect(text.standardOutput.contains(
            "Flags: sluice-init -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15020,15021,15090"))
        #expect(text.standardOutput.contains("(these flags rebuild the live rules exactly)"))
        #expect(text.standardOutput.contains("Warnings: none"), "\(text.standardOutput)")

        let report = try Self.json(try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--json"]).standardOutput)
        let tables = try #require(report["tables"] as? [[String: Any]])
        let rules = tables.flatMap { ($0["chains"] as? [[String: Any]]) ?? [] }.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }
        let redirect = try #require(rules.first { ($0["text"] as? String)?.contains("redirect to :15001") == true })
        let packets = try #require((redirect["counter"] as? [String: Any])?["packets"] as? Int)
        #expect(packets >= 3, "the three captured connections are counted on istio-redirect")
        #expect(((report["flags"] as? [String: Any])?["exact"] as? Bool) == true)
    }

    @Test func inspectWarnsAboutLegacyIptablesRulesAndChangesNothing() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        #expect(try lab.sluiceInit(Self.injectorDefault).status == 0)
        // What an init image whose `iptables` is the legacy one leaves behind (istio#15519).
        let legacy = try lab.run(try PodLab.systemExecutable("iptables-legacy"),
                                 ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j", "REDIRECT", "--to-ports", "8080"])
        #expect(legacy.status == 0, "\(legacy)")
        let before = try lab.listRuleset()
        let namesBefore = try lab.run("/bin/cat", ["/proc/net/ip_tables_names"]).standardOutput

        let output = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--json"])
        #expect(output.status == 0, "\(output)")
        let report = try Self.json(output.standardOutput)
        #expect(Self.warningKinds(report) == ["legacy-iptables"])
        let legacyTables = try #require(report["legacyTables"] as? [[String: Any]])
        let nat = try #require(legacyTables.first { $0["name"] as? String == "nat" })
        let chains = try #require(nat["chains"] as? [[String: Any]])
        let outputChain = try #require(chains.first { $0["name"] as? String == "OUTPUT" })
        #expect(outputChain["policy"] as? String == "ACCEPT")
        let ruleText = (outputChain["rules"] as? [[String: Any]])?.first?["text"] as? String
        #expect(ruleText == "-p tcp -m tcp -j REDIRECT", "\(ruleText ?? "nil")")

        let text = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab)]).standardOutput
        #expect(text.contains("iptables-legacy IPv4 table nat holds 1 rule(s)"))
        #expect(text.contains("iptables-legacy ip table nat"))
        let explained = try Self.sluiceInit(["explain", "--netns", Self.podPath(lab), "tcp", "203.0.113.1:9999"]).standardOutput
        #expect(explained.contains("not walked: iptables-legacy ip table nat holds 1 rule(s)"), "\(explained)")
        // Read-only: no table created or changed by looking.
        #expect(try lab.listRuleset() == before)
        #expect(try lab.run("/bin/cat", ["/proc/net/ip_tables_names"]).standardOutput == namesBefore)
    }

    @Test func inspectWarnsAboutCompetingNatUncapturedNameserversAndMissingPassthrough() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        let files = try TemporaryDirectory(prefix: "sluice-dbg")
        defer { files.remove() }
        try files.write("resolv.conf", "nameserver 203.0.113.1\n", mode: 0o644)
        try files.write("changed.conf", "nameserver 203.0.113.1\nnameserver 198.51.100.53\n", mode: 0o644)
        let applied = try lab.sluiceInit(Self.injectorDefault + ["--redirect-dns", "--resolv-conf", files.file("resolv.conf"), "--dual-stack"])
        #expect(applied.status == 0, "\(applied)")
        try lab.loadRuleset("""
            table ip nat {
                chain OUTPUT { type nat hook output priority -110; policy accept; tcp dport 9 counter redirect to :8080; }
            }
            """)
        try lab.ip(["-6", "addr", "del", "::6/128", "dev", "lo"])

        let output = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--json", "--resolv-conf", files.file("changed.conf")])
        let report = try Self.json(output.standardOutput)
        #expect(Set(Self.warningKinds(report)) == ["competing-nat", "dns-not-captured", "missing-ipv6-passthrough"], "\(output)")
        let messages = ((report["warnings"] as? [[String: Any]]) ?? []).compactMap { $0["message"] as? String }
        #expect(messages.contains { $0.contains("198.51.100.53 not in the rules") })
        #expect(messages.contains { $0.contains("ip nat chain OUTPUT does NAT on output at priority -110, before Sluice's (-100)") })
    }

    @Test func inspectWarnsWhenTheTproxyRouteIsMissing() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        #expect(try lab.sluiceInit(["-p", "15001", "-z", "15006", "-u", "1337", "-m", "TPROXY", "-i", "*", "-b", "*"]).status == 0)
        let clean = try Self.json(try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--json"]).standardOutput)
        #expect(Self.warningKinds(clean).isEmpty)
        try lab.ip(["rule", "del", "fwmark", "1337", "lookup", "133"])
        let broken = try Self.json(try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--json"]).standardOutput)
        #expect(Self.warningKinds(broken) == ["tproxy-route"])
    }

    @Test func diffComparesTheLiveRulesWithFlags() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        #expect(try lab.sluiceInit(Self.injectorDefault).status == 0)
        let same = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--diff", "--"] + Self.injectorDefault)
        #expect(same.status == 0, "\(same)")
        #expect(same.standardOutput.contains("the live rules are exactly what these flags program"))

        var other = Self.injectorDefault
        other[other.count - 1] = "15090,15021"
        let differs = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--diff", "--"] + other)
        #expect(differs.status == 3, "\(differs)")
        #expect(differs.standardOutput.contains("-  set inbound-exclude-ports { 15021, 15090 }"))
        #expect(differs.standardOutput.contains("+  set inbound-exclude-ports { 15020, 15021, 15090 }"))

        let bad = try Self.sluiceInit(["inspect", "--netns", Self.podPath(lab), "--diff", "--", "-p", "http"])
        #expect(bad.status == 2)
        #expect(bad.standardError.contains("-p"))
    }

    @Test func explainNamesTheRuleThatCapturesAndChangesNothing() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        #expect(try lab.sluiceInit(Self.injectorDefault).status == 0)
        let before = try lab.listRuleset()
        let app = try Self.sluiceInit(["explain", "--netns", Self.podPath(lab), "tcp", "203.0.113.1:80", "--uid", "1000"])
        #expect(app.status == 0, "\(app)")
        #expect(app.standardOutput.hasPrefix(
            "redirected to 127.0.0.1:15001 by istio-redirect rule 1 (original destination 203.0.113.1:80 kept for SO_ORIGINAL_DST)"),
            "\(app.standardOutput)")
        #expect(app.standardOutput.contains("istio-proxy-nat/istio-output rule 9: jump istio-redirect"))

        let proxy = try Self.json(try Self.sluiceInit(["explain", "--netns", Self.podPath(lab), "tcp", "203.0.113.1:80",
                                                       "--uid", "1337", "--json"]).standardOutput)
        let fate = try #require(proxy["fate"] as? [String: Any])
        #expect(fate["verdict"] as? String == "leaves" && fate["interface"] as? String == "eth0")

        let inbound = try Self.sluiceInit(["explain", "--netns", Self.podPath(lab), "tcp", "192.0.2.2:15020", "--in", "eth0",
                                           "--from", "192.0.2.1", "--verbose"])
        #expect(inbound.standardOutput.hasPrefix("not captured: delivered to 192.0.2.2:15020"), "\(inbound.standardOutput)")
        #expect(inbound.standardOutput.contains("no match"))
        #expect(try lab.listRuleset() == before)
    }

    @Test func explainAndGraphWorkFromFlagsAndThroughAPid() throws {
        try requireRoot()
        let lab = try PodLab(prefix: "sluice-dbg")
        defer { lab.tearDown() }
        let files = try TemporaryDirectory(prefix: "sluice-dbg")
        defer { files.remove() }
        let sleeper = try BackgroundProcess("/bin/sleep", ["30"], in: lab.pod, environment: Subprocess.defaultEnvironment,
                                            outputPath: files.file("sleep.log"))
        defer {
            sleeper.signal(SIGKILL)
            _ = sleeper.waitForExit(timeout: Duration.seconds(5))
        }
        // No rules in the pod: explain walks what the flags would program.
        let planned = try Self.sluiceInit(["explain", "--pid", "\(sleeper.pid)", "udp", "203.0.113.1:53", "--flags",
                                           "-p 15001 -u 1337 -i '*' -b '*' --redirect-dns --capture-all-dns"])
        #expect(planned.standardOutput.hasPrefix("redirected to 127.0.0.1:15053"), "\(planned)")
        let live = try Self.sluiceInit(["explain", "--pid", "\(sleeper.pid)", "tcp", "203.0.113.1:80"])
        #expect(live.standardOutput.hasPrefix("not captured: leaves via eth0"), "\(live)")

        #expect(try lab.sluiceInit(Self.injectorDefault).status == 0)
        _ = lab.connect(as: .app, to: Endpoint(PodLab.externalIPv4[1], 80))
        let dot = try Self.sluiceInit(["graph", "--pid", "\(sleeper.pid)"])
        #expect(dot.standardOutput.hasPrefix("digraph sluice {"))
        #expect(dot.standardOutput.contains("\"istio-proxy-nat/istio-redirect\" -> \"redirect 15001\" [label=\"1: meta l4proto tcp\\n1 pkts\""),
                "\(dot.standardOutput)")
        let svg = try Self.sluiceInit(["graph", "--pid", "\(sleeper.pid)", "--format", "svg", "--output", files.file("capture.svg")])
        #expect(svg.status == 0, "\(svg)")
        let rendered = try String(contentsOfFile: files.file("capture.svg"), encoding: .utf8)
        #expect(rendered.contains("<svg") && rendered.contains("istio&#45;redirect"))
    }

    @Test func aNamespaceThatDoesNotExistIsAConfigurationError() throws {
        try requireRoot()
        let output = try Self.sluiceInit(["inspect", "--netns", "/run/netns/sluice-no-such-namespace"])
        #expect(output.status == 2)
        #expect(output.standardError.contains("cannot open --netns /run/netns/sluice-no-such-namespace"))
    }
}
