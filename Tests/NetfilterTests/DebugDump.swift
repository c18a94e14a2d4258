import Capture
import Foundation
@testable import Netfilter
import Testing

@Test func debugDump() throws {
    let batch = try NftablesBatch(applying: SampleRulesets.small)
    for message in NetlinkMessage.split(batch.bytes)! where message.type == UInt16(10 << 8 | 6) {
        print("<<" + (message.withHeader(Nftnl.ruleText) ?? "nil") + ">>")
    }
}
