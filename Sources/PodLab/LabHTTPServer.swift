import Capture
import Netfilter
import Sockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A plain HTTP/1.1 server for the sidecar lab: an "app" in the pod or a service on the peer. One
/// request per connection, answered on a thread of its own with who it is and who it saw:
///
///     GET /            → 200 "<name>: request from 127.0.0.6 to 192.0.2.2:8080"
///     GET /slow?ms=N   → the same, after N milliseconds (for in-flight requests across a drain)
///
/// Every request is recorded (the peer address it came from), so a test can tell whether it crossed
/// the proxy (127.0.0.6 for inbound) or not.
public final class LabHTTPServer: @unchecked Sendable {
    public struct Request: Sendable, Hashable {
        public var path: String
        public var remote: Endpoint
        public var local: Endpoint
    }

    public let name: String
    public let endpoints: [Endpoint]
    private let sockets: [Int32]
    private let received = Mutex<[Request]>([])
    private let stopped = Atomic<Bool>(false)
    private var acceptors: [LabThread] = []

    /// Listens on every endpoint inside `namespace`, as `owner` (the app's UID in a pod).
    public init(name: String, endpoints: [Endpoint], in namespace: NetworkNamespace, as owner: SocketOwner? = nil) throws {
        self.name = name
        self.endpoints = endpoints
        var opened: [Int32] = []
        do {
            for endpoint in endpoints {
                opened.append(try namespace.run(as: owner) { try Posix.listeningSocket(on: endpoint) })
            }
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
        sockets = opened
        acceptors = opened.map { fd in LabThread { self.acceptLoop(fd) } }
    }

    deinit { stop() }

    /// Requests answered so far, oldest first.
    public var requests: [Request] { received.withLock { $0 } }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        for acceptor in acceptors { acceptor.join() }
        for fd in sockets { close(fd) }
    }

    private func acceptLoop(_ listener: Int32) {
        // Bounded: a lab serves at most a few thousand requests in its life.
        for _ in 0..<1_000_000 {
            let fd = accept(listener, nil, nil)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            if stopped.load(ordering: .relaxed) {
                if fd >= 0 { close(fd) }
                return
            }
            guard fd >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            LabThread.detach { self.serve(fd) }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end = Array("\r\n\r\n".utf8)
        while head.count < 65536 {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            head += buffer[0..<count]
            if head.count >= 4, (0...(head.count - 4)).contains(where: { Array(head[$0..<$0 + 4]) == end }) { break }
        }
        let requestLine = String(decoding: head.prefix { $0 != 13 }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        let path = parts.count > 1 ? String(parts[1]) : "/"
        guard let remote = Endpoint.remote(of: fd), let local = Endpoint.local(of: fd) else { return }
        received.withLock { $0.append(Request(path: path, remote: remote, local: local)) }
        if path.hasPrefix("/slow"), let value = path.split(separator: "=").last, let milliseconds = UInt32(value) {
            usleep(min(milliseconds, 30_000) * 1000)
        }
        let body = "\(name): request from \(remote.address) to \(local)\n"
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        var pending = Array(response.utf8)[...]
        while !pending.isEmpty {
            let sent = pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            pending = pending.dropFirst(sent)
        }
    }
}
