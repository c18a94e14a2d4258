import Capture

/// One instruction of the nftables virtual machine, exactly as nft 1.0 emits it for Sluice's
/// vocabulary. Data always flows through register 1 (`NFT_REG_1`), verdicts through the verdict
/// register, so registers are implied rather than stored.
enum NftablesExpression: Hashable, Sendable {
    /// `[ meta load K => reg 1 ]`
    case metaLoad(MetaKey)
    /// `[ meta set K with reg 1 ]`
    case metaStore(MetaKey)
    /// `[ ct load K => reg 1 ]`
    case conntrackLoad(ConntrackKey)
    /// `[ ct set K with reg 1 ]`
    case conntrackStore(ConntrackKey)
    /// `[ payload load Nb @ base + offset => reg 1 ]`
    case payloadLoad(PayloadBase, offset: UInt32, length: UInt32)
    /// `[ cmp eq|neq reg 1 data ]`
    case compare(equal: Bool, [UInt8])
    /// `[ bitwise reg 1 = ( reg 1 & mask ) ^ 0 ]`
    case bitwiseAnd(mask: [UInt8])
    /// `[ lookup reg 1 set name ]`; the ID names a set created earlier in the same batch.
    case lookup(set: String, setID: UInt32?)
    /// `[ counter ]`
    case counter
    /// `[ immediate reg 1 data ]`
    case immediate([UInt8])
    /// `[ immediate reg 0 verdict ]`
    case verdict(Verdict)
    /// `[ redir proto_min reg 1 flags 0x2 ]`
    case redirectToPortInRegister
    /// `[ tproxy ip|ip6 port reg 1 ]`
    case tproxyToPortInRegister(IPFamily)

    enum MetaKey: UInt32, Sendable {
        case mark = 3, inputInterfaceName = 6, outputInterfaceName = 7, socketUID = 10, socketGID = 11
        case netfilterProtocol = 15, transportProtocol = 16
        case nftrace = 12   // NFT_META_NFTRACE
    }

    enum ConntrackKey: UInt32, Sendable {
        case state = 0, mark = 3, zone = 17
    }

    enum PayloadBase: UInt32, Sendable {
        case network = 1, transport = 2
    }
}

/// Compiles Sluice's rules into expression lists, reproducing what nft 1.0.6 generates for the same
/// rule text (checked against `nft --debug=netlink`), so a ruleset programmed over netlink lists, counts
/// and matches exactly like one loaded with `nft -f`:
///
/// - `ip`/`ip6` matches in an inet table get an implicit `meta nfproto ipv4|ipv6`, and `tcp`/`udp`
///   port matches an implicit `meta l4proto tcp|udp`, unless the rule already established that
///   protocol (by an explicit `meta l4proto` or an earlier implicit one);
/// - a prefix that ends on a byte boundary loads and compares only its bytes; any other prefix
///   shorter than the address loads the whole address and masks it (even `/0`, as nft 1.0.6 does);
/// - adjacent equality matches on the same header are merged into one load when the merged field
///   still fits 32 bits (`udp sport 53 udp dport 53` becomes one 4-byte compare), as nft does.
enum NftablesRuleCompiler {
    static let interfaceNameSize = 16

    /// - Parameter setIDs: the batch IDs of the sets of the rule's table, by name.
    static func expressions(for rule: Rule, setIDs: [String: UInt32]) throws(KernelError) -> [NftablesExpression] {
        var context = ProtocolContext()
        var units: [Unit] = []
        for match in rule.matches {
            units += try compile(match, context: &context, setIDs: setIDs)
        }
        mergeAdjacentPayloadMatches(&units)
        return units.flatMap(\.expressions) + rule.statements.flatMap(compile)
    }

    /// What the rule has established about the packet so far, as nft's protocol context tracks it.
    private struct ProtocolContext {
        var network: IPFamily?
        var transport: TransportProtocol?

        mutating func requireNetwork(_ family: IPFamily) -> [Unit] {
            guard network != family else { return [] }
            network = family
            let nfproto: UInt8 = family == .ipv4 ? 2 : 10   // NFPROTO_IPV4, NFPROTO_IPV6
            return [Unit([.metaLoad(.netfilterProtocol), .compare(equal: true, [nfproto])])]
        }

        mutating func requireTransport(_ proto: TransportProtocol) -> [Unit] {
            guard transport != proto else { return [] }
            transport = proto
            return [Unit([.metaLoad(.transportProtocol), .compare(equal: true, [proto.number])])]
        }
    }

    /// The expressions of one match or one implied dependency; `payloadEquality` is set when nft
    /// would consider it for merging (a payload compared for equality with a constant).
    private struct Unit {
        var expressions: [NftablesExpression]
        var payloadEquality: (base: NftablesExpression.PayloadBase, offset: UInt32, value: [UInt8])?

        init(_ expressions: [NftablesExpression]) { self.expressions = expressions }

        init(payload base: NftablesExpression.PayloadBase, offset: UInt32, equal: Bool, value: [UInt8]) {
            expressions = [.payloadLoad(base, offset: offset, length: UInt32(value.count)),
                           .compare(equal: equal, value)]
            if equal { payloadEquality = (base, offset, value) }
        }
    }

    private static func compile(_ match: Match, context: inout ProtocolContext,
                                setIDs: [String: UInt32]) throws(KernelError) -> [Unit] {
        switch match {
        case .transportProtocol(let proto):
            context.transport = proto
            return [Unit([.metaLoad(.transportProtocol), .compare(equal: true, [proto.number])])]
        case .inputInterface(let name):
            return [Unit([.metaLoad(.inputInterfaceName), .compare(equal: true, try interfaceName(name))])]
        case .outputInterface(let name):
            return [Unit([.metaLoad(.outputInterfaceName), .compare(equal: true, try interfaceName(name))])]
        case .sourceAddress(let cidr, let negated):
            return context.requireNetwork(cidr.family)
                + [addressUnit(cidr, offset: cidr.family == .ipv4 ? 12 : 8, negated: negated)]
        case .destinationAddress(let cidr, let negated):
            return context.requireNetwork(cidr.family)
                + [addressUnit(cidr, offset: cidr.family == .ipv4 ? 16 : 24, negated: negated)]
        case .destinationAddressInSet(let family, let set):
            return context.requireNetwork(family) + [Unit([
                .payloadLoad(.network, offset: family == .ipv4 ? 16 : 24, length: UInt32(family.addressLength)),
                .lookup(set: set, setID: setIDs[set]),
            ])]
        case .destinationPort(let proto, let port, let negated):
            return context.requireTransport(proto)
                + [Unit(payload: .transport, offset: 2, equal: !negated, value: bigEndianBytes(port))]
        case .destinationPortInSet(let proto, let set):
            return context.requireTransport(proto) + [Unit([
                .payloadLoad(.transport, offset: 2, length: 2), .lookup(set: set, setID: setIDs[set]),
            ])]
        case .sourcePort(let proto, let port):
            return context.requireTransport(proto)
                + [Unit(payload: .transport, offset: 0, equal: true, value: bigEndianBytes(port))]
        case .socketUID(let uid, let negated):
            return [Unit([.metaLoad(.socketUID), .compare(equal: !negated, hostBytes(uid))])]
        case .socketGID(let gid, let negated):
            return [Unit([.metaLoad(.socketGID), .compare(equal: !negated, hostBytes(gid))])]
        case .connectionState(let states):
            return [Unit([.conntrackLoad(.state), .bitwiseAnd(mask: hostBytes(states.rawValue)),
                          .compare(equal: false, [0, 0, 0, 0])])]
        case .packetMark(let mark, let negated):
            return [Unit([.metaLoad(.mark), .compare(equal: !negated, hostBytes(mark))])]
        case .connectionMark(let mark):
            return [Unit([.conntrackLoad(.mark), .compare(equal: true, hostBytes(mark))])]
        }
    }

    private static func addressUnit(_ cidr: CIDR, offset: UInt32, negated: Bool) -> Unit {
        let network = cidr.network.bytes
        if cidr.isFullLength {
            return Unit(payload: .network, offset: offset, equal: !negated, value: network)
        }
        if cidr.prefixLength > 0 && cidr.prefixLength % 8 == 0 {
            // nft shortens the load to the prefix's bytes; such a compare is not a merge candidate
            // because nft sees a prefix expression there, not a constant.
            let bytes = Array(network.prefix(cidr.prefixLength / 8))
            return Unit([.payloadLoad(.network, offset: offset, length: UInt32(bytes.count)),
                         .compare(equal: !negated, bytes)])
        }
        return Unit([.payloadLoad(.network, offset: offset, length: UInt32(network.count)),
                     .bitwiseAnd(mask: cidr.mask), .compare(equal: !negated, network)])
    }

    private static func compile(_ statement: Statement) -> [NftablesExpression] {
        switch statement {
        case .counter:
            return [.counter]
        case .redirect(let port):
            return [.immediate(bigEndianBytes(port)), .redirectToPortInRegister]
        case .tproxy(let family, let port):
            return [.immediate(bigEndianBytes(port)), .tproxyToPortInRegister(family)]
        case .setConntrackZone(let zone):
            return [.immediate(hostBytes(zone)), .conntrackStore(.zone)]
        case .setPacketMark(let mark):
            return [.immediate(hostBytes(mark)), .metaStore(.mark)]
        case .saveMarkToConnection:
            return [.metaLoad(.mark), .conntrackStore(.mark)]
        case .restoreMarkFromConnection:
            return [.conntrackLoad(.mark), .metaStore(.mark)]
        case .verdict(let verdict):
            return [.verdict(verdict)]
        }
    }

    /// nft's `stmt_reduce`/`payload_do_merge`: the payload equality matches of a rule, visited in
    /// header order, merge with their successor when it starts where they end; the merged compare
    /// takes the place of the earlier field and the later one disappears.
    private static func mergeAdjacentPayloadMatches(_ units: inout [Unit]) {
        let candidates = units.indices.compactMap { index in
            units[index].payloadEquality.map { (index: index, base: $0.base.rawValue, offset: $0.offset) }
        }
        guard candidates.count > 1 else { return }
        // Stable, like the rule order nft's qsort sees for distinct offsets.
        let ordered = candidates.sorted { ($0.base, $0.offset, $0.index) < ($1.base, $1.offset, $1.index) }
            .map(\.index)
        var removed: Set<Int> = []
        var last = ordered[0]
        for current in ordered.dropFirst() {
            guard let into = units[last].payloadEquality, let next = units[current].payloadEquality,
                  into.base == next.base, into.offset + UInt32(into.value.count) == next.offset,
                  canMerge(into.value.count, next.value.count) else {
                last = current
                continue
            }
            let value = into.value + next.value
            units[last] = Unit(payload: into.base, offset: into.offset, equal: true, value: value)
            removed.insert(current)
        }
        units = units.indices.filter { !removed.contains($0) }.map { units[$0] }
    }

    /// nft's `payload_can_merge`: at most one register (16 bytes), and only while the result still
    /// fits the kernel's 32-bit fast path unless a part was already larger than that.
    private static func canMerge(_ first: Int, _ second: Int) -> Bool {
        let total = first + second
        guard total <= 16 else { return false }
        return total <= 4 || first > 4 || second > 4
    }

    /// The bytes an interface-name compare checks. An exact name is compared with its NUL padding; a
    /// trailing `*` (nft's wildcard) compares only the prefix, exactly as nft encodes `iifname "eth*"`.
    private static func interfaceName(_ name: String) throws(KernelError) -> [UInt8] {
        var bytes = Array(name.utf8)
        let isPrefix = bytes.last == UInt8(ascii: "*")
        if isPrefix { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count < interfaceNameSize, !bytes.contains(0) else {
            throw .unencodable("interface name \"\(name)\" must be 1 to \(interfaceNameSize - 1) bytes")
        }
        return isPrefix ? bytes : bytes + Array(repeating: 0, count: interfaceNameSize - bytes.count)
    }

    static func bigEndianBytes(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

    /// The kernel compares meta and ct keys in host byte order.
    static func hostBytes<Value: FixedWidthInteger>(_ value: Value) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }
}

/// One element of a set as sent in NEWSETELEM.
struct NftablesSetElement: Hashable, Sendable {
    var key: [UInt8]
    /// `NFT_SET_ELEM_INTERVAL_END`: this key is the first address after a range.
    var isIntervalEnd: Bool = false
    /// nft's element userdata marking a range that runs to the last address (no end element), which
    /// nft needs to list it as a prefix.
    var isOpenInterval: Bool = false

    /// The elements nft sends for a set's contents. An interval set is a sorted list of boundaries:
    /// each range contributes its start, and its end (the address after it) flagged
    /// `INTERVAL_END`; a leading end at address 0 closes the gap below the first range, and a range
    /// reaching the last address has no end.
    static func elements(of contents: NamedSet.Elements) -> [NftablesSetElement] {
        switch contents {
        case .ports(let ports):
            return ports.map { NftablesSetElement(key: NftablesRuleCompiler.bigEndianBytes($0)) }
        case .addresses(let family, let ranges):
            guard let firstRange = ranges.first else { return [] }
            var elements: [NftablesSetElement] = []
            let zero = [UInt8](repeating: 0, count: family.addressLength)
            if firstRange.first.bytes != zero {
                elements.append(NftablesSetElement(key: zero, isIntervalEnd: true))
            }
            for range in ranges {
                if let end = range.last.successorBytes {
                    elements.append(NftablesSetElement(key: range.first.bytes))
                    elements.append(NftablesSetElement(key: end, isIntervalEnd: true))
                } else {
                    elements.append(NftablesSetElement(key: range.first.bytes, isOpenInterval: true))
                }
            }
            return elements
        }
    }
}
