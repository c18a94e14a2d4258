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
    private var threads: [pthread_t] = []

    /// Listens on every endpoint inside `namespace`, as `owner` (the app's UID in a pod).
    public init(name: String, endpoints: [Endpoint], in namespace: NetworkNamespace, as owner: SocketOwner? = nil) throws {
        self.name = name
        self.endpoints = endpoints
        var opened: [Int32] = []
        do {
            for endpoint in endpoints {
                opened.append(try namespace.run(as: owner) { try Self.listen(on: endpoint) })
            }
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
        sockets = opened
        for fd in opened {
            let context = Unmanaged.passRetained(SocketContext(server: self, fd: fd)).toOpaque()
            var thread = pthread_t()
            pthread_create(&thread, nil, { context in
                let accept = Unmanaged<SocketContext>.fromOpaque(context!).takeRetainedValue()
                accept.server.acceptLoop(accept.fd)
                return nil
            }, context)
            threads.append(thread)
        }
    }

    deinit { stop() }

    /// Requests answered so far, oldest first.
    public var requests: [Request] { received.withLock { $0 } }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        for thread in threads { pthread_join(thread, nil) }
        for fd in sockets { close(fd) }
    }

    private static func listen(on endpoint: Endpoint) throws -> Int32 {
        let family = endpoint.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = try Posix.call("socket for \(endpoint)") { socket(family, Posix.socketType(.tcp), 0) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size)) }
        do {
            try Posix.call("bind \(endpoint)") { endpoint.withSocketAddress { bind(fd, $0, $1) } }
            try Posix.call("listen \(endpoint)") { Glibc.listen(fd, 512) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// What a thread of this server works on: a listening socket or one connection.
    private final class SocketContext {
        let server: LabHTTPServer
        let fd: Int32
        init(server: LabHTTPServer, fd: Int32) {
            self.server = server
            self.fd = fd
        }
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
            let context = Unmanaged.passRetained(SocketContext(server: self, fd: fd)).toOpaque()
            var thread = pthread_t()
            if pthread_create(&thread, nil, { context in
                let connection = Unmanaged<SocketContext>.fromOpaque(context!).takeRetainedValue()
                connection.server.serve(connection.fd)
                return nil
            }, context) == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<SocketContext>.fromOpaque(context).release()
                close(fd)
            }
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
        guard let remote = Self.address(of: fd, peer: true), let local = Self.address(of: fd, peer: false) else { return }
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

    private static func address(of fd: Int32, peer: Bool) -> Endpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length) }
        }
        return status == 0 ? Endpoint(storage) : nil
    }
}
