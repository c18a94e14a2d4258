import Capture
import Sockets
import Netfilter
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The lab's sockets and processes go through here: one place that retries `EINTR` and turns errno
/// into a `SystemCallError` naming the call.
enum Posix {
    @discardableResult
    static func call<Result: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> Result) throws -> Result {
        // A signal storm cannot keep a probe spinning: `retryingInterrupts` gives up after a generous
        // number of interruptions and leaves EINTR in errno.
        let result = retryingInterrupts { body() }
        if result >= 0 { return result }
        let error = errno
        throw SystemCallError(call: name(), errno: error)
    }

    /// Waits until `fd` is ready for `events` or `deadline` passes; false on timeout.
    static func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) throws -> Bool {
        for _ in 0..<1000 {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000
                                     + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { throw SystemCallError(call: "poll", errno: errno) }
        }
        return false
    }

    /// Held while creating a pipe and while spawning: between `pipe()` and `FD_CLOEXEC`, a concurrent
    /// spawn would inherit the pipe, and a child holding another pipe's write end delays its EOF.
    static let descriptorCreationLock = Mutex(())

    /// A pipe whose ends are not inherited by children.
    static func pipe() throws -> (read: Int32, write: Int32) {
        try descriptorCreationLock.withLock { _ in
            var ends: [Int32] = [0, 0]
            try call("pipe") { Glibc.pipe(&ends) }
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            return (ends[0], ends[1])
        }
    }

    static func setNonBlocking(_ fd: Int32) throws {
        let flags = try call("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try call("fcntl(F_SETFL, O_NONBLOCK)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func socketType(_ transport: TransportProtocol) -> Int32 {
        let type = transport == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        // CLOEXEC: the lab spawns sluice-init while probes are open; children must not inherit them.
        return type | Int32(SOCK_CLOEXEC.rawValue)
    }
}

extension Posix {
    /// A blocking TCP listening socket on `endpoint` (SO_REUSEADDR; IPv6 sockets IPv6-only, so `0.0.0.0`
    /// and `::` on one port can both be bound), for the lab's servers.
    static func listeningSocket(on endpoint: Endpoint, backlog: Int32 = 512) throws -> Int32 {
        let family = endpoint.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = try call("socket for \(endpoint)") { socket(family, socketType(.tcp), 0) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size)) }
        do {
            try call("bind \(endpoint)") { endpoint.withSocketAddress { bind(fd, $0, $1) } }
            try call("listen \(endpoint)") { listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }
}

extension PodLab {
    /// A blocking TCP listening socket on `endpoint`, created inside `namespace` as `owner`, for a
    /// test's own servers (see `Posix.listeningSocket`).
    public static func listeningSocket(
        on endpoint: Endpoint, in namespace: NetworkNamespace, as owner: SocketOwner? = nil, backlog: Int32 = 512
    ) throws -> Int32 {
        try namespace.run(as: owner) { try Posix.listeningSocket(on: endpoint, backlog: backlog) }
    }
}
