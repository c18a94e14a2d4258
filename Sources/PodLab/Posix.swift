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

extension Endpoint {
    /// `getsockname`/`getpeername`-style calls.
    static func read(_ name: String, _ fd: Int32,
                     _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) throws -> Endpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutablePointer(to: &storage) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                _ = try Posix.call(name) { call(fd, socketAddress, &length) }
            }
        }
        return Endpoint(storage)
    }
}
