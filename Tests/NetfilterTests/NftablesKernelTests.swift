import Capture
import Foundation
@testable import Netfilter
import Testing

/// Programs rulesets into fresh network namespaces over netlink and checks them with `nft`.
@Suite(.serialized) struct NftablesKernelTests {
    /// The ruleset programmed over netlink lists exactly like the same ruleset loaded by `nft -f` from
    /// its rendered text, down to every expression and set element.
    @Test(arguments: ["everything", "big", "small"])
    func netlinkMatchesNftText(sample: String) throws {
        let ruleset = try #require(["everything": SampleRulesets.everything, "big": SampleRulesets.big,
                                    "small": SampleRulesets.small][sample])
        let viaNetlink = try ScratchNamespace()
        try viaNetlink.client().apply(ruleset)
        let viaText = try ScratchNamespace()
        try viaText.load(NftTextRenderer.render(ruleset))

        let listing = try viaNetlink.listing()
        #expect(listing == (try viaText.listing()))
        #expect(try viaNetlink.expressionListing() == (try viaText.expressionListing()))
        #expect(listing.contains("comment \"\(ruleset.tables[0].comment ?? "")\""))
    }
}
