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
        // Bounded: another agent rewriting the rules non-stop makes every pass inconsistent.
        for _ in 0..<5 {
            let before = try generation()
            guard let inventory = try readInventoryOnce() else { continue }
            if try generation() == before { return inventory }
        }
        throw .unexpectedReply("the ruleset kept changing while it was read")
    }

    private func readInventoryOnce() throws(KernelError) -> KernelRuleset? {
        func dumpAll<Value>(_ type: nf_tables_msg_types,
                            _ parse: (UnsafePointer<nlmsghdr>) -> Value?) throws(KernelError) -> [Value]? {
            try exchange({ Inventory.dumpRequest(type, sequence: $0) }, isDump: true, reading: "the ruleset", parse)
        }
        guard let dumpedTables = try dumpAll(NFT_MSG_GETTABLE, Inventory.parseTable) else { return nil }
        var tables = dumpedTables
        func index(_ key: Inventory.TableKey) -> Int? {
            tables.firstIndex { $0.family == key.family && $0.name == key.name }
        }
        guard let sets = try dumpAll(NFT_MSG_GETSET, Inventory.parseSet) else { return nil }
        for set in sets {
            guard let at = index(set.table) else { continue }
            let request = { sequence in
                Inventory.setElementsRequest(family: set.familyNumber, table: set.table.name, set: set.name, sequence: sequence)
            }
            guard let elements = try exchange(request, isDump: true, reading: "the ruleset", Readback.parseElements) else {
                return nil
            }
            tables[at].sets.append(set.kernelSet(elements: elements.flatMap { $0 }))
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

/// Parsing for the inventory: like `Readback`'s, but for every family, keeping handles, counters and
/// hooks as values.
enum Inventory {
    struct TableKey: Hashable {
        var family: String
        var name: String
    }

    struct DumpedSet {
        var table: TableKey
        var familyNumber: UInt32
        var name: String
        var keyType: UInt32
        var keyLength: UInt32
        var flags: UInt32
        var declaration: String

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
            return KernelSet(name: name, contents: contents.map { NamedSet(name: name, elements: $0) }, declaration: declaration)
        }
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
                if let first = start {
                    // Two starts in a row: the first range ran to the second's start only if open; nft never
                    // sends that, so the set is not one Sluice made.
                    _ = first
                    return nil
                }
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

    // MARK: Requests

    static func dumpRequest(_ type: nf_tables_msg_types, sequence: UInt32) -> [UInt8] {
        message(capacity: 64) { buffer in
            nftnl_nlmsg_build_hdr(buffer, UInt16(type.rawValue), UInt16(NFPROTO_UNSPEC), UInt16(NLM_F_DUMP), sequence)
        }
    }

    static func setElementsRequest(family: UInt32, table: String, set: String, sequence: UInt32) -> [UInt8] {
        message(capacity: 1024) { buffer in
            guard let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETSETELEM.rawValue), UInt16(family),
                                                     UInt16(NLM_F_DUMP), sequence),
                  let object = nftnl_set_alloc() else { return nil }
            defer { nftnl_set_free(object) }
            // Names are at most 255 bytes (the kernel's limit), well inside the buffer.
            _ = nftnl_set_set_str(object, UInt16(NFTNL_SET_TABLE.rawValue), table)
            _ = nftnl_set_set_str(object, UInt16(NFTNL_SET_NAME.rawValue), set)
            nftnl_set_elems_nlmsg_build_payload(header, object)
            return header
        }
    }

    private static func message(capacity: Int,
                                _ body: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        guard let header = body(buffer.assumingMemoryBound(to: CChar.self)) else { return [] }
        return Array(UnsafeRawBufferPointer(start: buffer, count: min(Int(header.pointee.nlmsg_len), capacity)))
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

    static func parseSet(_ message: UnsafePointer<nlmsghdr>) -> DumpedSet? {
        guard let parsed = Readback.parseSet(message), let set = nftnl_set_alloc() else { return nil }
        defer { nftnl_set_free(set) }
        guard nftnl_set_nlmsg_parse(message, set) >= 0 else { return nil }
        func u32(_ attribute: nftnl_set_attr) -> UInt32 {
            nftnl_set_is_set(set, UInt16(attribute.rawValue)) ? nftnl_set_get_u32(set, UInt16(attribute.rawValue)) : 0
        }
        let familyNumber = u32(NFTNL_SET_FAMILY)
        return DumpedSet(table: TableKey(family: familyName(familyNumber), name: parsed.0), familyNumber: familyNumber,
                         name: parsed.1.name, keyType: parsed.2, keyLength: u32(NFTNL_SET_KEY_LEN), flags: u32(NFTNL_SET_FLAGS),
                         declaration: parsed.1.declaration)
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
                readable = false
                // A counter of a rule Sluice cannot decode still counts.
                if let namePointer = nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)),
                   String(cString: namePointer) == "counter" {
                    counter = RuleCounter(packets: nftnl_expr_get_u64(expression, UInt16(NFTNL_EXPR_CTR_PACKETS)),
                                          bytes: nftnl_expr_get_u64(expression, UInt16(NFTNL_EXPR_CTR_BYTES)))
                }
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
