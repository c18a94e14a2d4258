import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// The NETLINK_NETFILTER socket, through libmnl: every system call Sluice makes to nftables. Calls
/// interrupted by a signal are retried; everything else becomes a `KernelError`.
///
/// The socket belongs to the network namespace of the thread that created it, for its whole life.
final class NftablesSocket {
    private let socket: OpaquePointer
    private var receiveBuffer: [UInt8]

    /// The largest datagram the kernel sends: dumps are capped at 32 KiB per datagram, and refusals
    /// come without the refused message (NETLINK_CAP_ACK).
    private static let receiveBufferSize = 64 * 1024

    init() throws(KernelError) {
        guard let socket = mnl_socket_open2(NETLINK_NETFILTER, Int32(SOCK_CLOEXEC.rawValue)) else {
            // EPROTONOSUPPORT or EAFNOSUPPORT: no nfnetlink in the kernel at all.
            throw .from(errno: errno, operation: "open a netfilter netlink socket",
                        call: "socket(AF_NETLINK, NETLINK_NETFILTER)")
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            throw .systemCall("bind(NETLINK_NETFILTER)", errno: code)
        }
        self.socket = socket
        receiveBuffer = [UInt8](repeating: 0, count: Self.receiveBufferSize)
        // Without this a refusal echoes the whole refused message, up to 32 KiB of set elements.
        var enabled: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &enabled, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(socket) }

    /// Readable when a datagram is queued, to poll together with other descriptors.
    var fileDescriptor: Int32 { mnl_socket_get_fd(socket) }

    /// Makes room for a batch of `sending` bytes (the kernel refuses a datagram larger than the send
    /// buffer) and for `replies` acknowledgements (an overflowing receive buffer drops them), as nft
    /// does.
    func reserveBuffers(sending: Int, replies: Int) {
        reserve(SO_SNDBUFFORCE, SO_SNDBUF, bytes: sending + 64 * 1024)
        reserveReceiveBuffer(bytes: replies * 1024 + 256 * 1024)
    }

    /// Grows the receive buffer to at least `bytes`, for a socket that listens to bursts of events.
    func reserveReceiveBuffer(bytes: Int) {
        reserve(SO_RCVBUFFORCE, SO_RCVBUF, bytes: bytes)
    }

    /// The *FORCE options exceed the system limits with CAP_NET_ADMIN, the plain ones stay within them.
    private func reserve(_ force: Int32, _ plain: Int32, bytes: Int) {
        var current: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fileDescriptor, SOL_SOCKET, plain, &current, &length) == 0, Int(current) >= bytes { return }
        var wanted = Int32(clamping: bytes)
        if setsockopt(fileDescriptor, SOL_SOCKET, force, &wanted, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fileDescriptor, SOL_SOCKET, plain, &wanted, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Joins a netfilter multicast group (`NFNLGRP_NFTRACE`): its messages then arrive on this socket.
    func join(group: UInt32, operation: String, call: String) throws(KernelError) {
        var number = Int32(group)
        guard mnl_socket_setsockopt(socket, NETLINK_ADD_MEMBERSHIP, &number, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw .from(errno: errno, operation: operation, call: call)
        }
    }

    /// Sends `bytes` as one datagram: the kernel reads a batch only from a single `sendmsg`.
    /// `operation` words a failure for the user ("program nftables", "read back the ruleset").
    func send(_ bytes: [UInt8], operation: String) throws(KernelError) {
        // Up to 100 tries: a signal storm must not hang sluice-init.
        let sent = retryingInterrupts(100) {
            bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        }
        guard sent == bytes.count else {
            throw .from(errno: sent < 0 ? errno : EMSGSIZE, operation: operation,
                        call: "sendmsg(NETLINK_NETFILTER, \(bytes.count) bytes)")
        }
    }

    enum Received {
        case datagram([UInt8])
        /// The kernel dropped messages for want of buffer space (ENOBUFS).
        case overflowed
        case timedOut
    }

    /// The next datagram, an overflow report, or nothing by `deadline` (a past deadline: only what is
    /// queued).
    func receive(until deadline: ContinuousClock.Instant) throws(KernelError) -> Received {
        // Bounded: each pass either returns or was interrupted by a signal, and the deadline holds.
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
            let received = retryingInterrupts(100) {
                receiveBuffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            }
            guard received >= 0 else {
                switch errno {
                case EAGAIN: continue
                case ENOBUFS: return .overflowed
                case ENOSPC: throw .unexpectedReply("a reply was larger than \(Self.receiveBufferSize) bytes")
                case let code: throw .systemCall("recvmsg(NETLINK_NETFILTER)", errno: code)
                }
            }
            return .datagram(Array(receiveBuffer.prefix(received)))
        }
        return .timedOut
    }

    /// The next datagram, or nil if none arrives within `timeout` milliseconds (0: only what is queued).
    /// Lost answers are an error here: a request's caller cannot tell what it missed.
    func receive(timeout milliseconds: Int32) throws(KernelError) -> [UInt8]? {
        switch try receive(until: ContinuousClock.now + .milliseconds(Int(milliseconds))) {
        case .datagram(let datagram): return datagram
        case .timedOut: return nil
        case .overflowed: throw .unexpectedReply("the socket's receive buffer overflowed and answers were lost")
        }
    }

    /// What the kernel answered to a batch sent on this socket.
    struct BatchAnswer {
        /// Refused messages, in batch order.
        var refusals: [KernelError.Refusal] = []
        /// The kernel refused the batch as a whole (no capability, no nf_tables, a commit check such as
        /// a jump loop); it answers nothing else then.
        var batchRefused = false
        /// Messages no answer came for, by sequence.
        var unanswered: Set<UInt32> = []
    }

    /// Collects the acknowledgements of `batch` (already sent) until every message is answered, the
    /// batch is refused, or `timeout` passes. Other messages arriving meanwhile (trace events) go to
    /// `other`.
    func answers(to batch: NftablesBatch, timeout: Duration,
                 other: (NetlinkMessage) -> Void = { _ in }) throws(KernelError) -> BatchAnswer {
        let deadline = ContinuousClock.now + timeout
        var answer = BatchAnswer(unanswered: Set(batch.messages.map(\.sequence)))
        var refusals: [(sequence: UInt32, refusal: KernelError.Refusal)] = []
        // Bounded by the deadline and by the datagrams a socket can have queued.
        for _ in 0..<100_000 {
            if answer.unanswered.isEmpty || answer.batchRefused { break }
            // Once something was refused the kernel has already sent all it will send for this batch
            // (it reports every message, then aborts), so only drain what is queued.
            guard let datagram = try receive(timeout: refusals.isEmpty ? Self.milliseconds(until: deadline) : 0) else { break }
            guard let messages = NetlinkMessage.split(datagram) else {
                throw .unexpectedReply("a malformed netlink datagram of \(datagram.count) bytes")
            }
            for message in messages {
                guard message.type == UInt16(NLMSG_ERROR) else {
                    other(message)
                    continue
                }
                guard let status = message.status else {
                    throw .unexpectedReply("an error message of \(message.bytes.count) bytes")
                }
                if message.sequence == batch.beginSequence || message.sequence == batch.endSequence {
                    guard status != 0 else { continue }
                    answer.batchRefused = true
                    let type = UInt16(message.sequence == batch.beginSequence ? NFNL_MSG_BATCH_BEGIN : NFNL_MSG_BATCH_END)
                    refusals.append((message.sequence, .init(object: "the nftables batch", errno: status, messageType: type)))
                } else if answer.unanswered.remove(message.sequence) != nil, status != 0,
                          let refused = batch.message(withSequence: message.sequence) {
                    refusals.append((message.sequence, .init(object: refused.description, errno: status, messageType: refused.type)))
                }
            }
        }
        answer.refusals = refusals.sorted { $0.sequence &- batch.beginSequence < $1.sequence &- batch.beginSequence }.map(\.refusal)
        return answer
    }

    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = max(.zero, deadline - ContinuousClock.now)
        return Int32(clamping: Int64((remaining / .milliseconds(1)).rounded(.up)))
    }

    /// Drops answers left over from an earlier request that failed part-way, so they cannot be taken
    /// for answers to the next one.
    func discardQueuedReplies() throws(KernelError) {
        // Bounded: a socket's receive queue holds at most a few thousand datagrams.
        for _ in 0..<100_000 {
            do {
                guard try receive(timeout: 0) != nil else { return }
            } catch {
                // A lost or oversized answer reported now concerns the earlier request.
                if case .unexpectedReply = error { continue }
                throw error
            }
        }
    }
}

/// One netlink message inside a received datagram.
struct NetlinkMessage {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// The whole message, header included.
    var bytes: ArraySlice<UInt8>

    static let headerSize = 16

    var payload: ArraySlice<UInt8> { bytes.dropFirst(Self.headerSize) }

    /// For NLMSG_ERROR (and NLMSG_DONE, which carries a status too): the kernel's status as a
    /// positive errno, 0 for an acknowledgement; nil if the message is too short to say.
    var status: Int32? {
        let payload = payload
        guard payload.count >= 4 else { return nil }
        let value = payload.prefix(4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        return -value
    }

    /// Splits a datagram into messages; nil if a length field points outside the datagram.
    static func split(_ datagram: [UInt8]) -> [NetlinkMessage]? {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while datagram.count - offset >= headerSize {
            let header = datagram[offset..<(offset + headerSize)]
            let length = Int(header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            guard length >= headerSize, length <= datagram.count - offset else { return nil }
            let message = header.withUnsafeBytes { raw in
                NetlinkMessage(type: raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self),
                               flags: raw.loadUnaligned(fromByteOffset: 6, as: UInt16.self),
                               sequence: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                               bytes: datagram[offset..<(offset + length)])
            }
            messages.append(message)
            offset += (length + 3) & ~3
        }
        return messages
    }

    /// Hands libnftnl a properly aligned copy of the message.
    func withHeader<Result>(_ body: (UnsafePointer<nlmsghdr>) -> Result) -> Result {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        defer { copy.deallocate() }
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(start: copy, count: $0.count).copyMemory(from: $0) }
        return body(copy.assumingMemoryBound(to: nlmsghdr.self))
    }
}
