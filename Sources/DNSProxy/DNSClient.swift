import Capture
import DNSWire
import Sockets
#if canImport(Glibc)
import Glibc
#endif

/// A blocking stub-resolver client: one question to one server, over UDP or TCP, with a deadline. For
/// `sluice-dns`, the tests and the demo; the proxy itself never blocks.
public enum DNSClient {
    /// Sends `message` and returns the server's answer with the same ID. UDP answers from anywhere
    /// but the server are never seen: the socket is connected.
    public static func exchange(_ message: [UInt8], server: Endpoint, transport: DNSTransport,
                                timeout: Duration = .seconds(3)) throws(DNSClientError) -> [UInt8] {
        let descriptor = socket(server.address.family == .ipv4 ? AF_INET : AF_INET6,
                                Int32(transport == .udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw DNSClientError("socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let deadline = ContinuousClock.now + timeout
        var timeoutValue = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
        let connected = server.withSocketAddress { connect(descriptor, $0, $1) }
        guard connected == 0 else { throw DNSClientError("\(server) (\(transport.rawValue)): connect: \(String(cString: strerror(errno)))") }

        let outgoing = transport == .tcp ? DNSTCPFraming.frame(message) : message
        let sent = outgoing.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == outgoing.count else { throw DNSClientError("\(server) (\(transport.rawValue)): send: \(String(cString: strerror(errno)))") }

        let id = message.count >= 2 ? UInt16(message[0]) << 8 | UInt16(message[1]) : 0
        var decoder = DNSStreamDecoder()
        var buffer = [UInt8](repeating: 0, count: 65536)
        // Bounded by the deadline and, independently, by a count: each pass blocks at most `timeout`.
        for _ in 0..<10_000 {
            guard ContinuousClock.now < deadline else { break }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                throw DNSClientError("\(server) (\(transport.rawValue)): \(String(cString: strerror(errno)))")
            }
            switch transport {
            case .udp:
                let answer = Array(buffer[0..<count])
                // A late answer to an earlier query on a reused port: not ours.
                if answer.count >= 2, UInt16(answer[0]) << 8 | UInt16(answer[1]) == id { return answer }
            case .tcp:
                guard count > 0 else { throw DNSClientError("\(server) (tcp): the server closed the connection without an answer") }
                decoder.append(buffer[0..<count])
                do {
                    if let answer = try decoder.nextMessage() { return answer }
                } catch {
                    throw DNSClientError("\(server) (tcp): \(error)")
                }
            }
        }
        throw DNSClientError("\(server) (\(transport.rawValue)): no answer within \(timeout)")
    }

    /// Asks `name`/`type` with RD set, as a stub resolver does, and decodes the answer. With
    /// `retryOverTCP`, a truncated UDP answer is asked again over TCP, as glibc does.
    public static func query(_ name: DNSName, type: DNSRecordType, server: Endpoint, transport: DNSTransport = .udp,
                             udpPayloadSize: UInt16? = nil, retryOverTCP: Bool = true,
                             timeout: Duration = .seconds(3)) throws(DNSClientError) -> DNSMessage {
        var header = DNSHeader(id: UInt16.random(in: .min ... .max))
        header.recursionDesired = true
        var message = DNSMessage(header: header, questions: [DNSQuestion(name: name, type: type)])
        if let udpPayloadSize { message.edns = EDNS(udpPayloadSize: udpPayloadSize) }
        let bytes = message.encode()
        var answer = try exchange(bytes, server: server, transport: transport, timeout: timeout)
        var decoded = try decode(answer, server: server)
        if transport == .udp, retryOverTCP, decoded.header.isTruncated {
            answer = try exchange(bytes, server: server, transport: .tcp, timeout: timeout)
            decoded = try decode(answer, server: server)
        }
        return decoded
    }

    private static func decode(_ answer: [UInt8], server: Endpoint) throws(DNSClientError) -> DNSMessage {
        do {
            return try DNSMessage.decode(answer)
        } catch {
            throw DNSClientError("\(server): malformed answer: \(error)")
        }
    }
}

public struct DNSClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
