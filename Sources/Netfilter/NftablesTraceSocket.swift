import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// The trace session's NETLINK_NETFILTER socket: it owns the trace table (the kernel deletes the table
/// when this socket closes) and receives the trace group's events. Unlike `NftablesSocket`, which
/// only asks and is answered, it must survive an overflowing receive buffer: a burst of traced
/// packets costs events, not the trace.
final class TraceSocket {
    enum Received {
        case datagram([UInt8])
        /// The kernel dropped messages for want of buffer space (ENOBUFS).
        case overflowed
        case timedOut
    }

    /// A decoded event, its interfaces still as the kernel's indexes.
    struct Event {
        var event: TraceEvent
        var inputIndex: UInt32?
        var outputIndex: UInt32?
    }

    private var socket: OpaquePointer?
    private var receiveBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    let fileDescriptor: Int32

    /// Events can come in bursts (every rule a packet passes is one); 4 MiB holds thousands.
    private static let receiveBufferBytes: Int32 = 4 << 20
    private static let replyTimeout: Duration = .seconds(10)

    init() throws(KernelError) {
        guard let socket = mnl_socket_open2(NETLINK_NETFILTER, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw .from(errno: errno, operation: "open a netfilter netlink socket", call: "socket(AF_NETLINK, NETLINK_NETFILTER)")
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            throw .systemCall("bind(NETLINK_NETFILTER)", errno: code)
        }
        self.socket = socket
        fileDescriptor = mnl_socket_get_fd(socket)
        var enabled: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &enabled, socklen_t(MemoryLayout<Int32>.size))
        var size = Self.receiveBufferBytes
        // The FORCE variant exceeds net.core.rmem_max with CAP_NET_ADMIN; the plain one stays within it.
        if setsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit { close() }

    func close() {
        guard let socket else { return }
        mnl_socket_close(socket)
        self.socket = nil
    }

    func subscribeToTraceEvents() throws(KernelError) {
        var group = Int32(NFNLGRP_NFTRACE.rawValue)
        let size = socklen_t(MemoryLayout<Int32>.size)
        guard let socket, mnl_socket_setsockopt(socket, NETLINK_ADD_MEMBERSHIP, &group, size) == 0 else {
            throw .from(errno: errno, operation: "subscribe to nftables trace events",
                        call: "setsockopt(NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)")
        }
    }

    func send(_ bytes: [UInt8], operation: String) throws(KernelError) {
        guard let socket else { throw .systemCall("sendmsg(NETLINK_NETFILTER) after close", errno: EBADF) }
        let sent = retryingInterrupts(100) { bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) } }
        guard sent == bytes.count else {
            throw .from(errno: sent < 0 ? errno : EMSGSIZE, operation: operation,
                        call: "sendmsg(NETLINK_NETFILTER, \(bytes.count) bytes)")
        }
    }

    func receive(until deadline: ContinuousClock.Instant) throws(KernelError) -> Received {
        guard let socket else { return .timedOut }
        // Bounded: each pass returns, or was interrupted by a signal (EINTR, EAGAIN) with the deadline
        // still ahead.
        for _ in 0..<1000 {
            var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
            let remaining = max(.zero, deadline - ContinuousClock.now).components
            // Rounded up, so a wait shorter than a millisecond does not become a busy loop.
            let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
            let wait = Int32(clamping: remaining.seconds * 1000
                             + (remaining.attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond)
            let ready = poll(&descriptor, 1, wait)
            if ready < 0 {
                if errno == EINTR { continue }
                throw .systemCall("poll(NETLINK_NETFILTER)", errno: errno)
            }
            if ready == 0 { return .timedOut }
            let received = receiveBuffer.withUnsafeMutableBytes { buffer in
                retryingInterrupts(100) { mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count) }
            }
            guard received >= 0 else {
                switch errno {
                case EAGAIN: continue
                case ENOBUFS: return .overflowed
                case ENOSPC: throw .unexpectedReply("a trace message larger than \(receiveBuffer.count) bytes")
                case let code: throw .systemCall("recvmsg(NETLINK_NETFILTER)", errno: code)
                }
            }
            return .datagram(Array(receiveBuffer.prefix(received)))
        }
        return .timedOut
    }

    /// Sends a batch and waits until the kernel answered every message; trace events that arrive
    /// meanwhile are returned, not lost. Throws what the kernel refused.
    func commit(_ batch: TraceTableBatch, operation: String) throws(KernelError) -> [Event] {
        try send(batch.bytes, operation: operation)
        var unanswered = Set(batch.messages.map(\.sequence))
        var refusals: [KernelError.Refusal] = []
        var batchRefused = false
        var events: [Event] = []
        let deadline = ContinuousClock.now + Self.replyTimeout
        // Bounded by the deadline; trace events may come in between the answers.
        while !unanswered.isEmpty && !batchRefused {
            guard case .datagram(let datagram) = try receive(until: deadline) else {
                if ContinuousClock.now >= deadline { break }
                continue
            }
            guard let messages = NetlinkMessage.split(datagram) else {
                throw .unexpectedReply("a malformed netlink datagram of \(datagram.count) bytes")
            }
            for message in messages {
                if message.type == UInt16(NLMSG_ERROR) {
                    guard let status = message.status else {
                        throw .unexpectedReply("an error message of \(message.bytes.count) bytes")
                    }
                    if message.sequence == batch.beginSequence || message.sequence == batch.endSequence {
                        guard status != 0 else { continue }
                        batchRefused = true
                        let type = UInt16(message.sequence == batch.beginSequence ? NFNL_MSG_BATCH_BEGIN : NFNL_MSG_BATCH_END)
                        refusals.append(.init(object: "the nftables batch", errno: status, messageType: type))
                    } else if unanswered.remove(message.sequence) != nil, status != 0,
                              let refused = batch.messages.first(where: { $0.sequence == message.sequence }) {
                        refusals.append(.init(object: refused.description, errno: status, messageType: refused.type))
                    }
                } else if let event = Self.event(message) {
                    events.append(event)
                }
            }
        }
        if !refusals.isEmpty {
            let denied = KernelError.permissionDenied(operation: operation)
            if batchRefused { throw KernelError.classify(refusals, operation: operation) }
            // A refused table is not a missing nf_tables here: the owner flag needs Linux 5.12.
            if refusals.contains(where: { KernelError.from(errno: $0.errno, operation: operation) == denied }) { throw denied }
            throw .refused(refusals)
        }
        guard unanswered.isEmpty else {
            throw .unexpectedReply("no acknowledgement for \(unanswered.count) of \(batch.messages.count) messages")
        }
        return events
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
            let event = TraceEvent(id: id, family: familyName(u32(NFTNL_TRACE_FAMILY) ?? 0), table: table, chain: chain,
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

    static func familyName(_ number: UInt32) -> String {
        switch Int32(number) {
        case Int32(NFPROTO_INET): return "inet"
        case Int32(NFPROTO_IPV4): return "ip"
        case Int32(NFPROTO_IPV6): return "ip6"
        case Int32(NFPROTO_ARP): return "arp"
        case Int32(NFPROTO_BRIDGE): return "bridge"
        case Int32(NFPROTO_NETDEV): return "netdev"
        default: return "family \(number)"
        }
    }
}

/// The trace table's transactions as netlink bytes. The table itself is encoded here (Sluice's own
/// tables never carry flags); chains and rules go through the same encoder as Sluice's rulesets.
struct TraceTableBatch {
    struct Message {
        var sequence: UInt32
        var type: UInt16
        var description: String
    }

    let bytes: [UInt8]
    let messages: [Message]
    let beginSequence: UInt32
    let endSequence: UInt32

    /// The table, owned by the sending socket, with one base chain per hook of the filter at
    /// `NftablesTraceSession.chainPriority`, each holding one rule: the filter, then `meta nftrace set 1`.
    static func creating(table: String, filter: TraceFilter, firstSequence: UInt32) throws(KernelError) -> TraceTableBatch {
        var plan: [NftablesMessage] = []
        let expressions = try ruleExpressions(filter)
        for hook in filter.hooks {
            let chain = hook.rawValue
            plan.append(.newChain(table: table, name: chain,
                                  base: BaseChain(type: .filter, hook: hook, priority: NftablesTraceSession.chainPriority)))
            plan.append(.newRule(table: table, chain: chain, index: 1, expressions: expressions,
                                 comment: "sluice-init trace: \(filter)"))
        }
        var bytes: [UInt8] = []
        var messages: [Message] = []
        var sequence = firstSequence
        Nftnl.appendBatchBegin(sequence: sequence, to: &bytes)
        sequence &+= 1
        try appendOwnedTable(table, sequence: sequence, to: &bytes)
        messages.append(Message(sequence: sequence, type: UInt16(NFT_MSG_NEWTABLE.rawValue),
                                description: "table inet \(table) owned by the trace's socket "
                                    + "(NFT_TABLE_F_OWNER, Linux 5.12 or later)"))
        for message in plan {
            sequence &+= 1
            try Nftnl.append(message, sequence: sequence, to: &bytes)
            messages.append(Message(sequence: sequence, type: message.type, description: message.description))
        }
        sequence &+= 1
        Nftnl.appendBatchEnd(sequence: sequence, to: &bytes)
        return TraceTableBatch(bytes: bytes, messages: messages, beginSequence: firstSequence, endSequence: sequence)
    }

    static func deleting(table: String, firstSequence: UInt32) throws(KernelError) -> TraceTableBatch {
        var bytes: [UInt8] = []
        Nftnl.appendBatchBegin(sequence: firstSequence, to: &bytes)
        let message = NftablesMessage.deleteTable(name: table)
        try Nftnl.append(message, sequence: firstSequence &+ 1, to: &bytes)
        Nftnl.appendBatchEnd(sequence: firstSequence &+ 2, to: &bytes)
        let deletion = Message(sequence: firstSequence &+ 1, type: message.type, description: message.description)
        return TraceTableBatch(bytes: bytes, messages: [deletion], beginSequence: firstSequence, endSequence: firstSequence &+ 2)
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

    /// NEWTABLE with NFT_TABLE_F_OWNER, and NLM_F_EXCL: a table of that name that exists belongs to
    /// another trace of this process, which must not be taken over.
    private static func appendOwnedTable(_ name: String, sequence: UInt32, to bytes: inout [UInt8]) throws(KernelError) {
        let capacity = 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        guard let table = nftnl_table_alloc() else { throw Nftnl.outOfMemory }
        defer { nftnl_table_free(table) }
        // The name is at most 30 bytes ("sluice-trace-" and a pid), well inside the buffer.
        guard nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), name) >= 0 else { throw Nftnl.outOfMemory }
        nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FLAGS.rawValue), UInt32(NFT_TABLE_F_OWNER.rawValue))
        let flags = UInt16(NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK)
        guard let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_NEWTABLE.rawValue),
                                                 UInt16(NFPROTO_INET), flags, sequence) else { throw Nftnl.outOfMemory }
        nftnl_table_nlmsg_build_payload(header, table)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: min(Int(header.pointee.nlmsg_len), capacity)))
    }
}
