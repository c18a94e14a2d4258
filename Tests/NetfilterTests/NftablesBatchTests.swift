import Capture
import CNetfilter
@testable import Netfilter
import Testing

/// The batch's bytes, decoded again (by hand and with libnftnl); no kernel, no root.
@Suite struct NftablesBatchTests {
    static func messages(_ batch: NftablesBatch) throws -> [NetlinkMessage] {
        try #require(NetlinkMessage.split(batch.bytes))
    }

    static func type(_ type: nf_tables_msg_types) -> UInt16 { UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(type.rawValue) }

    /// Netlink attributes (type without the nested/byte-order bits, value) of a message body. libnftnl
    /// cannot parse set elements back: like nft, it numbers the nested elements 1, 2, 3... where its
    /// parser expects NFTA_LIST_ELEM for each.
    static func attributes(_ bytes: ArraySlice<UInt8>) -> [(type: UInt16, value: ArraySlice<UInt8>)] {
        var result: [(type: UInt16, value: ArraySlice<UInt8>)] = []
        var offset = bytes.startIndex
        while bytes.endIndex - offset >= 4 {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3fff
            guard length >= 4, offset + length <= bytes.endIndex else { break }
            result.append((type, bytes[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
        return result
    }

    @Test func everyRuleEncodesExactlyAsNftDoes() throws {
        let batch = try NftablesBatch(applying: SampleRulesets.everything)
        let rules = try Self.messages(batch).filter { $0.type == Self.type(NFT_MSG_NEWRULE) }
            .map { try #require($0.withHeader(Nftnl.ruleText)).trimmingTrailingWhitespace }
        let golden = NftGoldens.everythingRules.components(separatedBy: "\n\n").map(\.trimmingTrailingWhitespace)
        #expect(rules.count == golden.count)
        for (index, (encoded, expected)) in zip(rules, golden).enumerated() {
            #expect(encoded == expected, "rule \(index + 1) of the batch")
        }
    }

    @Test func batchIsFramedAndEveryMessageAskedForAnAcknowledgement() throws {
        let batch = try NftablesBatch(applying: SampleRulesets.everything, firstSequence: 100)
        let messages = try Self.messages(batch)
        let begin = try #require(messages.first), end = try #require(messages.last)
        #expect(begin.type == UInt16(NFNL_MSG_BATCH_BEGIN) && end.type == UInt16(NFNL_MSG_BATCH_END))
        // nfgenmsg.res_id, big-endian: the batch is for the nftables subsystem.
        #expect(Array(begin.payload.dropFirst(2).prefix(2)) == [0, UInt8(NFNL_SUBSYS_NFTABLES)])
        #expect(begin.sequence == 100 && batch.beginSequence == 100 && batch.endSequence == end.sequence)

        let inner = messages.dropFirst().dropLast()
        #expect(inner.count == batch.messages.count)
        #expect(inner.allSatisfy { $0.flags & UInt16(NLM_F_ACK) != 0 })
        #expect(Set(messages.map(\.sequence)).count == messages.count)
        #expect(zip(inner, batch.messages).allSatisfy { $0.sequence == $1.sequence && $0.type & 0xff == $1.type })
        #expect(batch.bytes.count == messages.reduce(0) { $0 + $1.bytes.count })
    }

    @Test func ownedTablesAreReplacedOrRemovedInOrder() throws {
        let batch = try NftablesBatch(applying: SampleRulesets.small)
        let descriptions = batch.messages.map(\.description)
        #expect(descriptions == [
            "table inet istio-proxy-nat", "removal of table inet istio-proxy-nat", "table inet istio-proxy-nat",
            "chain output in table inet istio-proxy-nat", "chain istio-output in table inet istio-proxy-nat",
            "rule 1 of chain output in table inet istio-proxy-nat",
            "rule 1 of chain istio-output in table inet istio-proxy-nat",
            "rule 2 of chain istio-output in table inet istio-proxy-nat",
            "table inet istio-proxy-mangle", "removal of table inet istio-proxy-mangle",
            "table inet istio-proxy-raw", "removal of table inet istio-proxy-raw",
        ])
        let types = try Self.messages(batch).dropFirst().dropLast().map(\.type)
        #expect(types.prefix(3) == [Self.type(NFT_MSG_NEWTABLE), Self.type(NFT_MSG_DELTABLE), Self.type(NFT_MSG_NEWTABLE)])
        // NEWRULE appends; no message of the batch may fail because its object already exists.
        let flags = try Self.messages(batch).dropFirst().dropLast()
        #expect(flags.allSatisfy { $0.flags & UInt16(NLM_F_EXCL) == 0 })
        #expect(flags.filter { $0.type == Self.type(NFT_MSG_NEWRULE) }.allSatisfy { $0.flags & UInt16(NLM_F_APPEND) != 0 })
    }

    @Test func knownExistingTablesAreDeletedAndOnlyThose() throws {
        let fresh = try NftablesBatch(applying: SampleRulesets.small, existingTables: [])
        #expect(fresh.messages.prefix(3).map(\.description) == [
            "table inet istio-proxy-nat", "chain output in table inet istio-proxy-nat",
            "chain istio-output in table inet istio-proxy-nat",
        ])
        #expect(!fresh.messages.contains { $0.description.hasPrefix("removal") })

        let rerun = try NftablesBatch(applying: SampleRulesets.small, existingTables: ["istio-proxy-nat", "istio-proxy-raw"])
        #expect(rerun.messages.filter { $0.description.hasPrefix("removal") }.map(\.description)
            == ["removal of table inet istio-proxy-nat", "removal of table inet istio-proxy-raw"])
        #expect(rerun.messages.first?.description == "removal of table inet istio-proxy-nat")
    }

    @Test func cleanupRemovesAllThreeOwnedTablesAndNothingElse() throws {
        let batch = NftablesBatch.removingOwnedTables()
        #expect(batch.messages.map(\.description) == Ruleset.ownedTableNames.flatMap {
            ["table inet \($0)", "removal of table inet \($0)"]
        })
    }

    @Test func tableCommentTravelsAsNftUserdata() throws {
        let batch = try NftablesBatch(applying: SampleRulesets.small)
        let tables = try Self.messages(batch).filter { $0.type == Self.type(NFT_MSG_NEWTABLE) }
        let parsed = tables.compactMap { $0.withHeader(Readback.parseTable) }
        #expect(parsed.map(\.name) == ["istio-proxy-nat", "istio-proxy-nat", "istio-proxy-mangle", "istio-proxy-raw"])
        #expect(parsed.map(\.comment) == [nil, "sluice test small", nil, nil])
    }

    /// 10,000 CIDRs become many NEWSETELEM messages of the same set, each well inside the 64 KiB an
    /// attribute can describe, together holding every boundary exactly once.
    @Test func bigSetsAreSplitIntoMessagesUnder64KiB() throws {
        let ruleset = SampleRulesets.big
        let batch = try NftablesBatch(applying: ruleset)
        let elementMessages = try Self.messages(batch).filter { $0.type == Self.type(NFT_MSG_NEWSETELEM) }
        #expect(elementMessages.count > 3)
        #expect(elementMessages.allSatisfy { $0.bytes.count < 40 * 1024 })

        let table = try #require(ruleset.table(named: "istio-proxy-nat"))
        for set in table.sets {
            let expected = NftablesSetElement.elements(of: set.elements)
            let counted = elementMessages.reduce(0) { total, message in
                let attributes = Self.attributes(message.payload.dropFirst(4))
                guard let name = attributes.first(where: { $0.type == UInt16(NFTA_SET_ELEM_LIST_SET.rawValue) }),
                      String(decoding: name.value.prefix { $0 != 0 }, as: UTF8.self) == set.name,
                      let list = attributes.first(where: { $0.type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) })
                else { return total }
                return total + Self.attributes(list.value).count
            }
            #expect(counted == expected.count, "elements of \(set.name)")
        }
        let descriptions = batch.messages.filter { $0.type == UInt16(NFT_MSG_NEWSETELEM.rawValue) }.map(\.description)
        #expect(descriptions.first?.hasPrefix("elements of set outbound-exclude-ipv4 in table inet istio-proxy-nat (part 1 of ") == true)
    }

    @Test func intervalSetsEncodeBoundariesLikeNft() {
        func elements(_ family: IPFamily, _ cidrs: [String]) -> [NftablesSetElement] {
            NftablesSetElement.elements(of: .addresses(family, SampleRulesets.ranges(cidrs)))
        }
        // A leading end at 0 closes the gap below the first range; each range has a start and an end.
        #expect(elements(.ipv4, ["10.0.0.0/8"]) == [
            NftablesSetElement(key: [0, 0, 0, 0], isIntervalEnd: true),
            NftablesSetElement(key: [10, 0, 0, 0]),
            NftablesSetElement(key: [11, 0, 0, 0], isIntervalEnd: true),
        ])
        // A range from 0 needs no leading end; one reaching the last address has no end and is marked open.
        #expect(elements(.ipv4, ["0.0.0.0/8", "255.0.0.0/8"]) == [
            NftablesSetElement(key: [0, 0, 0, 0]),
            NftablesSetElement(key: [1, 0, 0, 0], isIntervalEnd: true),
            NftablesSetElement(key: [255, 0, 0, 0], isOpenInterval: true),
        ])
        #expect(elements(.ipv4, ["0.0.0.0/0"]) == [NftablesSetElement(key: [0, 0, 0, 0], isOpenInterval: true)])
        #expect(elements(.ipv6, ["::1/128"]) == [
            NftablesSetElement(key: Array(repeating: 0, count: 16), isIntervalEnd: true),
            NftablesSetElement(key: Array(repeating: 0, count: 15) + [1]),
            NftablesSetElement(key: Array(repeating: 0, count: 15) + [2], isIntervalEnd: true),
        ])
        #expect(NftablesSetElement.elements(of: .ports([53, 15008])) == [
            NftablesSetElement(key: [0, 53]), NftablesSetElement(key: [0x3a, 0xa0]),
        ])
        #expect(elements(.ipv4, []).isEmpty)
    }

    @Test func setsAreDeclaredWithNftsTypes() {
        #expect(NftablesSetContents(.addresses(.ipv4, [])) == NftablesSetContents(keyType: 7, keyLength: 4, isInterval: true))
        #expect(NftablesSetContents(.addresses(.ipv6, [])) == NftablesSetContents(keyType: 8, keyLength: 16, isInterval: true))
        #expect(NftablesSetContents(.ports([])) == NftablesSetContents(keyType: 13, keyLength: 2, isInterval: false))
    }

    @Test func lookupsReferToTheSetCreatedInTheSameBatch() throws {
        let rule = Rule([.destinationAddressInSet(.ipv6, set: "b")], [], comment: "")
        let expressions = try NftablesRuleCompiler.expressions(for: rule, setIDs: ["a": 1, "b": 2])
        #expect(expressions.last == .lookup(set: "b", setID: 2))
    }

    @Test func anExplicitProtocolMatchIsNotRepeated() throws {
        let explicit = Rule([.transportProtocol(.udp), .destinationPort(.udp, 53, negated: false)], [], comment: "")
        let implicit = Rule([.destinationPort(.udp, 53, negated: false)], [], comment: "")
        #expect(try NftablesRuleCompiler.expressions(for: explicit, setIDs: [:])
                == NftablesRuleCompiler.expressions(for: implicit, setIDs: [:]))
        // After the port match, an explicit match is kept, as nft keeps it.
        let after = Rule([.destinationPort(.udp, 53, negated: false), .transportProtocol(.udp)], [], comment: "")
        #expect(try NftablesRuleCompiler.expressions(for: after, setIDs: [:]).count == 6)
    }

    @Test func whatNetlinkCannotCarryIsRefusedBeforeSending() {
        func error(_ ruleset: Ruleset) -> KernelError? {
            do { _ = try NftablesBatch(applying: ruleset); return nil } catch { return error }
        }
        let longName = Ruleset(tables: [Table(name: "istio-proxy-nat", chains: [
            Chain(name: "c", rules: [Rule([.inputInterface("a-very-long-interface")], [], comment: "")]),
        ])])
        #expect(error(longName)?.description.contains("interface name \"a-very-long-interface\"") == true)
        #expect(error(longName)?.exitCode == 2)
        let longComment = Ruleset(tables: [Table(name: "istio-proxy-raw", chains: [
            Chain(name: "c", rules: [Rule([], [.counter], comment: String(repeating: "x", count: 129))]),
        ])])
        #expect(error(longComment)?.description.contains("rule 1 of chain c in table inet istio-proxy-raw") == true)
        let foreign = Ruleset(tables: [Table(name: "filter")])
        #expect(error(foreign)?.description.contains("table filter is not one of Sluice's tables") == true)
    }

    @Test func userdataRoundTrips() {
        let bytes = Userdata.encode([(type: 0, value: Userdata.string("sluice fp=abc"))])
        #expect(bytes == [0, 14] + Array("sluice fp=abc".utf8) + [0])
        #expect(Userdata.comment(in: bytes) == "sluice fp=abc")
        #expect(Userdata.comment(in: [0, 9, 1]) == nil)
        #expect(Userdata.comment(in: []) == nil)
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var text = self
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}
