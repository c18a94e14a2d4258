import Capture
import CCapabilities
import CNetfilter
import Foundation
import Glibc
@testable import Netfilter
import Testing

/// Programs rulesets into fresh network namespaces over netlink and checks them with `nft`.
@Suite(.serialized) struct NftablesKernelTests {
    static let samples = ["everything": SampleRulesets.everything, "big": SampleRulesets.big, "small": SampleRulesets.small]

    /// The ruleset programmed over netlink lists exactly like the same ruleset loaded by `nft -f` from
    /// its rendered text, down to every expression and set element.
    @Test(arguments: ["everything", "big", "small"])
    func netlinkMatchesNftText(sample: String) throws {
        let ruleset = try #require(Self.samples[sample])
        try expectNetlinkMatchesNftText(ruleset)
    }

    /// The same for what `sluice-init` really programs: the builder's rulesets for Istio's defaults and
    /// for TPROXY with DNS capture and IPv6.
    @Test func builtRulesetsMatchNftText() throws {
        var tproxy = CaptureConfig.injectorDefault
        tproxy.interceptionMode = .tproxy
        tproxy.enableIPv6 = true
        tproxy.dns = .init(captureAll: false, servers: [IPAddress("192.0.2.53"), IPAddress("2001:db8::53")].compactMap { $0 })
        tproxy.outboundExcludedCIDRs = ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/48"].compactMap(CIDR.init)
        tproxy.excludedInterfaces = ["eth7"]
        // Every list and option of REDIRECT mode at once, with interface wildcards.
        var everyList = CaptureConfig()
        everyList.inboundPorts = .only([8080, 9090])
        everyList.outboundDestinations = .only(["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"].compactMap(CIDR.init))
        everyList.outboundExcludedCIDRs = ["10.1.0.0/16", "2001:db8:1::/48"].compactMap(CIDR.init)
        everyList.outboundIncludedPorts = [3306, 5432]
        everyList.outboundExcludedPorts = [22, 53000]
        everyList.virtualInterfaces = ["tap*", "docker0"]
        everyList.excludedInterfaces = ["veth*"]
        everyList.ownerGroups = .allExcept([888, 999])
        everyList.dns = .init(captureAll: true, servers: [])
        everyList.dropInvalid = true
        everyList.enableIPv6 = true
        everyList.proxyUIDs = [1337, 1338]
        for config in [CaptureConfig.injectorDefault, tproxy, everyList] {
            try expectNetlinkMatchesNftText(RulesetBuilder.build(config).stamped())
        }
    }

    func expectNetlinkMatchesNftText(_ ruleset: Ruleset, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let viaNetlink = try ScratchNamespace()
        try viaNetlink.client().apply(ruleset)
        let viaText = try ScratchNamespace()
        try viaText.load(NftTextRenderer.render(ruleset))

        let listing = try viaNetlink.listing()
        #expect(listing == (try viaText.listing()), sourceLocation: sourceLocation)
        #expect(try viaNetlink.expressionListing() == (try viaText.expressionListing()), sourceLocation: sourceLocation)
        for table in ruleset.tables {
            #expect(listing.contains("table inet \(table.name) {"), sourceLocation: sourceLocation)
            if let comment = table.comment {
                #expect(listing.contains("comment \"\(comment)\""), sourceLocation: sourceLocation)
            }
        }
    }

    /// Applying again replaces the tables and removes the owned tables the new ruleset lacks; the
    /// result is what the new ruleset alone would give.
    @Test func reapplyingConvergesToTheNewRuleset() throws {
        let namespace = try ScratchNamespace()
        let client = try namespace.client()
        try client.apply(SampleRulesets.everything)
        try client.apply(SampleRulesets.everything)
        try client.apply(SampleRulesets.small)
        let fresh = try ScratchNamespace()
        try fresh.client().apply(SampleRulesets.small)
        #expect(try namespace.listing() == (try fresh.listing()))
        #expect(!(try namespace.listing()).contains("istio-proxy-mangle"))
    }

    /// A rule the kernel refuses fails the whole batch: the error names that rule, and the kernel still
    /// holds the previous ruleset byte for byte.
    @Test func aRefusedRuleChangesNothingAndIsNamed() throws {
        let namespace = try ScratchNamespace()
        let client = try namespace.client()
        try client.apply(SampleRulesets.everything)
        let before = try namespace.nft("list", "ruleset")

        var broken = SampleRulesets.small
        broken.tables[0].chains[1].rules.insert(
            Rule([.socketGID(7, negated: false)], [.verdict(.jump("no-such-chain"))], comment: "dangling"), at: 1)
        #expect {
            try client.apply(broken)
        } throws: { error in
            guard let error = error as? KernelError, case .refused(let refusals) = error else { return false }
            return refusals.first?.object == "rule 2 of chain istio-output in table inet istio-proxy-nat"
                && refusals.first?.errno == ENOENT
                && error.exitCode == 1
                && error.description.hasPrefix(
                    "kernel refused rule 2 of chain istio-output in table inet istio-proxy-nat: No such file or directory")
        }
        #expect(try namespace.nft("list", "ruleset") == before)

        // A statement the chain type does not allow is refused the same way.
        var misplaced = SampleRulesets.small
        misplaced.tables.append(Table(name: "istio-proxy-raw", chains: [
            Chain(name: "output", base: BaseChain(type: .filter, hook: .output, priority: -300), rules: [
                Rule([], [.redirect(toPort: 15001)], comment: "redirect outside a nat chain"),
            ]),
        ]))
        #expect {
            try client.apply(misplaced)
        } throws: { error in
            (error as? KernelError)?.description.hasPrefix(
                "kernel refused rule 1 of chain output in table inet istio-proxy-raw: Operation not supported") == true
        }
        #expect(try namespace.nft("list", "ruleset") == before)
    }

    /// Cleanup removes the three owned tables, whether or not they exist, and nothing else.
    @Test func cleanupRemovesOnlyOwnedTables() throws {
        let namespace = try ScratchNamespace()
        let client = try namespace.client()
        try client.removeOwnedTables()
        try namespace.load("""
            table inet foreign {
                chain c {
                    type filter hook output priority 0; policy accept;
                    counter
                }
            }
            table ip istio-proxy-nat {
                chain c {
                    counter
                }
            }
            """)
        try client.apply(SampleRulesets.everything)
        try client.removeOwnedTables()
        let listing = try namespace.nft("list", "tables")
        #expect(listing == "table inet foreign\ntable ip istio-proxy-nat\n")
        #expect(try namespace.run { try NftablesReadback().read() }.tables.isEmpty)
    }

    /// Without CAP_NET_ADMIN the pre-flight check says so, and so does the kernel: a configuration error.
    @Test func missingCapabilityIsReportedAsSuch() throws {
        #expect(ProcessCapabilities.hasEffective(.netAdmin))
        let namespace = try ScratchNamespace()
        try namespace.run {
            // Only this thread loses the capability, and the thread ends with the closure.
            guard let capabilities = cap_get_proc() else { Issue.record("cap_get_proc failed"); return }
            defer { cap_free(UnsafeMutableRawPointer(capabilities)) }
            var dropped = [cap_value_t(CAP_NET_ADMIN)]
            #expect(cap_set_flag(capabilities, CAP_EFFECTIVE, 1, &dropped, CAP_CLEAR) == 0)
            #expect(cap_set_proc(capabilities) == 0)

            #expect(!ProcessCapabilities.hasEffective(.netAdmin))
            #expect(throws: KernelError.permissionDenied(operation: "program nftables")) {
                try ProcessCapabilities.requireNetAdmin()
            }
            let client = try NftablesClient()
            #expect(throws: KernelError.permissionDenied(operation: "program nftables")) {
                try client.apply(SampleRulesets.small)
            }
            #expect(throws: KernelError.permissionDenied(operation: "read back the ruleset generation")) {
                try NftablesReadback().read()
            }
        }
        #expect(try namespace.nft("list", "ruleset").isEmpty)
    }
}
