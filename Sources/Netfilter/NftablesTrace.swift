import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Which packets `sluice-init trace` follows: all conditions must hold; nil means "any".
public struct TraceFilter: Sendable, Hashable, CustomStringConvertible {
    public var transport: TransportProtocol?
    public var destination: IPAddress?
    /// Without a transport, the port of either TCP or UDP (nft's `th dport`).
    public var destinationPort: UInt16?
    public var source: IPAddress?
    /// Only arriving packets have one: the output rule is omitted when it is set.
    public var inputInterface: String?
    /// The sending socket's owner (`meta skuid`): only locally generated packets have one, so the
    /// prerouting rule is omitted when it is set.
    public var uid: UInt32?

    public init(transport: TransportProtocol? = nil, destination: IPAddress? = nil, destinationPort: UInt16? = nil,
                source: IPAddress? = nil, inputInterface: String? = nil, uid: UInt32? = nil) {
        self.transport = transport
        self.destination = destination
        self.destinationPort = destinationPort
        self.source = source
        self.inputInterface = inputInterface
        self.uid = uid
    }

    /// The matches of the trace rules, in Sluice's vocabulary. A destination port without a transport
    /// is not among them: `Match` names a port only with its protocol, so the session adds that
    /// condition as nft's `th dport` (the transport header's bytes 2-3, whatever the protocol).
    public var matches: [Match] {
        var matches: [Match] = []
        if let inputInterface { matches.append(.inputInterface(inputInterface)) }
        if let transport { matches.append(.transportProtocol(transport)) }
        if let source { matches.append(.sourceAddress(Self.host(source), negated: false)) }
        if let destination { matches.append(.destinationAddress(Self.host(destination), negated: false)) }
        if let transport, let destinationPort { matches.append(.destinationPort(transport, destinationPort, negated: false)) }
        if let uid { matches.append(.socketUID(uid, negated: false)) }
        return matches
    }

    /// The hooks that get a trace rule. A packet traced in output keeps its trace flag when it loops
    /// back through `lo`, so its prerouting pass is traced even when only the output rule exists.
    public var hooks: [BaseChain.Hook] {
        var hooks: [BaseChain.Hook] = []
        if uid == nil { hooks.append(.prerouting) }
        if inputInterface == nil { hooks.append(.output) }
        return hooks
    }

    /// Why no packet could ever match, in the words of the command line; nil when the filter is usable.
    public var contradiction: String? {
        if uid != nil && inputInterface != nil {
            return "--uid (a local sender) and --in (an arriving packet) never hold together: give one of them"
        }
        if let source, let destination, source.family != destination.family {
            return "--from \(source) and the destination \(destination) are of different address families"
        }
        return nil
    }

    /// "tcp packets to 203.0.113.1:80 from 192.0.2.2 sent by uid 1000", "all packets".
    public var description: String {
        var words = [(transport?.rawValue).map { "\($0) packets" } ?? "packets"]
        switch (destination, destinationPort) {
        case (let address?, let port?): words.append("to \(Endpoint(address, port))")
        case (let address?, nil): words.append("to \(address)")
        case (nil, let port?): words.append("to port \(port)")
        case (nil, nil): break
        }
        if let source { words.append("from \(source)") }
        if let inputInterface { words.append("arriving on \(inputInterface)") }
        if let uid { words.append("sent by uid \(uid)") }
        return self == TraceFilter() ? "all packets" : words.joined(separator: " ")
    }

    private static func host(_ address: IPAddress) -> CIDR {
        CIDR(address: address, prefixLength: address.family.addressLength * 8)
    }
}

/// One trace event (`NFT_MSG_TRACE`): a packet traced with `meta nftrace` reached a rule's verdict, the
/// end of a chain, or a base chain's policy. The kernel sends one per step, as it happens.
public struct TraceEvent: Sendable, Hashable {
    /// `NFT_TRACETYPE_RULE`, `_RETURN`, `_POLICY`.
    public enum Kind: Sendable, Hashable { case rule, returned, policy }

    /// `NFTA_TRACE_ID`: the same for every event of one packet in one hook. The kernel derives it from
    /// the packet's buffer, so a packet looped back through `lo` gets a new one, and a later packet may
    /// reuse an earlier one's.
    public var id: UInt32
    /// The table's family: "inet", "ip", "ip6", ...
    public var family: String
    public var table: String
    public var chain: String
    public var ruleHandle: UInt64?
    public var kind: Kind
    /// "accept", "drop", "continue" (the rule matched and had no verdict), "jump istio-output", "return", ...
    public var verdict: String?
    /// Sent with the first event of each base chain only.
    public var inputInterface: String?, outputInterface: String?
    /// The packet mark after the step; nil when it is 0 (the kernel leaves it out then).
    public var mark: UInt32?
    /// The network and transport headers, decoded; sent with the first event of each base chain only.
    public var headers: TracedPacket?

    /// "tcp 192.0.2.2:40312 → 203.0.113.1:80"
    public var packet: String? { headers?.description }

    public init(id: UInt32, family: String, table: String, chain: String, ruleHandle: UInt64? = nil, kind: Kind,
                verdict: String? = nil, inputInterface: String? = nil, outputInterface: String? = nil,
                mark: UInt32? = nil, headers: TracedPacket? = nil) {
        self.id = id
        self.family = family
        self.table = table
        self.chain = chain
        self.ruleHandle = ruleHandle
        self.kind = kind
        self.verdict = verdict
        self.inputInterface = inputInterface
        self.outputInterface = outputInterface
        self.mark = mark
        self.headers = headers
    }
}

/// The headers of a traced packet, as far as the kernel copied them (40 bytes of network header, 20 of
/// transport header).
public struct TracedPacket: Sendable, Hashable, CustomStringConvertible {
    public var family: IPFamily
    /// The IP protocol (IPv4) or next header (IPv6) number.
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// TCP's flag byte (FIN 0x01 … CWR 0x80); nil for other protocols.
    public var tcpFlags: UInt8?
    /// Fields NAT leaves alone, to recognize the packet at its next hook: IPv4's identification, TCP's
    /// sequence and acknowledgement numbers, UDP's length.
    var unchangedByNAT: [UInt8]

    /// Decodes the headers of a trace event; nil when the network header is not IPv4 or IPv6.
    init?(network: [UInt8], transport: [UInt8]) {
        guard let first = network.first else { return nil }
        let fields: (family: IPFamily, protocolNumber: UInt8, source: Int, destination: Int, identity: [UInt8])
        switch first >> 4 {
        case 4 where network.count >= 20:
            fields = (.ipv4, network[9], 12, 16, Array(network[4..<6]))
        case 6 where network.count >= 40:
            fields = (.ipv6, network[6], 8, 24, [])
        default:
            return nil
        }
        let length = fields.family.addressLength
        family = fields.family
        protocolNumber = fields.protocolNumber
        source = IPAddress(family: family, bytes: Array(network[fields.source..<(fields.source + length)]))
        destination = IPAddress(family: family, bytes: Array(network[fields.destination..<(fields.destination + length)]))
        unchangedByNAT = fields.identity
        func port(_ offset: Int) -> UInt16 { UInt16(transport[offset]) << 8 | UInt16(transport[offset + 1]) }
        switch protocolNumber {
        case TransportProtocol.tcp.number where transport.count >= 14:
            sourcePort = port(0)
            destinationPort = port(2)
            tcpFlags = transport[13]
            unchangedByNAT += transport[4..<12]
        case TransportProtocol.udp.number where transport.count >= 8:
            sourcePort = port(0)
            destinationPort = port(2)
            unchangedByNAT += transport[4..<6]
        default:
            break
        }
    }

    /// "tcp", "udp", "icmp", "ipv6-icmp", or "protocol 47".
    public var protocolName: String {
        switch protocolNumber {
        case 6: return "tcp"
        case 17: return "udp"
        case 1: return "icmp"
        case 58: return "ipv6-icmp"
        default: return "protocol \(protocolNumber)"
        }
    }

    /// The TCP flags set, in header order: ["SYN"], ["PSH", "ACK"]; empty for other protocols.
    public var flagNames: [String] {
        guard let tcpFlags else { return [] }
        let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
        return names.indices.filter { tcpFlags & (1 << $0) != 0 }.map { names[$0] }
    }

    /// "tcp 192.0.2.2:40312 → 203.0.113.1:80", "icmp 192.0.2.2 → 203.0.113.1"
    public var description: String {
        func side(_ address: IPAddress, _ port: UInt16?) -> String {
            port.map { Endpoint(address, $0).description } ?? address.description
        }
        return "\(protocolName) \(side(source, sourcePort)) → \(side(destination, destinationPort))"
    }

    /// Whether `self`, seen at a later hook, can be `earlier` after NAT rewrote its destination (as
    /// REDIRECT does before a packet loops back through `lo`): same sender, same fields NAT keeps.
    public func isSamePacket(rewrittenFrom earlier: TracedPacket) -> Bool {
        family == earlier.family && protocolNumber == earlier.protocolNumber && source == earlier.source
            && sourcePort == earlier.sourcePort && unchangedByNAT == earlier.unchangedByNAT
    }
}

/// A live trace: a table `inet sluice-trace-<pid>` whose base chains, ahead of every table Sluice
/// programs, set `meta nftrace` on the packets `filter` selects, and a subscription to the kernel's
/// trace events, in the network namespace of the thread that creates the session.
///
/// The table is created with `NFT_TABLE_F_OWNER` on the socket that reads the events: the kernel
/// deletes it when that socket closes, so even a trace killed with SIGKILL leaves nothing behind.
/// `close()` also deletes it explicitly first, so a normal end does not depend on that.
public final class NftablesTraceSession {
    public let filter: TraceFilter
    /// `sluice-trace-<pid>`, in the inet family.
    public let tableName: String
    /// Before Sluice's earliest base chains (raw, at -300), so every table Sluice programs sees the
    /// packet already marked for tracing.
    public static let chainPriority: Int32 = -350
    /// How many times the kernel dropped events because they arrived faster than they were read
    /// (the socket's receive buffer overflowed).
    public private(set) var overflows = 0
    /// Set when `close()` could not delete the table itself (the kernel still drops it with the socket).
    public private(set) var removalError: KernelError?

    private let socket: TraceSocket
    private var pending: [TraceSocket.Event] = []
    private var nextSequence: UInt32
    private var isClosed = false
    private let interfaces: InterfaceNames

    public init(filter: TraceFilter) throws(KernelError) {
        if let contradiction = filter.contradiction { throw .unencodable("the trace filter matches nothing: \(contradiction)") }
        let tableName = "sluice-trace-\(getpid())"
        // Distinct per session, like nft's time-based start.
        let batch = try TraceTableBatch.creating(table: tableName, filter: filter,
                                                 firstSequence: UInt32(truncatingIfNeeded: time(nil)))
        let socket = try TraceSocket()
        // Subscribed before the table exists, so no event of a traced packet is missed.
        try socket.subscribeToTraceEvents()
        // Events of packets traced while the kernel was still answering come with the answers. On a
        // refusal nothing was created, and the socket closes with this scope.
        pending = try socket.commit(batch, operation: "start the trace")
        self.filter = filter
        self.tableName = tableName
        self.socket = socket
        nextSequence = batch.endSequence &+ 1
        interfaces = InterfaceNames()
    }

    deinit { close() }

    /// The socket that becomes readable when an event arrives, to wait on together with other
    /// descriptors (a signal pipe); `next(timeout: .zero)` then takes what arrived.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// The next event, waiting at most `timeout` for one; nil when none arrived in time, or after `close()`.
    public func next(timeout: Duration) throws(KernelError) -> TraceEvent? {
        let deadline = ContinuousClock.now + timeout
        // Bounded: each pass either returns or consumed a datagram that held no event (another message
        // on the socket, an overflow report), and the deadline holds.
        for _ in 0..<10_000 {
            if !pending.isEmpty { return named(pending.removeFirst()) }
            guard !isClosed else { return nil }
            switch try socket.receive(until: deadline) {
            case .timedOut:
                return nil
            case .overflowed:
                overflows += 1
            case .datagram(let datagram):
                pending += TraceSocket.events(in: datagram)
            }
        }
        return nil
    }

    /// Deletes the trace table and closes the socket. Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        pending = []
        do {
            let batch = try TraceTableBatch.deleting(table: tableName, firstSequence: nextSequence)
            nextSequence = batch.endSequence &+ 1
            _ = try socket.commit(batch, operation: "remove the trace table")
        } catch {
            removalError = error
        }
        socket.close()
    }

    /// The event with its interfaces named, looked up in this session's namespace.
    private func named(_ raw: TraceSocket.Event) -> TraceEvent {
        var event = raw.event
        event.inputInterface = raw.inputIndex.map(interfaces.name)
        event.outputInterface = raw.outputIndex.map(interfaces.name)
        return event
    }
}

/// Interface names by index, through rtnetlink opened in the session's namespace (a lookup from
/// another thread would otherwise ask whatever namespace that thread is in).
private final class InterfaceNames {
    private let netlink: RouteNetlink?
    private var names: [UInt32: String] = [:]

    init() { netlink = try? RouteNetlink() }

    /// "#7" when the interface is gone or rtnetlink is unavailable.
    func name(_ index: UInt32) -> String {
        if let known = names[index] { return known }
        let name = (try? netlink?.interfaceName(index: Int32(bitPattern: index))) ?? nil
        names[index] = name ?? "#\(index)"
        return names[index]!
    }
}
