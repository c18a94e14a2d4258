import Capture
import CNetfilter

/// The inverse of `NftablesRuleCompiler`: the kernel's expression list of a rule back into Sluice's
/// model, so `inspect`, `explain` and `--diff` work on rules as values, whoever programmed them (Sluice
/// over netlink, or Istio's native-nftables mode through `nft -f`, which emits the same expressions).
///
/// Decoding is exact or nothing: a candidate rule is compiled again and must give back the very
/// expressions it came from. A rule outside the vocabulary (another register, a `goto`, an anonymous
/// set, …) therefore stays undecoded and is shown as libnftnl's text, never guessed at.
enum NftablesRuleDecoder {
    static func decode(_ expressions: [NftablesExpression], comment: String?) -> Rule? {
        guard let candidate = candidate(expressions, comment: comment ?? "") else { return nil }
        guard let compiled = try? NftablesRuleCompiler.expressions(for: candidate, setIDs: [:]),
              compiled == expressions else { return nil }
        return candidate
    }

    private static func candidate(_ expressions: [NftablesExpression], comment: String) -> Rule? {
        var matches: [Match] = []
        var statements: [Statement] = []
        var network: IPFamily?
        var transport: TransportProtocol?
        var index = 0
        func next(_ offset: Int = 1) -> NftablesExpression? {
            index + offset < expressions.count ? expressions[index + offset] : nil
        }
        // Each pass consumes at least one expression, so the count bounds the loop.
        for _ in 0..<expressions.count {
            guard index < expressions.count else { break }
            let expression = expressions[index]
            var consumed = 2
            // The matches this step decoded (a merged port compare gives two); statements go to `statement`.
            var decoded: [Match] = []
            var statement: Statement?
            switch (expression, next()) {
            case (.metaLoad(.netfilterProtocol), .compare(true, let value)) where value.count == 1:
                // Implied by the address match that follows; the recompile checks that one does.
                switch value[0] {
                case 2: network = .ipv4
                case 10: network = .ipv6
                default: return nil
                }
            case (.metaLoad(.transportProtocol), .compare(true, let value)) where value.count == 1:
                guard let proto = [TransportProtocol.tcp, .udp].first(where: { $0.number == value[0] }) else { return nil }
                transport = proto
                decoded = [.transportProtocol(proto)]
            case (.metaLoad(.inputInterfaceName), .compare(true, let value)):
                guard let name = interfaceName(value) else { return nil }
                decoded = [.inputInterface(name)]
            case (.metaLoad(.outputInterfaceName), .compare(true, let value)):
                guard let name = interfaceName(value) else { return nil }
                decoded = [.outputInterface(name)]
            case (.metaLoad(.socketUID), .compare(let equal, let value)):
                guard let uid = hostInteger(value, as: UInt32.self) else { return nil }
                decoded = [.socketUID(uid, negated: !equal)]
            case (.metaLoad(.socketGID), .compare(let equal, let value)):
                guard let gid = hostInteger(value, as: UInt32.self) else { return nil }
                decoded = [.socketGID(gid, negated: !equal)]
            case (.metaLoad(.mark), .compare(let equal, let value)):
                guard let mark = hostInteger(value, as: UInt32.self) else { return nil }
                decoded = [.packetMark(mark, negated: !equal)]
            case (.metaLoad(.mark), .conntrackStore(.mark)):
                statement = .saveMarkToConnection
            case (.conntrackLoad(.state), .bitwiseAnd(let mask)):
                guard case .compare(false, let zero)? = next(2), zero == [0, 0, 0, 0],
                      let bits = hostInteger(mask, as: UInt32.self) else { return nil }
                decoded = [.connectionState(ConnectionStates(rawValue: bits))]
                consumed = 3
            case (.conntrackLoad(.mark), .compare(true, let value)):
                guard let mark = hostInteger(value, as: UInt32.self) else { return nil }
                decoded = [.connectionMark(mark)]
            case (.conntrackLoad(.mark), .metaStore(.mark)):
                statement = .restoreMarkFromConnection
            case (.payloadLoad(.network, let offset, let length), _):
                guard let family = network,
                      let (match, used) = addressMatch(family, offset: offset, length: length, following: next(), next(2)) else {
                    return nil
                }
                decoded = [match]
                consumed = used
            case (.payloadLoad(.transport, let offset, let length), _):
                guard let proto = transport,
                      let (ports, used) = portMatches(proto, offset: offset, length: length, following: next()) else {
                    return nil
                }
                decoded = ports
                consumed = used
            case (.counter, _):
                statement = .counter
                consumed = 1
            case (.immediate(let value), .redirectToPortInRegister):
                guard let port = bigEndianPort(value) else { return nil }
                statement = .redirect(toPort: port)
            case (.immediate(let value), .tproxyToPortInRegister(let family)):
                guard let port = bigEndianPort(value) else { return nil }
                statement = .tproxy(family, toPort: port)
            case (.immediate(let value), .conntrackStore(.zone)):
                guard let zone = hostInteger(value, as: UInt16.self) else { return nil }
                statement = .setConntrackZone(zone)
            case (.immediate(let value), .metaStore(.mark)):
                guard let mark = hostInteger(value, as: UInt32.self) else { return nil }
                statement = .setPacketMark(mark)
            case (.verdict(let verdict), _):
                statement = .verdict(verdict)
                consumed = 1
            default:
                return nil
            }
            if !decoded.isEmpty {
                // The model keeps every match before every statement, as nft's grammar does for Sluice's rules.
                guard statements.isEmpty else { return nil }
                matches += decoded
            }
            if let statement { statements.append(statement) }
            index += consumed
        }
        guard index == expressions.count else { return nil }
        return Rule(matches, statements, comment: comment)
    }

    /// `ip saddr 10.0.0.0/8`, `ip6 daddr != ::1/128`, `ip daddr @set`: a load of the network header at the
    /// source or destination offset, then a lookup, a compare, or a mask and a compare.
    private static func addressMatch(_ family: IPFamily, offset: UInt32, length: UInt32,
                                     following first: NftablesExpression?, _ second: NftablesExpression?) -> (Match, Int)? {
        let sourceOffset: UInt32 = family == .ipv4 ? 12 : 8
        let destinationOffset: UInt32 = family == .ipv4 ? 16 : 24
        let isSource: Bool
        switch offset {
        case sourceOffset: isSource = true
        case destinationOffset: isSource = false
        default: return nil
        }
        let full = family.addressLength
        func cidr(_ bytes: [UInt8], prefixLength: Int) -> CIDR {
            CIDR(address: IPAddress(family: family, bytes: bytes + [UInt8](repeating: 0, count: full - bytes.count)),
                 prefixLength: prefixLength)
        }
        func make(_ value: CIDR, _ negated: Bool) -> Match {
            isSource ? .sourceAddress(value, negated: negated) : .destinationAddress(value, negated: negated)
        }
        switch (first, second) {
        case (.lookup(let set, _)?, _) where !isSource && Int(length) == full:
            return (.destinationAddressInSet(family, set: set), 2)
        case (.bitwiseAnd(let mask)?, .compare(let equal, let value)?) where mask.count == full && value.count == full:
            guard let prefixLength = prefixLength(of: mask) else { return nil }
            return (make(cidr(value, prefixLength: prefixLength), !equal), 3)
        case (.compare(let equal, let value)?, _) where value.count == Int(length) && Int(length) <= full && length > 0:
            return (make(cidr(value, prefixLength: value.count * 8), !equal), 2)
        default:
            return nil
        }
    }

    /// `tcp dport 80`, `tcp dport != 15008`, `tcp dport @set`, `udp sport 53`, and nft's merge of
    /// `udp sport 53 udp dport 53` into one 4-byte compare.
    private static func portMatches(_ proto: TransportProtocol, offset: UInt32, length: UInt32,
                                    following next: NftablesExpression?) -> ([Match], Int)? {
        switch (offset, length, next) {
        case (2, 2, .lookup(let set, _)?):
            return ([.destinationPortInSet(proto, set: set)], 2)
        case (2, 2, .compare(let equal, let value)?):
            guard let port = bigEndianPort(value) else { return nil }
            return ([.destinationPort(proto, port, negated: !equal)], 2)
        case (0, 2, .compare(true, let value)?):
            guard let port = bigEndianPort(value) else { return nil }
            return ([.sourcePort(proto, port)], 2)
        case (0, 4, .compare(true, let value)?) where value.count == 4:
            guard let source = bigEndianPort(Array(value[0..<2])), let destination = bigEndianPort(Array(value[2..<4])) else {
                return nil
            }
            return ([.sourcePort(proto, source), .destinationPort(proto, destination, negated: false)], 2)
        default:
            return nil
        }
    }

    /// The interface name of an `iifname`/`oifname` compare: NUL-padded to 16 bytes for an exact name,
    /// the bare prefix for nft's `"eth*"`.
    private static func interfaceName(_ value: [UInt8]) -> String? {
        guard !value.isEmpty, value.count <= NftablesRuleCompiler.interfaceNameSize else { return nil }
        if value.count == NftablesRuleCompiler.interfaceNameSize, let end = value.firstIndex(of: 0) {
            guard end > 0, value[end...].allSatisfy({ $0 == 0 }) else { return nil }
            return String(decoding: value[..<end], as: UTF8.self)
        }
        guard !value.contains(0) else { return nil }
        return String(decoding: value, as: UTF8.self) + "*"
    }

    /// The length of a contiguous network mask, nil for any other mask.
    private static func prefixLength(of mask: [UInt8]) -> Int? {
        var length = 0
        var ended = false
        for byte in mask {
            for bit in (0..<8).reversed() {
                let set = byte & (1 << bit) != 0
                if set && ended { return nil }
                if set { length += 1 } else { ended = true }
            }
        }
        return length
    }

    private static func bigEndianPort(_ value: [UInt8]) -> UInt16? {
        value.count == 2 ? UInt16(value[0]) << 8 | UInt16(value[1]) : nil
    }

    /// meta and ct keys are compared in host byte order.
    private static func hostInteger<Value: FixedWidthInteger>(_ value: [UInt8], as type: Value.Type) -> Value? {
        guard value.count == MemoryLayout<Value>.size else { return nil }
        return value.withUnsafeBytes { $0.loadUnaligned(as: Value.self) }
    }
}

/// Reading libnftnl's parsed expressions into `NftablesExpression`, for the decoder.
enum NftablesExpressionReader {
    /// One expression, and the counter values when it is a `counter`. Nil for anything outside the
    /// vocabulary the compiler emits, including the same expression on another register.
    static func read(_ expression: OpaquePointer) -> (NftablesExpression, RuleCounter?)? {
        guard let namePointer = nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)) else { return nil }
        let register1 = UInt32(NFT_REG_1.rawValue)
        func has(_ attribute: Int) -> Bool { nftnl_expr_is_set(expression, UInt16(attribute)) }
        func u32(_ attribute: Int) -> UInt32? { has(attribute) ? nftnl_expr_get_u32(expression, UInt16(attribute)) : nil }
        func data(_ attribute: Int) -> [UInt8]? {
            guard has(attribute) else { return nil }
            var length: UInt32 = 0
            guard let pointer = nftnl_expr_get(expression, UInt16(attribute), &length) else { return nil }
            return Readback.bytes(pointer, length)
        }
        func string(_ attribute: Int) -> String? {
            guard has(attribute), let pointer = nftnl_expr_get_str(expression, UInt16(attribute)) else { return nil }
            return String(cString: pointer)
        }
        switch String(cString: namePointer) {
        case "meta":
            guard let raw = u32(NFTNL_EXPR_META_KEY), let key = NftablesExpression.MetaKey(rawValue: raw) else { return nil }
            if u32(NFTNL_EXPR_META_DREG) == register1 { return (.metaLoad(key), nil) }
            if u32(NFTNL_EXPR_META_SREG) == register1 { return (.metaStore(key), nil) }
            return nil
        case "ct":
            guard let raw = u32(NFTNL_EXPR_CT_KEY), let key = NftablesExpression.ConntrackKey(rawValue: raw),
                  !has(NFTNL_EXPR_CT_DIR) else { return nil }
            if u32(NFTNL_EXPR_CT_DREG) == register1 { return (.conntrackLoad(key), nil) }
            if u32(NFTNL_EXPR_CT_SREG) == register1 { return (.conntrackStore(key), nil) }
            return nil
        case "payload":
            guard u32(NFTNL_EXPR_PAYLOAD_DREG) == register1, let raw = u32(NFTNL_EXPR_PAYLOAD_BASE),
                  let base = NftablesExpression.PayloadBase(rawValue: raw),
                  let offset = u32(NFTNL_EXPR_PAYLOAD_OFFSET), let length = u32(NFTNL_EXPR_PAYLOAD_LEN) else { return nil }
            return (.payloadLoad(base, offset: offset, length: length), nil)
        case "cmp":
            guard u32(NFTNL_EXPR_CMP_SREG) == register1, let op = u32(NFTNL_EXPR_CMP_OP),
                  op == UInt32(NFT_CMP_EQ.rawValue) || op == UInt32(NFT_CMP_NEQ.rawValue),
                  let value = data(NFTNL_EXPR_CMP_DATA) else { return nil }
            return (.compare(equal: op == UInt32(NFT_CMP_EQ.rawValue), value), nil)
        case "bitwise":
            guard u32(NFTNL_EXPR_BITWISE_SREG) == register1, u32(NFTNL_EXPR_BITWISE_DREG) == register1,
                  (u32(NFTNL_EXPR_BITWISE_OP) ?? 0) == 0,   // NFT_BITWISE_BOOL: mask and xor
                  let mask = data(NFTNL_EXPR_BITWISE_MASK), let xor = data(NFTNL_EXPR_BITWISE_XOR),
                  xor.count == mask.count, xor.allSatisfy({ $0 == 0 }) else { return nil }
            return (.bitwiseAnd(mask: mask), nil)
        case "lookup":
            guard u32(NFTNL_EXPR_LOOKUP_SREG) == register1, !has(NFTNL_EXPR_LOOKUP_DREG),
                  (u32(NFTNL_EXPR_LOOKUP_FLAGS) ?? 0) == 0, let set = string(NFTNL_EXPR_LOOKUP_SET) else { return nil }
            return (.lookup(set: set, setID: nil), nil)
        case "counter":
            let counter = RuleCounter(packets: has(NFTNL_EXPR_CTR_PACKETS) ? nftnl_expr_get_u64(expression, UInt16(NFTNL_EXPR_CTR_PACKETS)) : 0,
                                      bytes: has(NFTNL_EXPR_CTR_BYTES) ? nftnl_expr_get_u64(expression, UInt16(NFTNL_EXPR_CTR_BYTES)) : 0)
            return (.counter, counter)
        case "immediate":
            guard let register = u32(NFTNL_EXPR_IMM_DREG) else { return nil }
            if register == register1, let value = data(NFTNL_EXPR_IMM_DATA) { return (.immediate(value), nil) }
            guard register == UInt32(NFT_REG_VERDICT.rawValue), let raw = u32(NFTNL_EXPR_IMM_VERDICT) else { return nil }
            switch Int32(bitPattern: raw) {
            case NF_ACCEPT: return (.verdict(.accept), nil)
            case NF_DROP: return (.verdict(.drop), nil)
            case NFT_RETURN.rawValue: return (.verdict(.return), nil)
            case NFT_JUMP.rawValue:
                guard let chain = string(NFTNL_EXPR_IMM_CHAIN) else { return nil }
                return (.verdict(.jump(chain)), nil)
            default: return nil   // goto, continue, queue: outside the vocabulary
            }
        case "redir":
            guard u32(NFTNL_EXPR_REDIR_REG_PROTO_MIN) == register1,
                  (u32(NFTNL_EXPR_REDIR_REG_PROTO_MAX) ?? register1) == register1,
                  u32(NFTNL_EXPR_REDIR_FLAGS) == 2 else { return nil }   // NF_NAT_RANGE_PROTO_SPECIFIED only
            return (.redirectToPortInRegister, nil)
        case "tproxy":
            guard u32(NFTNL_EXPR_TPROXY_REG_PORT) == register1, !has(NFTNL_EXPR_TPROXY_REG_ADDR),
                  let family = u32(NFTNL_EXPR_TPROXY_FAMILY) else { return nil }
            switch Int32(family) {
            case Int32(NFPROTO_IPV4): return (.tproxyToPortInRegister(.ipv4), nil)
            case Int32(NFPROTO_IPV6): return (.tproxyToPortInRegister(.ipv6), nil)
            default: return nil
            }
        default:
            return nil
        }
    }
}

extension Ruleset {
    /// This ruleset as a read-back of the kernel decodes it once programmed. Two spellings can compile to
    /// the same expressions (`tcp dport 80` and `meta l4proto tcp tcp dport 80`; nft's merged
    /// `udp sport 53 udp dport 53` reordered), and the decoder gives one of them, so comparing a live
    /// ruleset with a planned one goes through this form on the planned side.
    public var readBackForm: Ruleset {
        func readBack(_ rule: Rule) -> Rule {
            guard let expressions = try? NftablesRuleCompiler.expressions(for: rule, setIDs: [:]) else { return rule }
            return NftablesRuleDecoder.decode(expressions, comment: rule.comment.isEmpty ? nil : rule.comment) ?? rule
        }
        var result = self
        for table in result.tables.indices {
            for chain in result.tables[table].chains.indices {
                result.tables[table].chains[chain].rules = result.tables[table].chains[chain].rules.map(readBack)
            }
        }
        return result
    }
}
