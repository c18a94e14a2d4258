import Capture
import Foundation
@testable import Netfilter
import PodLab
import Testing

/// The read-back check: what the kernel holds after an apply equals what the batch meant, and a rule
/// another agent changed afterwards is named as the first difference.
@Suite(.serialized) struct ReadbackKernelTests {
    static func builtRulesets() -> [Ruleset] {
        var tproxy = CaptureConfig.injectorDefault
        tproxy.interceptionMode = .tproxy
        tproxy.enableIPv6 = true
        tproxy.dns = .init(captureAll: false, servers: [IPAddress("192.0.2.53"), IPAddress("2001:db8::53")].compactMap { $0 })
        tproxy.outboundExcludedCIDRs = ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/48"].compactMap(CIDR.init)
        tproxy.excludedInterfaces = ["eth7"]
        return [RulesetBuilder.build(CaptureConfig.injectorDefault).stamped(), RulesetBuilder.build(tproxy).stamped()]
    }

    @Test func whatWasAppliedReadsBackEqual() throws {
        for ruleset in [SampleRulesets.everything, SampleRulesets.big, SampleRulesets.small] + Self.builtRulesets() {
            let namespace = try ScratchNamespace()
            let readback = try namespace.run { try NftablesReadback() }
            try namespace.client().apply(ruleset)
            let expected = try NftablesSnapshot(expecting: ruleset)
            let held = try readback.read()
            #expect(held.firstDifference(from: expected) == nil)
            #expect(held == expected)
            #expect(try readback.firstDifference(from: ruleset) == nil)
            // Traffic-independent: counters do not count.
            #expect(held.tables.flatMap(\.chains).flatMap(\.rules).flatMap(\.expressions).contains("[ counter ]"))
        }
    }

    @Test func nothingProgrammedReadsBackAsMissingTables() throws {
        let namespace = try ScratchNamespace()
        let readback = try namespace.run { try NftablesReadback() }
        #expect(try readback.read() == NftablesSnapshot(tables: []))
        #expect(try readback.firstDifference(from: SampleRulesets.small) == "table inet istio-proxy-nat is missing in the kernel")
    }

    @Test func aReplacedRuleIsNamed() throws {
        let (namespace, readback) = try Self.applied(SampleRulesets.small)
        let handle = try Self.handle(ofRule: 2, chain: "istio-output", in: namespace)
        try namespace.nft("replace", "rule", "inet", "istio-proxy-nat", "istio-output", "handle", handle,
                          "meta", "l4proto", "tcp", "counter", "redirect", "to", ":15099", "comment", "\"capture\"")
        let difference = try #require(try readback.firstDifference(from: SampleRulesets.small))
        #expect(difference.hasPrefix("chain istio-output of inet istio-proxy-nat: rule 2 is `"), "\(difference)")
        #expect(difference.contains("in the kernel, expected `"))
        // The port the rule now redirects to (15099 = 0x3afb), then the one expected (15001 = 0x3a99), as
        // libnftnl prints big-endian data in 32-bit host words.
        #expect(difference.contains("0x0000fb3a"), "\(difference)")
        #expect(difference.contains("0x0000993a"), "\(difference)")
    }

    @Test func aRuleInsertedAheadIsNamedAsExtra() throws {
        let (namespace, readback) = try Self.applied(SampleRulesets.small)
        try namespace.nft("insert", "rule", "inet", "istio-proxy-nat", "istio-output", "tcp", "dport", "8080", "return")
        let difference = try #require(try readback.firstDifference(from: SampleRulesets.small))
        #expect(difference.hasPrefix("chain istio-output of inet istio-proxy-nat: extra rule 1 `"), "\(difference)")
        #expect(difference.contains("[ immediate reg 0 return ]"))
        #expect(difference.contains("before rule 1 `") && difference.contains("comment \"proxy\"`"), "\(difference)")
    }

    @Test func aDeletedRuleIsNamedAsMissing() throws {
        let (namespace, readback) = try Self.applied(SampleRulesets.small)
        let handle = try Self.handle(ofRule: 1, chain: "istio-output", in: namespace)
        try namespace.nft("delete", "rule", "inet", "istio-proxy-nat", "istio-output", "handle", handle)
        let difference = try #require(try readback.firstDifference(from: SampleRulesets.small))
        #expect(difference.hasPrefix("chain istio-output of inet istio-proxy-nat: rule 1 `"), "\(difference)")
        #expect(difference.hasSuffix("comment \"proxy\"` is missing in the kernel"), "\(difference)")
    }

    @Test func setElementsChainsAndTablesAreCompared() throws {
        let (namespace, readback) = try Self.applied(SampleRulesets.everything)
        try namespace.nft("add", "element", "inet", "istio-proxy-nat", "inbound-exclude-ports", "{ 9999 }")
        #expect(try readback.firstDifference(from: SampleRulesets.everything)
            == "set inbound-exclude-ports of inet istio-proxy-nat: extra element 9999 in the kernel")
        try namespace.nft("delete", "element", "inet", "istio-proxy-nat", "inbound-exclude-ports", "{ 9999, 53 }")
        #expect(try readback.firstDifference(from: SampleRulesets.everything)
            == "set inbound-exclude-ports of inet istio-proxy-nat: element 53 is missing in the kernel")

        let (other, otherReadback) = try Self.applied(SampleRulesets.everything)
        try other.nft("add", "element", "inet", "istio-proxy-nat", "outbound-exclude-ipv4", "{ 192.0.2.0/24 }")
        #expect(try otherReadback.firstDifference(from: SampleRulesets.everything)
            == "set outbound-exclude-ipv4 of inet istio-proxy-nat: element 192.0.2.0 is missing in the kernel"
            || (try otherReadback.firstDifference(from: SampleRulesets.everything))?.contains("extra element 192.0.2.0") == true)

        let (third, thirdReadback) = try Self.applied(SampleRulesets.small)
        try third.nft("add", "chain", "inet", "istio-proxy-nat", "foreign")
        #expect(try thirdReadback.firstDifference(from: SampleRulesets.small)
            == "extra chain foreign of inet istio-proxy-nat in the kernel (0 rules)")
        try third.nft("delete", "chain", "inet", "istio-proxy-nat", "foreign")
        try third.nft("add", "table", "inet", "istio-proxy-raw")
        #expect(try thirdReadback.firstDifference(from: SampleRulesets.small)
            == "extra table inet istio-proxy-raw in the kernel (0 chains, 0 rules)")
        try third.nft("delete", "table", "inet", "istio-proxy-raw")
        try third.nft("delete", "chain", "inet", "istio-proxy-nat", "output")
        #expect(try thirdReadback.firstDifference(from: SampleRulesets.small)
            == "chain output of inet istio-proxy-nat is missing in the kernel")
        try third.nft("add", "chain", "inet", "istio-proxy-nat", "output", "{ type nat hook output priority -99; }")
        #expect(try thirdReadback.firstDifference(from: SampleRulesets.small)
            == "chain output of inet istio-proxy-nat is `type nat hook output priority -99; policy accept` in the kernel, "
            + "expected `type nat hook output priority -100; policy accept`")
    }

    /// Tables of other families or names are not Sluice's and never count as a difference.
    @Test func foreignTablesAreIgnored() throws {
        let (namespace, readback) = try Self.applied(SampleRulesets.small)
        try namespace.load("table ip istio-proxy-nat {\n chain c {\n counter\n }\n}\ntable inet foreign {\n chain c {\n counter\n }\n}\n")
        #expect(try readback.firstDifference(from: SampleRulesets.small) == nil)
    }

    // MARK: Helpers

    static func applied(_ ruleset: Ruleset) throws -> (ScratchNamespace, NftablesReadback) {
        let namespace = try ScratchNamespace()
        try namespace.client().apply(ruleset)
        let readback = try namespace.run { try NftablesReadback() }
        #expect(try readback.firstDifference(from: ruleset) == nil)
        return (namespace, readback)
    }

    /// The handle of the `position`th rule (from 1) of a chain of inet istio-proxy-nat.
    static func handle(ofRule position: Int, chain: String, in namespace: ScratchNamespace) throws -> String {
        let listing = try namespace.nft("-a", "list", "chain", "inet", "istio-proxy-nat", chain)
        let handles = PodLab.ruleHandles(in: listing).map(\.handle)
        return try #require(handles.dropFirst(position - 1).first, "no rule \(position) in\n\(listing)")
    }
}

/// The comparison's wording, on hand-made snapshots (no kernel).
@Suite struct ReadbackDifferenceTests {
    static func rule(_ text: String, _ comment: String? = nil) -> NftablesSnapshot.Rule {
        NftablesSnapshot.Rule(expressions: [text], comment: comment)
    }

    static func snapshot(rules: [NftablesSnapshot.Rule]) -> NftablesSnapshot {
        NftablesSnapshot(tables: [NftablesSnapshot.Table(name: "istio-proxy-nat", comment: "c", sets: [], chains: [
            NftablesSnapshot.Chain(name: "istio-output", base: nil, rules: rules),
        ])])
    }

    @Test func ruleDifferencesNameTheRule() {
        let a = Self.rule("[ a ]", "first"), b = Self.rule("[ b ]"), c = Self.rule("[ c ]"), x = Self.rule("[ x ]")
        let expected = Self.snapshot(rules: [a, b, c])
        #expect(Self.snapshot(rules: [a, b, c]).firstDifference(from: expected) == nil)
        #expect(Self.snapshot(rules: [x, a, b, c]).firstDifference(from: expected)
            == "chain istio-output of inet istio-proxy-nat: extra rule 1 `[ x ]` in the kernel, before rule 1 `[ a ] comment \"first\"`")
        #expect(Self.snapshot(rules: [a, c]).firstDifference(from: expected)
            == "chain istio-output of inet istio-proxy-nat: rule 2 `[ b ]` is missing in the kernel")
        #expect(Self.snapshot(rules: [a, x, c]).firstDifference(from: expected)
            == "chain istio-output of inet istio-proxy-nat: rule 2 is `[ x ]` in the kernel, expected `[ b ]`")
        #expect(Self.snapshot(rules: [a, b, c, x]).firstDifference(from: expected)
            == "chain istio-output of inet istio-proxy-nat: extra rule 4 `[ x ]` in the kernel, after the last expected rule")
        #expect(Self.snapshot(rules: [a, b]).firstDifference(from: expected)
            == "chain istio-output of inet istio-proxy-nat: rule 3 `[ c ]` is missing in the kernel")
    }

    @Test func tableCommentIsCompared() {
        var held = Self.snapshot(rules: [])
        held.tables[0].comment = "other"
        #expect(held.firstDifference(from: Self.snapshot(rules: []))
            == "table inet istio-proxy-nat has comment \"other\" in the kernel, expected \"c\"")
    }

    /// The expected side is the batch parsed back: the same text the kernel dump gives.
    @Test func expectedSnapshotComesFromTheBatch() throws {
        let expected = try NftablesSnapshot(expecting: SampleRulesets.small)
        #expect(expected.tables.map(\.name) == ["istio-proxy-nat"])
        let table = try #require(expected.table(named: "istio-proxy-nat"))
        #expect(table.comment == "sluice test small")
        #expect(table.chains.map(\.name) == ["output", "istio-output"])
        #expect(table.chain(named: "output")?.base == "type nat hook output priority -100; policy accept")
        #expect(table.chain(named: "istio-output")?.base == nil)
        let capture = try #require(table.chain(named: "istio-output")?.rules.last)
        #expect(capture.comment == "capture")
        #expect(capture.expressions == [
            "[ meta load l4proto => reg 1 ]", "[ cmp eq reg 1 0x00000006 ]", "[ counter ]",
            "[ immediate reg 1 0x0000993a ]", "[ redir proto_min reg 1 flags 0x2 ]",
        ])
        let sets = try NftablesSnapshot(expecting: SampleRulesets.everything).table(named: "istio-proxy-nat")?.sets ?? []
        #expect(sets.first { $0.name == "inbound-exclude-ports" }?.elements == ["53", "15008", "15020", "15021", "15090"])
        #expect(sets.first { $0.name == "outbound-exclude-ipv4" }?.declaration == "type ipv4_addr; flags interval")
        #expect(sets.first { $0.name == "everything-ipv4" }?.elements == ["0.0.0.0 (open range)"])
    }
}
