import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

extension NftablesReadback {
    /// Every table of every family in this network namespace, with chains, rules (handles and counter
    /// values included) and sets, read consistently like `read()`: owned tables decoded into the
    /// ruleset model where their rules allow, the rest kept as text.
    public func readInventory() throws(KernelError) -> KernelRuleset {
        try consistently(readInventoryOnce)
    }

    private func readInventoryOnce() throws(KernelError) -> KernelRuleset? {
        func dumpAll<Value>(_ type: nf_tables_msg_types,
                            _ parse: (UnsafePointer<nlmsghdr>) -> Value?) throws(KernelError) -> [Value]? {
            try dump(type, family: Int(NFPROTO_UNSPEC), parse)
        }
        guard let dumpedTables = try dumpAll(NFT_MSG_GETTABLE, Inventory.parseTable) else { return nil }
        var tables = dumpedTables
        func index(_ key: Inventory.TableKey) -> Int? {
            tables.firstIndex { $0.family == key.family && $0.name == key.name }
        }
        guard let sets = try dumpAll(NFT_MSG_GETSET, Readback.parseSet) else { return nil }
        for set in sets {
            guard let at = index(Inventory.TableKey(family: Inventory.familyName(set.family), name: set.table)) else { continue }
            guard let elements = try elements(of: set) else { return nil }
            tables[at].sets.append(set.kernelSet(elements: elements))
        }
        guard let chains = try dumpAll(NFT_MSG_GETCHAIN, Inventory.parseChain) else { return nil }
        for (key, chain) in chains {
            if let at = index(key) { tables[at].chains.append(chain) }
        }
        guard let rules = try dumpAll(NFT_MSG_GETRULE, Inventory.parseRule) else { return nil }
        for (key, chainName, rule) in rules {
            guard let at = index(key) else { continue }
            guard let chainIndex = tables[at].chains.firstIndex(where: { $0.name == chainName }) else {
                throw .unexpectedReply("a rule of chain \(chainName), which the chain dump of \(key.family) \(key.name) did not list")
            }
            tables[at].chains[chainIndex].rules.append(rule)
        }
        return KernelRuleset(tables: tables)
    }
}

extension Readback.ParsedSet {
    /// The set in Sluice's model when it is one of the two kinds Sluice makes: ports, or an interval
    /// set of addresses.
    func kernelSet(elements: [NftablesSetElement]) -> KernelSet {
        let interval = flags & UInt32(NFT_SET_INTERVAL.rawValue) != 0
        let otherFlags = flags & ~(UInt32(NFT_SET_INTERVAL.rawValue) | UInt32(NFT_SET_CONSTANT.rawValue))
        var contents: NamedSet.Elements?
        switch NftablesKeyType(number: keyType) {
        case .some(let type) where type.family == nil && !interval && otherFlags == 0 && keyLength == 2:
            let ports = elements.compactMap { $0.key.count == 2 ? UInt16($0.key[0]) << 8 | UInt16($0.key[1]) : nil }
            contents = ports.count == elements.count ? .ports(ports.sorted()) : nil
        case .some(let type) where type.family != nil && interval && otherFlags == 0 && keyLength == type.length:
            contents = Inventory.ranges(type.family!, elements).map { .addresses(type.family!, $0) }
        default:
            contents = nil
        }
        return KernelSet(name: set.name, contents: contents.map { NamedSet(name: set.name, elements: $0) },
                         declaration: set.declaration)
    }
}

/// Parsing for the inventory: like `Readback`'s, but for every family, keeping handles, counters and
/// hooks as values.
enum Inventory {
    struct TableKey: Hashable {
        var family: String
        var name: String
    }

    /// An interval set's boundary elements back into ranges: each start element opens a range that the
    /// next end element (the address after it) closes; an open-interval start runs to the last address.
    static func ranges(_ family: IPFamily, _ elements: [NftablesSetElement]) -> [AddressRange]? {
        let sorted = elements.sorted { left, right in
            left.key == right.key ? (left.isIntervalEnd && !right.isIntervalEnd) : left.key.lexicographicallyPrecedes(right.key)
        }
        var ranges: [AddressRange] = []
        var start: [UInt8]?
        for element in sorted {
            guard element.key.count == family.addressLength else { return nil }
            if element.isIntervalEnd {
                guard let first = start else { continue }   // the leading end at address 0
                guard let last = predecessor(element.key) else { return nil }
                ranges.append(AddressRange(first: IPAddress(family: family, bytes: first), last: IPAddress(family: family, bytes: last)))
                start = nil
            } else {
                // Two starts in a row: nft never sends that, so the set is not one Sluice made.
                guard start == nil else { return nil }
                if element.isOpenInterval {
                    let last = [UInt8](repeating: 0xff, count: family.addressLength)
                    ranges.append(AddressRange(first: IPAddress(family: family, bytes: element.key),
                                               last: IPAddress(family: family, bytes: last)))
                } else {
                    start = element.key
                }
            }
        }
        guard start == nil else { return nil }
        return ranges
    }

    private static func predecessor(_ bytes: [UInt8]) -> [UInt8]? {
        var result = bytes
        for index in result.indices.reversed() {
            if result[index] > 0 {
                result[index] -= 1
                return result
            }
            result[index] = 0xff
        }
        return nil
    }

    static func familyName(_ number: UInt32) -> String {
        switch Int32(number) {
        case Int32(NFPROTO_INET): "inet"
        case Int32(NFPROTO_IPV4): "ip"
        case Int32(NFPROTO_IPV6): "ip6"
        case Int32(NFPROTO_ARP): "arp"
        case Int32(NFPROTO_BRIDGE): "bridge"
        case Int32(NFPROTO_NETDEV): "netdev"
        default: "family \(number)"
        }
    }

    static func hookName(_ hook: UInt32, family: String) -> String {
        // netdev and inet's ingress hook share number 0 with prerouting.
        if family == "netdev" { return hook == 0 ? "ingress" : hook == 1 ? "egress" : "\(hook)" }
        switch Int(hook) {
        case Int(NF_INET_PRE_ROUTING.rawValue): return "prerouting"
        case Int(NF_INET_LOCAL_IN.rawValue): return "input"
        case Int(NF_INET_FORWARD.rawValue): return "forward"
        case Int(NF_INET_LOCAL_OUT.rawValue): return "output"
        case Int(NF_INET_POST_ROUTING.rawValue): return "postrouting"
        case Int(NF_INET_INGRESS.rawValue): return "ingress"
        default: return "\(hook)"
        }
    }

    // MARK: Parsing

    static func parseTable(_ message: UnsafePointer<nlmsghdr>) -> KernelTable? {
        guard let table = nftnl_table_alloc() else { return nil }
        defer { nftnl_table_free(table) }
        guard nftnl_table_nlmsg_parse(message, table) >= 0,
              let name = nftnl_table_get_str(table, UInt16(NFTNL_TABLE_NAME.rawValue)) else { return nil }
        var length: UInt32 = 0
        let data = nftnl_table_get_data(table, UInt16(NFTNL_TABLE_USERDATA.rawValue), &length)
        let family = familyName(nftnl_table_get_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue)))
        return KernelTable(family: family, name: String(cString: name),
                           comment: Userdata.comment(in: Readback.bytes(data, length)))
    }

    static func parseChain(_ message: UnsafePointer<nlmsghdr>) -> (TableKey, KernelChain)? {
        guard let chain = nftnl_chain_alloc() else { return nil }
        defer { nftnl_chain_free(chain) }
        guard nftnl_chain_nlmsg_parse(message, chain) >= 0,
              let table = nftnl_chain_get_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue)),
              let name = nftnl_chain_get_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue)) else { return nil }
        func isSet(_ attribute: nftnl_chain_attr) -> Bool { nftnl_chain_is_set(chain, UInt16(attribute.rawValue)) }
        let family = familyName(nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_FAMILY.rawValue)))
        var hook: KernelHook?
        if isSet(NFTNL_CHAIN_HOOKNUM) {
            let type = nftnl_chain_get_str(chain, UInt16(NFTNL_CHAIN_TYPE.rawValue)).map { String(cString: $0) } ?? "filter"
            let policy = isSet(NFTNL_CHAIN_POLICY) ? nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue)) : UInt32(NF_ACCEPT)
            hook = KernelHook(type: type,
                              hook: hookName(nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue)), family: family),
                              priority: nftnl_chain_get_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue)),
                              policy: policy == UInt32(NF_DROP) ? "drop" : "accept")
        }
        return (TableKey(family: family, name: String(cString: table)), KernelChain(name: String(cString: name), hook: hook))
    }

    static func parseRule(_ message: UnsafePointer<nlmsghdr>) -> (TableKey, String, KernelRule)? {
        guard let rule = nftnl_rule_alloc() else { return nil }
        defer { nftnl_rule_free(rule) }
        guard nftnl_rule_nlmsg_parse(message, rule) >= 0,
              let table = nftnl_rule_get_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue)),
              let chain = nftnl_rule_get_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue)),
              let iterator = nftnl_expr_iter_create(rule) else { return nil }
        defer { nftnl_expr_iter_destroy(iterator) }
        var expressions: [NftablesExpression] = []
        var listing: [String] = []
        var counter: RuleCounter?
        var readable = true
        // Bounded by the rule's expressions: the iterator ends with the list.
        while let expression = nftnl_expr_iter_next(iterator) {
            listing.append(Readback.render(expression) ?? "[ ? ]")
            if let (read, values) = NftablesExpressionReader.read(expression) {
                expressions.append(read)
                if let values { counter = values }
            } else {
                // Still read on: a counter of a rule Sluice cannot decode counts all the same.
                readable = false
            }
        }
        var length: UInt32 = 0
        let userdata = Readback.bytes(nftnl_rule_get_data(rule, UInt16(NFTNL_RULE_USERDATA.rawValue), &length), length)
        let comment = Userdata.comment(in: userdata)
        let decoded = readable ? NftablesRuleDecoder.decode(expressions, comment: comment) : nil
        let text = decoded.map(NftTextRenderer.render) ?? (listing.joined(separator: " ") + (comment.map { " comment \"\($0)\"" } ?? ""))
        let handle = nftnl_rule_get_u64(rule, UInt16(NFTNL_RULE_HANDLE.rawValue))
        let family = familyName(nftnl_rule_get_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue)))
        return (TableKey(family: family, name: String(cString: table)), String(cString: chain),
                KernelRule(handle: handle, rule: decoded, text: text, comment: comment, counter: counter))
    }
}
