import Capture
import Sockets
import Netfilter
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately plain HTTP/1.1 client for tests: one blocking request per connection, made from a
/// thread inside the namespace under test, so what it observes does not depend on the code under test.
public enum LabHTTP {
    public struct Response: Sendable, Hashable, CustomStringConvertible {
        public var status: Int
        public var headers: [String: String]
        public var body: String
        public var description: String { "HTTP \(status): \(body)" }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func request(_ method: String = "GET", _ path: String, port: UInt16, host: String = "127.0.0.1",
                               in namespace: NetworkNamespace, as owner: SocketOwner? = nil, headers: [String: String] = [:],
                               body: String = "", timeout: Duration = .seconds(5)) throws -> Response {
        // The request runs on the namespace's thread; as `owner`, its socket is that UID's for the capture rules.
        try namespace.run(as: owner) {
            guard let address = IPAddress(host) else { throw Failure(description: "not an IP address: \(host)") }
            let destination = Endpoint(address, port)
            let fd = try Posix.call("socket") { socket(address.family == .ipv4 ? AF_INET : AF_INET6, Posix.socketType(.tcp), 0) }
            defer { close(fd) }
            let deadline = ContinuousClock.now + timeout
            try Posix.setNonBlocking(fd)
            let connected = destination.withSocketAddress { connect(fd, $0, $1) }
            if connected != 0 {
                guard errno == EINPROGRESS else { throw SystemCallError(call: "connect \(destination)", errno: errno) }
                guard try Posix.wait(fd, for: Int16(POLLOUT), until: deadline) else { throw Failure(description: "connect \(destination): timed out") }
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                guard error == 0 else { throw SystemCallError(call: "connect \(destination)", errno: error) }
            }
            var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
            request += "\r\n" + body
            var pending = Array(request.utf8)[...]
            while !pending.isEmpty {
                guard try Posix.wait(fd, for: Int16(POLLOUT), until: deadline) else { throw Failure(description: "send to \(destination): timed out") }
                let sent = pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    throw SystemCallError(call: "send to \(destination)", errno: errno)
                }
                pending = pending.dropFirst(sent)
            }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while received.count < 16 << 20 {
                guard try Posix.wait(fd, for: Int16(POLLIN), until: deadline) else { throw Failure(description: "response from \(destination): timed out") }
                let count = recv(fd, &buffer, buffer.count, 0)
                if count == 0 { break }
                if count < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    if errno == ECONNRESET { break }
                    throw SystemCallError(call: "recv from \(destination)", errno: errno)
                }
                received += buffer[0..<count]
            }
            return try parse(received, from: destination)
        }
    }

    private static func parse(_ bytes: [UInt8], from destination: Endpoint) throws -> Response {
        let separator = Array("\r\n\r\n".utf8)
        guard let headerEnd = (0...max(0, bytes.count - 4)).first(where: { bytes.count >= 4 && Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw Failure(description: "no HTTP response from \(destination): \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        let head = String(decoding: bytes[..<headerEnd], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line: \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        var body = Array(bytes[(headerEnd + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    private static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var body: [UInt8] = []
        var offset = 0
        for _ in 0..<100_000 {
            guard let lineEnd = (offset..<max(offset, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
                  let size = Int(String(decoding: bytes[offset..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16),
                  size > 0 else { break }
            let start = lineEnd + 2
            let end = min(start + size, bytes.count)
            body += bytes[start..<end]
            offset = end + 2
        }
        return body
    }
}
