import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// The trace session's netfilter socket: it owns the trace table (the kernel deletes the table when
/// this socket closes) and receives the trace group's events. Unlike a request's socket it must
/// survive an overflowing receive buffer: a burst of traced packets costs events, not the trace.
final class TraceSocket {
    /// A decoded event, its interfaces still as the kernel's indexes.
    struct Event {
        var event: TraceEvent
        var inputIndex: UInt32?
        var outputIndex: UInt32?
    }

    /// nil once closed.
    private var socket: NftablesSocket?
    let fileDescriptor: Int32

    /// Events can come in bursts (every rule a packet passes is one); 4 MiB holds thousands.
    private static let receiveBufferBytes = 4 << 20
    private static let replyTimeout: Duration = .seconds(10)

    init() throws(KernelError) {
        let socket = try NftablesSocket()
        socket.reserveReceiveBuffer(bytes: Self.receiveBufferBytes)
        self.socket = socket
        fileDescriptor = socket.fileDescriptor
    }

    /// Closing is what makes the kernel drop a socket-owned table.
    func close() {
        socket = nil
    }

    func subscribeToTraceEvents() throws(KernelError) {
        try openSocket().join(group: NFNLGRP_NFTRACE.rawValue, operation: "subscribe to nftables trace events",
                              call: "setsockopt(NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)")
    }

    func receive(until deadline: ContinuousClock.Instant) throws(KernelError) -> NftablesSocket.Received {
        try socket?.receive(until: deadline) ?? .timedOut
    }

    /// Sends a batch and waits until the kernel answered every message; trace events that arrive
    /// meanwhile are returned, not lost. Throws what the kernel refused.
    func commit(_ batch: NftablesBatch, operation: String) throws(KernelError) -> [Event] {
        let socket = try openSocket()
        try socket.send(batch.bytes, operation: operation)
        var events: [Event] = []
        let answer = try socket.answers(to: batch, timeout: Self.replyTimeout) { message in
            if let event = Self.event(message) { events.append(event) }
        }
        if !answer.refusals.isEmpty {
            if answer.batchRefused { throw KernelError.classify(answer.refusals, operation: operation) }
            // A refused table is not a missing nf_tables here, as `classify` would read it: the owner
            // flag needs Linux 5.12.
            let denied = KernelError.permissionDenied(operation: operation)
            if answer.refusals.contains(where: { KernelError.from(errno: $0.errno, operation: operation) == denied }) { throw denied }
            throw .refused(answer.refusals)
        }
        guard answer.unanswered.isEmpty else {
            throw .unexpectedReply("no acknowledgement for \(answer.unanswered.count) of \(batch.messages.count) messages")
        }
        return events
    }

    private func openSocket() throws(KernelError) -> NftablesSocket {
        guard let socket else { throw .systemCall("the trace's netlink socket after close", errno: EBADF) }
        return socket
    }

    // MARK: Decoding events

    static func events(in datagram: [UInt8]) -> [Event] {
        NetlinkMessage.split(datagram)?.compactMap(event) ?? []
    }

    private static let traceMessageType = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(NFT_MSG_TRACE.rawValue)

    /// One `NFT_MSG_TRACE` message through libnftnl's parser; nil for any other message.
    static func event(_ message: NetlinkMessage) -> Event? {
        guard message.type == traceMessageType else { return nil }
        return message.withHeader { header -> Event? in
            guard let trace = nftnl_trace_alloc() else { return nil }
            defer { nftnl_trace_free(trace) }
            guard nftnl_trace_nlmsg_parse(header, trace) >= 0 else { return nil }
            func has(_ attribute: nftnl_trace_attr) -> Bool { nftnl_trace_is_set(trace, UInt16(attribute.rawValue)) }
            func u32(_ attribute: nftnl_trace_attr) -> UInt32? {
                has(attribute) ? nftnl_trace_get_u32(trace, UInt16(attribute.rawValue)) : nil
            }
            func string(_ attribute: nftnl_trace_attr) -> String? {
                guard has(attribute), let pointer = nftnl_trace_get_str(trace, UInt16(attribute.rawValue)) else { return nil }
                return String(cString: pointer)
            }
            func bytes(_ attribute: nftnl_trace_attr) -> [UInt8] {
                guard has(attribute) else { return [] }
                var length: UInt32 = 0
                return Readback.bytes(nftnl_trace_get_data(trace, UInt16(attribute.rawValue), &length), length)
            }
            guard let id = u32(NFTNL_TRACE_ID), let table = string(NFTNL_TRACE_TABLE), let chain = string(NFTNL_TRACE_CHAIN),
                  let type = u32(NFTNL_TRACE_TYPE) else { return nil }
            let kind: TraceEvent.Kind
            var verdict: String?
            switch type {
            case UInt32(NFT_TRACETYPE_RULE.rawValue):
                kind = .rule
                verdict = u32(NFTNL_TRACE_VERDICT).map { verdictName($0, target: string(NFTNL_TRACE_JUMP_TARGET)) }
            case UInt32(NFT_TRACETYPE_RETURN.rawValue):
                kind = .returned
                verdict = u32(NFTNL_TRACE_VERDICT).map { verdictName($0, target: string(NFTNL_TRACE_JUMP_TARGET)) }
            case UInt32(NFT_TRACETYPE_POLICY.rawValue):
                kind = .policy
                verdict = u32(NFTNL_TRACE_POLICY).map { verdictName($0, target: nil) }
            default:
                return nil
            }
            let handle = has(NFTNL_TRACE_RULE_HANDLE) ? nftnl_trace_get_u64(trace, UInt16(NFTNL_TRACE_RULE_HANDLE.rawValue)) : nil
            let headers = has(NFTNL_TRACE_NETWORK_HEADER)
                ? TracedPacket(network: bytes(NFTNL_TRACE_NETWORK_HEADER), transport: bytes(NFTNL_TRACE_TRANSPORT_HEADER)) : nil
            let event = TraceEvent(id: id, family: Inventory.familyName(u32(NFTNL_TRACE_FAMILY) ?? 0), table: table, chain: chain,
                                   ruleHandle: handle, kind: kind, verdict: verdict, mark: u32(NFTNL_TRACE_MARK),
                                   headers: headers)
            return Event(event: event, inputIndex: u32(NFTNL_TRACE_IIF), outputIndex: u32(NFTNL_TRACE_OIF))
        }
    }

    /// A verdict code as nft writes it.
    static func verdictName(_ code: UInt32, target: String?) -> String {
        let signed = Int32(bitPattern: code)
        switch signed {
        case NFT_CONTINUE.rawValue: return "continue"
        case NFT_BREAK.rawValue: return "break"
        case NFT_JUMP.rawValue: return "jump \(target ?? "?")"
        case NFT_GOTO.rawValue: return "goto \(target ?? "?")"
        case NFT_RETURN.rawValue: return "return"
        default: break
        }
        // Netfilter verdicts keep an errno or queue number in the upper bits.
        switch signed & Int32(NF_VERDICT_MASK) {
        case NF_ACCEPT: return "accept"
        case NF_DROP: return "drop"
        case NF_STOLEN: return "stolen"
        case NF_QUEUE: return "queue"
        case NF_REPEAT: return "repeat"
        default: return "verdict \(signed)"
        }
    }
}

/// The trace table's transactions, as batches like Sluice's rulesets.
enum TraceTableBatch {
    /// The table, owned by the sending socket, with one base chain per hook of the filter at
    /// `NftablesTraceSession.chainPriority`, each holding one rule: the filter, then `meta nftrace set 1`.
    static func creating(table: String, filter: TraceFilter, firstSequence: UInt32) throws(KernelError) -> NftablesBatch {
        var plan: [NftablesMessage] = [.newSocketOwnedTable(name: table)]
        let expressions = try ruleExpressions(filter)
        for hook in filter.hooks {
            let chain = hook.rawValue
            plan.append(.newChain(table: table, name: chain,
                                  base: BaseChain(type: .filter, hook: hook, priority: NftablesTraceSession.chainPriority)))
            plan.append(.newRule(table: table, chain: chain, index: 1, expressions: expressions,
                                 comment: "sluice-init trace: \(filter)"))
        }
        return try NftablesBatch(plan: plan, firstSequence: firstSequence)
    }

    static func deleting(table: String, firstSequence: UInt32) throws(KernelError) -> NftablesBatch {
        try NftablesBatch(plan: [.deleteTable(name: table)], firstSequence: firstSequence)
    }

    /// The filter's matches as Sluice compiles them, a protocol-less port as `th dport`, then
    /// `meta nftrace set 1` (a one-byte immediate, as nft emits it).
    static func ruleExpressions(_ filter: TraceFilter) throws(KernelError) -> [NftablesExpression] {
        var expressions = try NftablesRuleCompiler.expressions(for: Rule(filter.matches, [], comment: ""), setIDs: [:])
        if filter.transport == nil, let port = filter.destinationPort {
            expressions += [.payloadLoad(.transport, offset: 2, length: 2),
                            .compare(equal: true, NftablesRuleCompiler.bigEndianBytes(port))]
        }
        return expressions + [.immediate([1]), .metaStore(.nftrace)]
    }
}
