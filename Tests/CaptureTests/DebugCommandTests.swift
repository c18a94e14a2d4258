import Capture
import Foundation
import Netfilter
@testable import SluiceInit
import Testing

/// The debugging commands' pure parts: flags read back off a ruleset, the command lines, the diff and
/// the graph. The kernel side is in KernelTests/DebugCommandKernelTests.
@Suite struct CaptureReconstructionTests {
    /// Every golden configuration's rules lead back to flags that rebuild exactly those rules.
    @Test(arguments: GoldenConfigurations.all.map(\.name))
    func flagsRebuildTheRules(name: String) throws {
        let config = try #require(GoldenConfigurations.all.first { $0.name == name }).config
        let live = RulesetBuilder.build(config).stamped().readBackForm
        let reconstruction = try #require(CaptureReconstruction.reconstruct(live, readBack: \.readBackForm))
        #expect(reconstruction.difference == nil, "\(name): \(reconstruction.difference ?? "")")
        #expect(RulesetBuilder.build(reconstruction.config) == RulesetBuilder.build(config) || reconstruction.difference == nil)
        #expect(reconstruction.commandLine.hasPrefix(reconstruction.environment.isEmpty ? "sluice-init -p " : "ISTIO_"))
    }

    @Test func theInjectorDefaultReadsAsItsFlags() throws {
        let live = RulesetBuilder.build(.injectorDefault).readBackForm
        let reconstruction = try #require(CaptureReconstruction.reconstruct(live, readBack: \.readBackForm))
        #expect(reconstruction.commandLine == "sluice-init -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15020,15021,15090")
    }

    @Test func aChangedRuleIsReportedAsTheDifference() throws {
        var live = RulesetBuilder.build(.injectorDefault).readBackForm
        let nat = try #require(live.tables.firstIndex { $0.name == RulesetBuilder.natTable })
        let output = try #require(live.tables[nat].chains.firstIndex { $0.name == "istio-output" })
        live.tables[nat].chains[output].rules.remove(at: 0)
        let reconstruction = try #require(CaptureReconstruction.reconstruct(live, readBack: \.readBackForm))
        #expect(reconstruction.difference?.contains("istio-output rule 1") == true, "\(reconstruction.difference ?? "nil")")
    }
}

@Suite struct DebugCommandLineTests {
    @Test func explainParsesAFlowAndItsOptions() throws {
        guard case .explain(let options) = try DebugCommandLine.parse(
            ["explain", "--pid", "42", "udp", "[2001:db8::53]:53", "--uid", "1337", "--from", "2001:db8::2", "--verbose", "--", "-p", "15001"])
        else { Issue.record("not explain"); return }
        #expect(options.namespace == .process(42))
        #expect(options.transport == .udp)
        #expect(options.destination == Endpoint(IPAddress("2001:db8::53")!, 53))
        #expect(options.uid == 1337 && options.verbose && options.source == IPAddress("2001:db8::2"))
        #expect(options.flagArguments == ["-p", "15001"])
    }

    @Test func flagsInOneStringSplitLikeAShell() {
        #expect(DebugCommandLine.shellWords(#"-p 15001 -i '*' -x "" -b "80, 443""#) == ["-p", "15001", "-i", "*", "-x", "", "-b", "80, 443"])
    }

    @Test func traceParsesItsFilter() throws {
        guard case .trace(let options, let namespace) = try DebugCommandLine.parse(
            ["trace", "--netns", "/run/netns/pod", "tcp", "203.0.113.1:80", "--count", "3"]) else { Issue.record("not trace"); return }
        #expect(namespace == .path("/run/netns/pod"))
        #expect(options.filter.transport == .tcp && options.filter.destination == IPAddress("203.0.113.1") && options.filter.destinationPort == 80)
        #expect(options.count == 3)
    }

    @Test(arguments: [
        (["explain", "tcp"], "explain wants a protocol and a destination"),
        (["explain", "tcp", "10.0.0.1"], "destination 10.0.0.1: want address:port"),
        (["explain", "sctp", "10.0.0.1:80"], "explain wants a protocol"),
        (["explain", "tcp", "10.0.0.1:80", "--uid", "-1"], "--uid -1: want a number"),
        (["explain", "tcp", "10.0.0.1:80", "--from", "::1"], "different address families"),
        (["explain", "tcp", "10.0.0.1:80", "--state", "weird"], "--state weird"),
        (["inspect", "--pid", "abc"], "--pid abc: want a process ID"),
        (["inspect", "--diff", "-p", "1"], "--diff takes the istio-iptables flags after `--`"),
        (["graph", "--format", "png"], "--format png: want dot or svg"),
        (["trace", "--count", "0"], "--count 0"),
        (["trace", "--uid", "1000", "--in", "eth0"], "--uid and --in select no packet together"),
        (["inspect", "--bogus"], "unknown argument --bogus"),
    ])
    func badCommandLinesExitTwoAndNameTheArgument(arguments: [String], named: String) {
        var output = StandardStreams(captured: ("", ""))
        let code = SluiceInitCommand.run(arguments: arguments, environment: [:], facts: LiveSystemFacts(), output: &output)
        #expect(code == 2)
        #expect(output.captured?.err.contains(named) == true, "\(output.captured?.err ?? "")")
        #expect(output.captured?.out == "")
    }

    @Test func eachSubcommandHasHelp() {
        for name in DebugCommand.names.sorted() {
            var output = StandardStreams(captured: ("", ""))
            #expect(SluiceInitCommand.run(arguments: [name, "--help"], environment: [:], facts: LiveSystemFacts(), output: &output) == 0)
            #expect(output.captured?.out.hasPrefix("Usage: sluice-init \(name)") == true)
        }
    }
}

@Suite struct RulesetDiffTests {
    @Test func sameRulesetsHaveOnlyUnmarkedLines() {
        let ruleset = RulesetBuilder.build(.injectorDefault)
        #expect(RulesetDiff.lines(planned: ruleset, live: ruleset, unknownRules: []).allSatisfy { $0.first == " " })
    }

    @Test func aMissingRuleAndAChangedSetAreMarked() throws {
        var planned = CaptureConfig.injectorDefault
        planned.inboundExcludedPorts = [15020, 15021]
        var live = RulesetBuilder.build(.injectorDefault)
        let nat = try #require(live.tables.firstIndex { $0.name == RulesetBuilder.natTable })
        let output = try #require(live.tables[nat].chains.firstIndex { $0.name == "istio-output" })
        let removed = live.tables[nat].chains[output].rules.removeLast()
        let lines = RulesetDiff.lines(planned: RulesetBuilder.build(planned), live: live, unknownRules: [])
        #expect(lines.contains("-  set inbound-exclude-ports { 15020, 15021 }"))
        #expect(lines.contains("+  set inbound-exclude-ports { 15020, 15021, 15090 }"))
        #expect(lines.contains("-    " + NftTextRenderer.render(removed)))
        #expect(lines.filter { $0.first != " " }.count == 3)
    }
}

/// The DOT text of `sluice-init graph`, pinned under `Snapshots/graph/`; `SLUICE_RECORD_SNAPSHOTS=1`
/// re-records.
@Suite struct RulesetGraphTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots/graph")

    @Test(arguments: ["injector-default", "tproxy", "dns-uid-gid"])
    func dotMatchesSnapshot(name: String) throws {
        let config = try #require(GoldenConfigurations.all.first { $0.name == name }).config
        let dot = RulesetGraph.dot(RulesetGraph.tables(of: RulesetBuilder.build(config)))
        let file = Self.directory.appendingPathComponent("\(name).dot")
        guard ProcessInfo.processInfo.environment["SLUICE_RECORD_SNAPSHOTS"] != "1",
              let recorded = try? String(contentsOf: file, encoding: .utf8) else {
            try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try dot.write(to: file, atomically: true, encoding: .utf8)
            Issue.record("snapshot graph/\(name).dot was (re)recorded; review it and run the tests again")
            return
        }
        #expect(dot == recorded)
    }

    @Test func everyJumpIsAnEdgeAndEveryHookAnEntry() {
        let ruleset = RulesetBuilder.build(.injectorDefault)
        let dot = RulesetGraph.dot(RulesetGraph.tables(of: ruleset))
        let jumps = ruleset.tables.flatMap(\.chains).flatMap(\.rules).compactMap(\.jumpTarget).count
        let edges = dot.split(separator: "\n").filter { $0.contains(" -> ") && !$0.contains("\"hook ") && !$0.contains("-> \"redirect") }
        #expect(edges.count == jumps)
        #expect(dot.contains("\"hook output\" -> \"istio-proxy-nat/output\""))
        #expect(dot.contains("\"istio-proxy-nat/istio-redirect\" -> \"redirect 15001\""))
    }
}
