import Capture
import Sockets
import Netfilter
#if canImport(Glibc)
import Glibc
#endif

/// Where a probe's connection or datagram ended up, in Istio's terms.
public enum Landing: Sendable, Hashable, CustomStringConvertible {
    /// Redirected to the proxy's outbound listener (15001); the proxy would read `originalDestination`
    /// with `SO_ORIGINAL_DST`.
    case proxyOutbound(originalDestination: Endpoint)
    /// Redirected to the proxy's inbound listener (15006).
    case proxyInbound(originalDestination: Endpoint)
    /// Redirected to the agent's DNS proxy (15053).
    case dnsProxy
    /// Not redirected: delivered to a server in the pod or the peer at this (local) address.
    case direct(Side, Endpoint)
    /// Nothing answered: refused, unreachable, or no reply before the timeout.
    case failed(String)

    init(_ arrival: Arrival) {
        let original = arrival.originalDestination ?? arrival.local
        switch arrival.role {
        case .outboundProxy: self = .proxyOutbound(originalDestination: original)
        case .inboundProxy: self = .proxyInbound(originalDestination: original)
        case .dnsProxy: self = .dnsProxy
        case .app, .peer: self = .direct(arrival.side, arrival.local)
        }
    }

    public var description: String {
        switch self {
        case .proxyOutbound(let original): "15001 (outbound capture), original destination \(original)"
        case .proxyInbound(let original): "15006 (inbound capture), original destination \(original)"
        case .dnsProxy: "15053 (DNS capture)"
        case .direct(let side, let local): "\(local) in the \(side) (direct, not captured)"
        case .failed(let reason): "nowhere: \(reason)"
        }
    }
}

/// One probe's outcome: the landing, and the listener's own report when one answered.
public struct ProbeResult: Sendable, Hashable, CustomStringConvertible {
    public var landing: Landing
    public var arrival: Arrival?

    public var description: String { landing.description }
}

/// Probes that send real packets from inside a namespace. Each waits at most `timeout` for the whole
/// exchange, and every failure becomes `.failed` with the call and errno, so a test prints what happened
/// instead of hanging.
public enum Probe {
    public static let defaultTimeout: Duration = .seconds(2)

    /// Connects over TCP from `namespace` as `owner` (socket credentials for `meta skuid/skgid`),
    /// optionally from `source`, and reads the listener's report.
    public static func connect(in namespace: NetworkNamespace, as owner: SocketOwner? = nil, to destination: Endpoint,
                               from source: IPAddress? = nil, timeout: Duration = defaultTimeout) -> ProbeResult {
        exchange(.tcp, in: namespace, as: owner, to: destination, from: source, timeout: timeout)
    }

    /// Sends one UDP datagram (connected socket, so ICMP errors and foreign replies are filtered by the
    /// kernel) and reads the reply.
    public static func sendDatagram(in namespace: NetworkNamespace, as owner: SocketOwner? = nil, to destination: Endpoint,
                                    from source: IPAddress? = nil, timeout: Duration = defaultTimeout) -> ProbeResult {
        exchange(.udp, in: namespace, as: owner, to: destination, from: source, timeout: timeout)
    }

    private static func exchange(_ transport: TransportProtocol, in namespace: NetworkNamespace, as owner: SocketOwner?,
                                 to destination: Endpoint, from source: IPAddress?, timeout: Duration) -> ProbeResult {
        let deadline = ContinuousClock.now + timeout
        let fd: Int32
        do {
            // Only the socket needs the namespace and the credentials; it keeps both for its lifetime.
            fd = try namespace.run(as: owner) {
                try Posix.call("socket \(transport) for \(destination)") {
                    socket(destination.address.family == .ipv4 ? AF_INET : AF_INET6, Posix.socketType(transport), 0)
                }
            }
        } catch {
            return ProbeResult(landing: .failed("\(error)"), arrival: nil)
        }
        defer { close(fd) }
        do {
            try Posix.setNonBlocking(fd)
            if let source {
                try Endpoint(source, 0).withSocketAddress { address, length in
                    _ = try Posix.call("bind \(source)") { bind(fd, address, length) }
                }
            }
            let connected = try destination.withSocketAddress { address, length -> Bool in
                let status = Glibc.connect(fd, address, length)
                if status == 0 { return true }
                if errno == EINPROGRESS || errno == EINTR { return false }
                throw SystemCallError(call: "connect \(transport) \(destination)", errno: errno)
            }
            if !connected {
                guard try Posix.wait(fd, for: Int16(POLLOUT), until: deadline) else {
                    return ProbeResult(landing: .failed("connect \(destination): no answer within \(timeout)"), arrival: nil)
                }
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                try Posix.call("getsockopt(SO_ERROR)") { getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) }
                if error != 0 { throw SystemCallError(call: "connect \(transport) \(destination)", errno: error) }
            }
            if transport == .udp {
                let probe = Array("sluice-lab probe\n".utf8)
                try Posix.call("send \(destination)") { send(fd, probe, probe.count, Int32(MSG_NOSIGNAL)) }
            }
            let reply = try readReport(fd, transport: transport, until: deadline)
            guard let reply else {
                return ProbeResult(landing: .failed("\(transport) \(destination): no reply within \(timeout)"), arrival: nil)
            }
            guard let arrival = Arrival(reportLine: reply) else {
                return ProbeResult(landing: .failed("\(transport) \(destination): unexpected reply \(reply.debugDescription)"),
                                   arrival: nil)
            }
            return ProbeResult(landing: Landing(arrival), arrival: arrival)
        } catch {
            return ProbeResult(landing: .failed("\(error)"), arrival: nil)
        }
    }

    /// TCP: everything until the listener closes. UDP: one datagram.
    private static func readReport(_ fd: Int32, transport: TransportProtocol,
                                   until deadline: ContinuousClock.Instant) throws -> String? {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        // A report is one short line, so a handful of reads suffices; the bound keeps a chatty peer finite.
        for _ in 0..<64 {
            guard try Posix.wait(fd, for: Int16(POLLIN), until: deadline) else { return nil }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw SystemCallError(call: "recv", errno: errno)
            }
            collected += buffer[0..<count]
            if count == 0 || transport == .udp || collected.count > 8192 { break }
        }
        return String(decoding: collected, as: UTF8.self)
    }
}
