import Capture
import Foundation
@testable import Netfilter
import PodLab
import Testing

/// The decoder is exact: every rule Sluice can build compiles to expressions that decode back to the
/// same rule, and anything the compiler would not have produced stays undecoded.
@Suite struct RuleDecoderTests {
    static var allRules: [Rule] {
        ([SampleRulesets.everything, SampleRulesets.big, SampleRulesets.small] + ReadbackKernelTests.builtRulesets())
            .flatMap(\.tables).flatMap(\.chains).flatMap(\.rules)
    }

    @Test func everyBuildableRuleRoundTrips() throws {
        for rule in Self.allRules {
            let expressions = try NftablesRuleCompiler.expressions(for: rule, setIDs: [:])
            let decoded = try #require(NftablesRuleDecoder.decode(expressions, comment: rule.comment.isEmpty ? nil : rule.comment),
                                       "\(NftTextRenderer.render(rule))")
            // One of the spellings that compile alike: the same expressions again.
            #expect(try NftablesRuleCompiler.expressions(for: decoded, setIDs: [:]) == expressions)
            #expect(decoded.comment == rule.comment && decoded.statements == rule.statements)
        }
    }

    @Test func expressionsOutsideTheVocabularyStayUndecoded() throws {
        let redirect = try NftablesRuleCompiler.expressions(
            for: Rule([.transportProtocol(.tcp)], [.counter, .redirect(toPort: 15001)], comment: ""), setIDs: [:])
        // A match after a statement, a stray nfproto with no address match, and a lone load.
        #expect(NftablesRuleDecoder.decode(redirect + [.metaLoad(.transportProtocol), .compare(equal: true, [6])], comment: nil) == nil)
        #expect(NftablesRuleDecoder.decode([.metaLoad(.netfilterProtocol), .compare(equal: true, [2]), .verdict(.accept)],
                                           comment: nil) == nil)
        #expect(NftablesRuleDecoder.decode([.metaLoad(.socketUID), .verdict(.accept)], comment: nil) == nil)
        // A non-contiguous mask is no prefix.
        #expect(NftablesRuleDecoder.decode([.metaLoad(.netfilterProtocol), .compare(equal: true, [2]),
                                            .payloadLoad(.network, offset: 16, length: 4), .bitwiseAnd(mask: [255, 0, 255, 0]),
                                            .compare(equal: true, [10, 0, 1, 0]), .verdict(.accept)], comment: nil) == nil)
        // A port match with no transport protocol established first.
        #expect(NftablesRuleDecoder.decode([.payloadLoad(.transport, offset: 2, length: 2), .compare(equal: true, [0, 80]),
                                            .verdict(.accept)], comment: nil) == nil)
    }

    @Test func intervalSetsDecodeBackToTheirRanges() throws {
        for ranges in [SampleRulesets.ranges(["10.0.0.0/8", "192.168.1.0/24", "255.255.255.0/24"]),
                       SampleRulesets.ranges(["0.0.0.0/0"]), SampleRulesets.ranges(["::1/128", "2001:db8::/32"])] {
            let family = ranges[0].first.family
            let elements = NftablesSetElement.elements(of: .addresses(family, ranges))
            #expect(Inventory.ranges(family, elements) == ranges)
        }
    }
}

/// Reading every table of a namespace: Sluice's decode back to the ruleset that was applied, with
/// handles and live counters; foreign tables are listed with their hooks; Istio's own rules (loaded
/// with `nft -f` from its golden files) decode too.
@Suite(.serialized) struct InventoryKernelTests {
    static func decodedOwnedRuleset(_ inventory: KernelRuleset) -> Ruleset {
        Ruleset(tables: inventory.ownedTables.map { table in
            Table(name: table.name, comment: table.comment, sets: table.sets.compactMap(\.contents),
                  chains: table.chains.map { chain in
                      Chain(name: chain.name, base: chain.hook?.baseChain, rules: chain.rules.compactMap(\.rule))
                  })
        })
    }

    @Test func appliedRulesetsReadBackAsTheSameModel() throws {
        for ruleset in [SampleRulesets.everything, SampleRulesets.small] + ReadbackKernelTests.builtRulesets() {
            let namespace = try ScratchNamespace()
            let readback = try namespace.run { try NftablesReadback() }
            try namespace.client().apply(ruleset)
            let inventory = try readback.readInventory()
            #expect(inventory.foreignTables.isEmpty)
            let rules = inventory.ownedTables.flatMap(\.chains).flatMap(\.rules)
            #expect(rules.allSatisfy { $0.rule != nil }, "undecoded: \(rules.filter { $0.rule == nil }.map(\.text))")
            #expect(rules.allSatisfy { $0.counter != nil })
            for table in inventory.ownedTables {   // handles are unique within a table
                let handles = table.chains.flatMap(\.rules).map(\.handle)
                #expect(Set(handles).count == handles.count)
            }
            #expect(Self.decodedOwnedRuleset(inventory) == ruleset.readBackForm)
        }
    }

    @Test func countersAndForeignTablesAreRead() throws {
        let namespace = try ScratchNamespace(prefix: "sluice-nft", loopbackUp: true)
        try namespace.client().apply(SampleRulesets.small)
        try namespace.load("""
            table ip nat {
                chain OUTPUT { type nat hook output priority -90; policy accept; meta l4proto tcp counter redirect to :9999; }
            }
            """)
        // Two TCP connections through the output hook (redirected to a closed 15001, so refused at once);
        // the foreign chain runs after Sluice's, whose redirect settles NAT for them first.
        for _ in 0..<2 { _ = Probe.connect(in: namespace.namespace, to: Endpoint(IPAddress("127.0.0.1")!, 9), timeout: .seconds(1)) }
        let inventory = try namespace.run { try NftablesReadback().readInventory() }
        let foreign = try #require(inventory.foreignTables.first)
        #expect(foreign.qualifiedName == "ip nat")
        #expect(foreign.chains.first?.hook == KernelHook(type: "nat", hook: "output", priority: -90, policy: "accept"))
        let natOutput = try #require(inventory.ownedTables.first?.chain(named: "output"))
        #expect(natOutput.hook?.priority == -100)
        let counted = inventory.ownedTables.flatMap(\.chains).flatMap(\.rules).compactMap(\.counter).map(\.packets).reduce(0, +)
        #expect(counted >= 2, "the pings went through the output chain's counted rules")
    }

    static let istioGoldenDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/istio-capture/testdata/istio-nftables")

    /// Every golden but those naming groups (`skgid java`), which nft resolves while parsing.
    static var istioGoldenNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: istioGoldenDirectory.path)) ?? [])
            .filter { $0.hasSuffix(".golden") && !$0.contains("owner-groups") }.map { String($0.dropLast(7)) }.sorted()
    }

    @Test func istioGoldensAreThere() {
        #expect(Self.istioGoldenNames.count >= 20)
    }

    @Test(arguments: istioGoldenNames)
    func istioGoldenRulesDecode(name: String) throws {
        let text = try String(contentsOf: Self.istioGoldenDirectory.appendingPathComponent("\(name).golden"), encoding: .utf8)
        let namespace = try ScratchNamespace()
        try namespace.load(text)
        let inventory = try namespace.run { try NftablesReadback().readInventory() }
        let rules = inventory.ownedTables.flatMap(\.chains).flatMap(\.rules)
        #expect(!rules.isEmpty)
        // Istio writes `tcp dport != { 53, 15008 }` with anonymous sets, which Sluice's vocabulary does not
        // have (it names its sets): exactly those rules stay text.
        let ruleLines = text.split(separator: "\n").filter { $0.hasPrefix("add rule ") || $0.hasPrefix("insert rule ") }
        #expect(rules.count == ruleLines.count)
        #expect(rules.filter { $0.rule == nil }.count == ruleLines.filter { $0.contains("{") }.count,
                "undecoded in \(name): \(rules.filter { $0.rule == nil }.map(\.text))")
    }
}
