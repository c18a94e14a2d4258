import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// libnftnl's encoding side: turns planned messages into netlink bytes and builds the read-back
/// requests (parsing the kernel's answers is `Readback`'s). Each libnftnl object is freed before the
/// function that made it returns; objects handed to a parent (expressions to a rule, elements to a
/// set) are freed with the parent.
enum Nftnl {
    // MARK: Encoding

    static func appendBatchBegin(sequence: UInt32, to bytes: inout [UInt8]) {
        withMessageBuffer(capacity: 64, appendingTo: &bytes) { nftnl_batch_begin($0, sequence) }
    }

    static func appendBatchEnd(sequence: UInt32, to bytes: inout [UInt8]) {
        withMessageBuffer(capacity: 64, appendingTo: &bytes) { nftnl_batch_end($0, sequence) }
    }

    /// Upper bound of one element in a NEWSETELEM element list: element nest, flags, key nest and key,
    /// userdata.
    static func elementSizeBound(keyLength: Int) -> Int { 4 + 8 + 4 + 4 + align(keyLength) + 4 + 8 }

    static func append(_ message: NftablesMessage, sequence: UInt32, to bytes: inout [UInt8]) throws(KernelError) {
        // NLM_F_CREATE without NLM_F_EXCL, as nft's `add`: creating what exists is not an error.
        let create = UInt16(NLM_F_CREATE | NLM_F_ACK)
        let inet = UInt16(NFPROTO_INET)
        switch message {
        case .newTable(let name, let comment):
            try build(NFT_MSG_NEWTABLE, family: inet, flags: create, sequence: sequence,
                      capacity: 1024, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_table_alloc(), free: nftnl_table_free) { table throws(KernelError) in
                    try check(nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), name))
                    nftnl_table_set_u32(table, attribute(NFTNL_TABLE_FLAGS), 0)
                    if let comment {
                        let userdata = Userdata.encode([(type: UInt8(NFTNL_UDATA_TABLE_COMMENT.rawValue), value: Userdata.string(comment))])
                        try check(userdata.withUnsafeBytes {
                            nftnl_table_set_data(table, attribute(NFTNL_TABLE_USERDATA), $0.baseAddress, UInt32($0.count))
                        })
                    }
                    nftnl_table_nlmsg_build_payload(header, table)
                }
            }
        case .newSocketOwnedTable(let name):
            try build(NFT_MSG_NEWTABLE, family: inet, flags: UInt16(NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK), sequence: sequence,
                      capacity: 1024, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_table_alloc(), free: nftnl_table_free) { table throws(KernelError) in
                    try check(nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), name))
                    nftnl_table_set_u32(table, attribute(NFTNL_TABLE_FLAGS), UInt32(NFT_TABLE_F_OWNER.rawValue))
                    nftnl_table_nlmsg_build_payload(header, table)
                }
            }
        case .deleteTable(let name):
            try build(NFT_MSG_DELTABLE, family: inet, flags: UInt16(NLM_F_ACK), sequence: sequence,
                      capacity: 1024, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_table_alloc(), free: nftnl_table_free) { table throws(KernelError) in
                    try check(nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), name))
                    nftnl_table_nlmsg_build_payload(header, table)
                }
            }
        case .newSet(let table, let name, let setID, let contents):
            try build(NFT_MSG_NEWSET, family: inet, flags: create, sequence: sequence,
                      capacity: 1024, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_set_alloc(), free: nftnl_set_free) { set throws(KernelError) in
                    try check(nftnl_set_set_str(set, attribute(NFTNL_SET_TABLE), table))
                    try check(nftnl_set_set_str(set, attribute(NFTNL_SET_NAME), name))
                    nftnl_set_set_u32(set, attribute(NFTNL_SET_FLAGS), contents.isInterval ? UInt32(NFT_SET_INTERVAL.rawValue) : 0)
                    nftnl_set_set_u32(set, attribute(NFTNL_SET_KEY_TYPE), contents.keyType)
                    nftnl_set_set_u32(set, attribute(NFTNL_SET_KEY_LEN), contents.keyLength)
                    nftnl_set_set_u32(set, attribute(NFTNL_SET_ID), setID)
                    // nft records the key's byte order (BYTEORDER_BIG_ENDIAN = 2) to print elements.
                    let userdata = Userdata.encode([(type: UInt8(NFTNL_UDATA_SET_KEYBYTEORDER.rawValue),
                                                     value: NftablesRuleCompiler.hostBytes(UInt32(2)))])
                    try check(userdata.withUnsafeBytes {
                        nftnl_set_set_data(set, attribute(NFTNL_SET_USERDATA), $0.baseAddress, UInt32($0.count))
                    })
                    nftnl_set_nlmsg_build_payload(header, set)
                }
            }
        case .newSetElements(let table, let setName, let setID, let elements, _, _):
            let keyLength = elements.first?.key.count ?? 0
            let capacity = 1024 + elements.count * elementSizeBound(keyLength: keyLength)
            try build(NFT_MSG_NEWSETELEM, family: inet, flags: create, sequence: sequence,
                      capacity: capacity, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_set_alloc(), free: nftnl_set_free) { set throws(KernelError) in
                    try check(nftnl_set_set_str(set, attribute(NFTNL_SET_TABLE), table))
                    try check(nftnl_set_set_str(set, attribute(NFTNL_SET_NAME), setName))
                    nftnl_set_set_u32(set, attribute(NFTNL_SET_ID), setID)
                    for element in elements {
                        guard let item = nftnl_set_elem_alloc() else { throw outOfMemory }
                        // The set owns the element from here on and frees it with itself.
                        nftnl_set_elem_add(set, item)
                        try check(element.key.withUnsafeBytes {
                            nftnl_set_elem_set(item, attribute(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
                        })
                        if element.isIntervalEnd {
                            nftnl_set_elem_set_u32(item, attribute(NFTNL_SET_ELEM_FLAGS), UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue))
                        }
                        if element.isOpenInterval {
                            let flags = NftablesRuleCompiler.hostBytes(UInt32(NFTNL_SET_ELEM_F_INTERVAL_OPEN.rawValue))
                            let userdata = Userdata.encode([(type: UInt8(NFTNL_UDATA_SET_ELEM_FLAGS.rawValue), value: flags)])
                            try check(userdata.withUnsafeBytes {
                                nftnl_set_elem_set(item, attribute(NFTNL_SET_ELEM_USERDATA), $0.baseAddress, UInt32($0.count))
                            })
                        }
                    }
                    nftnl_set_elems_nlmsg_build_payload(header, set)
                }
            }
        case .newChain(let table, let name, let base):
            try build(NFT_MSG_NEWCHAIN, family: inet, flags: create, sequence: sequence,
                      capacity: 1024, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_chain_alloc(), free: nftnl_chain_free) { chain throws(KernelError) in
                    try check(nftnl_chain_set_str(chain, attribute(NFTNL_CHAIN_TABLE), table))
                    try check(nftnl_chain_set_str(chain, attribute(NFTNL_CHAIN_NAME), name))
                    if let base {
                        nftnl_chain_set_u32(chain, attribute(NFTNL_CHAIN_HOOKNUM), hookNumber(base.hook))
                        nftnl_chain_set_s32(chain, attribute(NFTNL_CHAIN_PRIO), base.priority)
                        try check(nftnl_chain_set_str(chain, attribute(NFTNL_CHAIN_TYPE), base.type.rawValue))
                        nftnl_chain_set_u32(chain, attribute(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
                    }
                    nftnl_chain_nlmsg_build_payload(header, chain)
                }
            }
        case .newRule(let table, let chain, _, let expressions, let comment):
            // Each expression encodes to well under 512 bytes (the longest carries a set or chain name).
            let capacity = 2048 + expressions.count * 512
            let flags = UInt16(NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK)
            try build(NFT_MSG_NEWRULE, family: inet, flags: flags, sequence: sequence,
                      capacity: capacity, appendingTo: &bytes) { header throws(KernelError) in
                try withObject(nftnl_rule_alloc(), free: nftnl_rule_free) { rule throws(KernelError) in
                    try check(nftnl_rule_set_str(rule, attribute(NFTNL_RULE_TABLE), table))
                    try check(nftnl_rule_set_str(rule, attribute(NFTNL_RULE_CHAIN), chain))
                    if !comment.isEmpty {
                        let userdata = Userdata.encode([(type: UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), value: Userdata.string(comment))])
                        try check(userdata.withUnsafeBytes {
                            nftnl_rule_set_data(rule, attribute(NFTNL_RULE_USERDATA), $0.baseAddress, UInt32($0.count))
                        })
                    }
                    for expression in expressions {
                        try addExpression(expression, to: rule)
                    }
                    nftnl_rule_nlmsg_build_payload(header, rule)
                }
            }
        }
    }

    private static func addExpression(_ expression: NftablesExpression, to rule: OpaquePointer) throws(KernelError) {
        let register1 = UInt32(NFT_REG_1.rawValue)
        let name: String
        switch expression {
        case .metaLoad, .metaStore: name = "meta"
        case .conntrackLoad, .conntrackStore: name = "ct"
        case .payloadLoad: name = "payload"
        case .compare: name = "cmp"
        case .bitwiseAnd: name = "bitwise"
        case .lookup: name = "lookup"
        case .counter: name = "counter"
        case .immediate, .verdict: name = "immediate"
        case .redirectToPortInRegister: name = "redir"
        case .tproxyToPortInRegister: name = "tproxy"
        }
        guard let item = nftnl_expr_alloc(name) else { throw outOfMemory }
        // The rule owns the expression from here on and frees it with itself.
        nftnl_rule_add_expr(rule, item)
        func set(_ type: Int, _ value: UInt32) { nftnl_expr_set_u32(item, UInt16(type), value) }
        func set(_ type: Int, _ data: [UInt8]) throws(KernelError) {
            try check(data.withUnsafeBytes { nftnl_expr_set(item, UInt16(type), $0.baseAddress, UInt32($0.count)) })
        }
        func set(_ type: Int, _ string: String) throws(KernelError) {
            try check(nftnl_expr_set_str(item, UInt16(type), string))
        }
        switch expression {
        case .metaLoad(let key):
            set(NFTNL_EXPR_META_KEY, key.rawValue)
            set(NFTNL_EXPR_META_DREG, register1)
        case .metaStore(let key):
            set(NFTNL_EXPR_META_KEY, key.rawValue)
            set(NFTNL_EXPR_META_SREG, register1)
        case .conntrackLoad(let key):
            set(NFTNL_EXPR_CT_KEY, key.rawValue)
            set(NFTNL_EXPR_CT_DREG, register1)
        case .conntrackStore(let key):
            set(NFTNL_EXPR_CT_KEY, key.rawValue)
            set(NFTNL_EXPR_CT_SREG, register1)
        case .payloadLoad(let base, let offset, let length):
            set(NFTNL_EXPR_PAYLOAD_DREG, register1)
            set(NFTNL_EXPR_PAYLOAD_BASE, base.rawValue)
            set(NFTNL_EXPR_PAYLOAD_OFFSET, offset)
            set(NFTNL_EXPR_PAYLOAD_LEN, length)
        case .compare(let equal, let data):
            set(NFTNL_EXPR_CMP_SREG, register1)
            set(NFTNL_EXPR_CMP_OP, equal ? UInt32(NFT_CMP_EQ.rawValue) : UInt32(NFT_CMP_NEQ.rawValue))
            try set(NFTNL_EXPR_CMP_DATA, data)
        case .bitwiseAnd(let mask):
            set(NFTNL_EXPR_BITWISE_SREG, register1)
            set(NFTNL_EXPR_BITWISE_DREG, register1)
            set(NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
            try set(NFTNL_EXPR_BITWISE_MASK, mask)
            try set(NFTNL_EXPR_BITWISE_XOR, [UInt8](repeating: 0, count: mask.count))
        case .lookup(let setName, let setID):
            set(NFTNL_EXPR_LOOKUP_SREG, register1)
            try set(NFTNL_EXPR_LOOKUP_SET, setName)
            if let setID { set(NFTNL_EXPR_LOOKUP_SET_ID, setID) }
        case .counter:
            break
        case .immediate(let data):
            set(NFTNL_EXPR_IMM_DREG, register1)
            try set(NFTNL_EXPR_IMM_DATA, data)
        case .verdict(let verdict):
            set(NFTNL_EXPR_IMM_DREG, UInt32(NFT_REG_VERDICT.rawValue))
            let code: Int32
            switch verdict {
            case .accept: code = NF_ACCEPT
            case .drop: code = NF_DROP
            case .return: code = NFT_RETURN.rawValue
            case .jump: code = NFT_JUMP.rawValue
            }
            set(NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: code))
            if case .jump(let target) = verdict { try set(NFTNL_EXPR_IMM_CHAIN, target) }
        case .redirectToPortInRegister:
            set(NFTNL_EXPR_REDIR_REG_PROTO_MIN, register1)
            set(NFTNL_EXPR_REDIR_FLAGS, natRangeProtocolSpecified)
        case .tproxyToPortInRegister(let family):
            set(NFTNL_EXPR_TPROXY_FAMILY, UInt32(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6))
            set(NFTNL_EXPR_TPROXY_REG_PORT, register1)
        }
    }

    /// `NF_NAT_RANGE_PROTO_SPECIFIED` from <linux/netfilter/nf_nat.h>: the redirect names a port.
    private static let natRangeProtocolSpecified: UInt32 = 2

    private static func hookNumber(_ hook: BaseChain.Hook) -> UInt32 {
        switch hook {
        case .prerouting: return UInt32(NF_INET_PRE_ROUTING.rawValue)
        case .output: return UInt32(NF_INET_LOCAL_OUT.rawValue)
        }
    }

    // MARK: Requests and parsing

    /// A dump request for every object of one kind in tables of `family` (inet unless told;
    /// `NFPROTO_UNSPEC` for every family).
    static func dumpRequest(_ type: nf_tables_msg_types, family: Int = Int(NFPROTO_INET), sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        withMessageBuffer(capacity: 64, appendingTo: &bytes) { buffer in
            nftnl_nlmsg_build_hdr(buffer, UInt16(type.rawValue), UInt16(family), UInt16(NLM_F_DUMP), sequence)
        }
        return bytes
    }

    /// A request for the ruleset generation, which the kernel bumps on every commit.
    static func generationRequest(sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        withMessageBuffer(capacity: 64, appendingTo: &bytes) { buffer in
            nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETGEN.rawValue), UInt16(AF_UNSPEC), 0, sequence)
        }
        return bytes
    }

    /// A dump request for the elements of one set (the kernel dumps elements only set by set).
    static func setElementsRequest(family: Int = Int(NFPROTO_INET), table: String, set: String, sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        withMessageBuffer(capacity: 1024, appendingTo: &bytes) { buffer in
            guard let header = nftnl_nlmsg_build_hdr(buffer, UInt16(NFT_MSG_GETSETELEM.rawValue),
                                                     UInt16(family), UInt16(NLM_F_DUMP), sequence),
                  let object = nftnl_set_alloc() else { return nil }
            defer { nftnl_set_free(object) }
            // Names are at most 255 bytes (the kernel's limit), well inside the buffer.
            _ = nftnl_set_set_str(object, attribute(NFTNL_SET_TABLE), table)
            _ = nftnl_set_set_str(object, attribute(NFTNL_SET_NAME), set)
            nftnl_set_elems_nlmsg_build_payload(header, object)
            return header
        }
        return bytes
    }

    /// libnftnl's text form of a rule message (`[ meta load l4proto => reg 1 ] ...`), the form
    /// `nft --debug=netlink` prints; for tests and diagnostics.
    static func ruleText(_ message: UnsafePointer<nlmsghdr>) -> String? {
        parse(message, alloc: nftnl_rule_alloc, free: nftnl_rule_free, parse: nftnl_rule_nlmsg_parse) { rule in
            var buffer = [CChar](repeating: 0, count: 16 * 1024)
            let length = nftnl_rule_snprintf(&buffer, buffer.count, rule, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
            guard length >= 0, Int(length) < buffer.count else { return nil }
            return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    // MARK: Helpers

    static let outOfMemory = KernelError.systemCall("libnftnl allocation", errno: ENOMEM)

    private static func align(_ length: Int) -> Int { (length + 3) & ~3 }

    private static func check(_ status: Int32) throws(KernelError) {
        // libnftnl setters fail only when they cannot allocate their copy.
        guard status >= 0 else { throw outOfMemory }
    }

    private static func attribute<Attribute: RawRepresentable>(_ value: Attribute) -> UInt16
    where Attribute.RawValue: BinaryInteger {
        UInt16(value.rawValue)
    }

    private static func attribute(_ value: Int) -> UInt16 { UInt16(value) }

    private static func withObject<Object>(_ object: Object?, free: (Object) -> Void,
                                           _ body: (Object) throws(KernelError) -> Void) throws(KernelError) {
        guard let object else { throw outOfMemory }
        defer { free(object) }
        try body(object)
    }

    private static func parse<Object, Value>(
        _ message: UnsafePointer<nlmsghdr>, alloc: () -> Object?, free: (Object) -> Void,
        parse: (UnsafePointer<nlmsghdr>, Object) -> Int32, _ extract: (Object) -> Value?
    ) -> Value? {
        guard let object = alloc() else { return nil }
        defer { free(object) }
        guard parse(message, object) >= 0 else { return nil }
        return extract(object)
    }

    /// Builds one message in a zeroed scratch buffer of `capacity` bytes (which the caller sizes to
    /// bound the message: libmnl does not check) and appends its `nlmsg_len` bytes.
    private static func build(
        _ type: nf_tables_msg_types, family: UInt16, flags: UInt16, sequence: UInt32, capacity: Int,
        appendingTo bytes: inout [UInt8], payload: (UnsafeMutablePointer<nlmsghdr>) throws(KernelError) -> Void
    ) throws(KernelError) {
        var failure: KernelError?
        withMessageBuffer(capacity: capacity, appendingTo: &bytes) { buffer in
            let header = nftnl_nlmsg_build_hdr(buffer, UInt16(type.rawValue), family, flags, sequence)
            do throws(KernelError) {
                if let header { try payload(header) }
            } catch {
                failure = error
            }
            return header
        }
        if let failure { throw failure }
    }

    private static func withMessageBuffer(capacity: Int, appendingTo bytes: inout [UInt8],
                                          _ body: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        guard let header = body(buffer.assumingMemoryBound(to: CChar.self)) else { return }
        let length = min(Int(header.pointee.nlmsg_len), capacity)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
    }
}

/// nft's userdata blobs: a sequence of type (u8), length (u8), value.
enum Userdata {
    static func encode(_ items: [(type: UInt8, value: [UInt8])]) -> [UInt8] {
        items.flatMap { [$0.type, UInt8(truncatingIfNeeded: $0.value.count)] + $0.value }
    }

    /// Values by type; nil when the blob is malformed.
    static func decode(_ bytes: [UInt8]) -> [UInt8: [UInt8]]? {
        var items: [UInt8: [UInt8]] = [:]
        var index = 0
        while index < bytes.count {
            guard index + 2 <= bytes.count else { return nil }
            let type = bytes[index], length = Int(bytes[index + 1])
            guard index + 2 + length <= bytes.count else { return nil }
            items[type] = Array(bytes[(index + 2)..<(index + 2 + length)])
            index += 2 + length
        }
        return items
    }

    /// nft stores strings with their terminating NUL.
    static func string(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static func decodeString(_ value: [UInt8]) -> String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The comment of a table or rule (both use type 0), if its userdata has one.
    static func comment(in bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, let value = decode(bytes)?[0] else { return nil }
        return decodeString(value)
    }
}
