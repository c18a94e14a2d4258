import Capture
import Sockets
import Netfilter
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Which namespace of the lab something is in.
public enum Side: String, Sendable, Hashable {
    case pod
    case peer
}

/// What a listener stands for, so a probe can say where a connection landed.
public enum ListenerRole: String, Sendable, Hashable {
    /// 15001: the proxy's outbound listener (captured outbound traffic).
    case outboundProxy = "outbound-proxy"
    /// 15006: the proxy's inbound listener (captured inbound traffic and the proxy hairpin).
    case inboundProxy = "inbound-proxy"
    /// 15053: the agent's DNS proxy.
    case dnsProxy = "dns-proxy"
    /// Anything else in the pod: the application, or a port served directly (15021, 15008, ...).
    case app
    /// A server in the peer namespace (the "rest of the world").
    case peer
}

public struct Listener: Sendable, Hashable {
    public var transport: TransportProtocol
    /// Address to bind (`0.0.0.0` / `::` for any) and port.
    public var endpoint: Endpoint
    public var role: ListenerRole
    /// Who owns the listening socket. It matters for UDP: replies leave from the listening socket, and
    /// Istio's DNS rules pick the conntrack zone of the DNS proxy's answers by `skuid 1337`.
    public var owner: SocketOwner?
    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT`: TPROXY delivers connections for any address to it.
    public var transparent: Bool

    public init(_ transport: TransportProtocol, _ endpoint: Endpoint, _ role: ListenerRole, owner: SocketOwner? = nil,
                transparent: Bool = false) {
        self.transport = transport
        self.endpoint = endpoint
        self.role = role
        self.owner = owner
        self.transparent = transparent
    }
}

/// One connection (or datagram) a listener received, as the listener saw it.
public struct Arrival: Sendable, Hashable, CustomStringConvertible {
    public var side: Side
    public var role: ListenerRole
    public var transport: TransportProtocol
    /// The socket's local address: where the packet was delivered after any NAT.
    public var local: Endpoint
    /// `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` (TCP only): the destination before NAT, from conntrack.
    /// Nil when the kernel has no conntrack entry (no NAT rules in the namespace) or for UDP.
    public var originalDestination: Endpoint?
    public var remote: Endpoint

    /// One line, sent back to the prober and parsed by `init?(reportLine:)`.
    var reportLine: String {
        "sluice-lab side=\(side.rawValue) role=\(role.rawValue) transport=\(transport.rawValue) local=\(local)"
            + " original=\(originalDestination.map(\.description) ?? "-") remote=\(remote)\n"
    }

    init(side: Side, role: ListenerRole, transport: TransportProtocol, local: Endpoint,
         originalDestination: Endpoint?, remote: Endpoint) {
        self.side = side
        self.role = role
        self.transport = transport
        self.local = local
        self.originalDestination = originalDestination
        self.remote = remote
    }

    init?(reportLine: String) {
        let words = reportLine.split(whereSeparator: \.isWhitespace)
        guard words.first == "sluice-lab" else { return nil }
        var fields: [Substring: Substring] = [:]
        for word in words.dropFirst() {
            guard let equals = word.firstIndex(of: "=") else { return nil }
            fields[word[..<equals]] = word[word.index(after: equals)...]
        }
        guard let side = fields["side"].flatMap({ Side(rawValue: String($0)) }),
              let role = fields["role"].flatMap({ ListenerRole(rawValue: String($0)) }),
              let transport = fields["transport"].flatMap({ TransportProtocol(rawValue: String($0)) }),
              let local = fields["local"].flatMap({ Endpoint(String($0)) }),
              let remote = fields["remote"].flatMap({ Endpoint(String($0)) }),
              let original = fields["original"] else { return nil }
        self.init(side: side, role: role, transport: transport, local: local,
                  originalDestination: original == "-" ? nil : Endpoint(String(original)), remote: remote)
    }

    public var description: String {
        "\(transport) \(remote) → \(side):\(local) (\(role.rawValue))"
            + (originalDestination.map { ", original destination \($0)" } ?? "")
    }
}

/// Listeners in one namespace, served by one thread: every accepted connection and every datagram is
/// answered with an `Arrival` report line and recorded.
public final class ProbeServer: Sendable {
    /// Owned by the serving thread too; the façade's `deinit` stops it, which a thread holding the
    /// façade itself would prevent.
    private let engine: Engine

    /// No lab lives longer than this; the serving loop ends by itself afterwards.
    public static let maximumLifetime: Duration = .seconds(30 * 60)

    /// Opens every listener inside `namespace` and starts serving.
    public init(side: Side, namespace: NetworkNamespace, listeners: [Listener]) throws {
        var sockets: [Int32] = []
        do {
            for listener in listeners {
                sockets.append(try namespace.run(as: listener.owner) { try Engine.open(listener) })
            }
            engine = try Engine(side: side, listeners: listeners, sockets: sockets)
        } catch {
            for fd in sockets { close(fd) }
            throw error
        }
    }

    deinit { engine.stop() }

    public var arrivals: [Arrival] { engine.state.withLock { $0.arrivals } }

    /// Stops serving and closes every listener. Idempotent.
    public func stop() { engine.stop() }
}

private final class Engine: @unchecked Sendable {
    let side: Side
    let listeners: [Listener]
    let sockets: [Int32]
    let wakePipe: (read: Int32, write: Int32)
    let state = Mutex(State())
    /// Written once in `init`, before anyone can call `stop`.
    private var thread = pthread_t()

    struct State {
        var arrivals: [Arrival] = []
        var stopped = false
    }

    /// Takes ownership of `sockets` once it returns; if it throws, the caller still owns them.
    init(side: Side, listeners: [Listener], sockets: [Int32]) throws {
        self.side = side
        self.listeners = listeners
        self.sockets = sockets
        wakePipe = try Posix.pipe()
        let unmanaged = Unmanaged.passRetained(self)
        let status = pthread_create(&thread, nil, { argument in
            let engine = Unmanaged<Engine>.fromOpaque(argument!).takeRetainedValue()
            engine.serve()
            return nil
        }, unmanaged.toOpaque())
        guard status == 0 else {
            unmanaged.release()
            state.withLock { $0.stopped = true }
            close(wakePipe.read)
            close(wakePipe.write)
            throw SystemCallError(call: "pthread_create", errno: status)
        }
    }

    func stop() {
        let wasStopped = state.withLock { state in
            defer { state.stopped = true }
            return state.stopped
        }
        if wasStopped { return }
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
        pthread_join(thread, nil)
        for fd in sockets { close(fd) }
        close(wakePipe.read)
        close(wakePipe.write)
    }

    // MARK: Private

    static func open(_ listener: Listener) throws -> Int32 {
        let endpoint = listener.endpoint
        let family = endpoint.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = try Posix.call("socket for \(listener.transport) \(endpoint)") {
            socket(family, Posix.socketType(listener.transport), 0)
        }
        do {
            var on: Int32 = 1
            let size = socklen_t(MemoryLayout<Int32>.size)
            try Posix.call("setsockopt(SO_REUSEADDR)") { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size) }
            if listener.transparent {
                // The kernel hands a TPROXY'd connection only to a transparent socket (needs CAP_NET_ADMIN,
                // which setfsuid keeps).
                let (level, option) = family == AF_INET ? (Int32(IPPROTO_IP), ipTransparent) : (Int32(IPPROTO_IPV6), ipv6Transparent)
                try Posix.call("setsockopt(\(family == AF_INET ? "IP_TRANSPARENT" : "IPV6_TRANSPARENT"))") {
                    setsockopt(fd, level, option, &on, size)
                }
            }
            if family == AF_INET6 {
                // IPv4 gets its own socket: a v4-mapped connection on a v6 socket cannot answer
                // SO_ORIGINAL_DST, which conntrack serves per family.
                try Posix.call("setsockopt(IPV6_V6ONLY)") { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, size) }
            }
            try endpoint.withSocketAddress { address, length in
                _ = try Posix.call("bind \(listener.transport) \(endpoint)") { bind(fd, address, length) }
            }
            if listener.transport == .tcp {
                try Posix.call("listen \(endpoint)") { Glibc.listen(fd, 64) }
            }
            try Posix.setNonBlocking(fd)
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    private func serve() {
        let deadline = ContinuousClock.now + ProbeServer.maximumLifetime
        var descriptors = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        descriptors.append(pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0))
        while ContinuousClock.now < deadline {
            let ready = poll(&descriptors, nfds_t(descriptors.count), 1000)
            if ready < 0 && errno != EINTR { return }
            if descriptors.last!.revents != 0 { return }
            for index in sockets.indices where descriptors[index].revents != 0 {
                descriptors[index].revents = 0
                let listener = listeners[index]
                // Serve what is queued, but never loop forever on one busy socket.
                for _ in 0..<64 {
                    let served = listener.transport == .tcp
                        ? acceptOne(sockets[index], listener) : answerOne(sockets[index], listener)
                    if !served { break }
                }
            }
        }
    }

    private func record(_ arrival: Arrival) {
        state.withLock { $0.arrivals.append(arrival) }
    }

    private func acceptOne(_ listeningSocket: Int32, _ listener: Listener) -> Bool {
        let fd = accept(listeningSocket, nil, nil)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard let local = Endpoint.local(of: fd),
              let remote = Endpoint.remote(of: fd) else { return true }
        let arrival = Arrival(side: side, role: listener.role, transport: .tcp, local: local,
                              originalDestination: Endpoint.originalDestination(of: fd, family: local.address.family),
                              remote: remote)
        record(arrival)
        let line = Array(arrival.reportLine.utf8)
        _ = send(fd, line, line.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        return true
    }

    private func answerOne(_ fd: Int32, _ listener: Listener) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let received = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
            }
        }
        guard received >= 0 else { return false }
        guard let remote = Endpoint(storage) else { return true }
        // UDP listeners are bound to one address (see `PodLab`), so that address is where the datagram
        // landed, and replies leave from it: conntrack then reverses any REDIRECT for the prober.
        let arrival = Arrival(side: side, role: listener.role, transport: .udp, local: listener.endpoint,
                              originalDestination: nil, remote: remote)
        record(arrival)
        let line = Array(arrival.reportLine.utf8)
        remote.withSocketAddress { address, addressLength in
            _ = sendto(fd, line, line.count, Int32(MSG_DONTWAIT), address, addressLength)
        }
        return true
    }

    /// <linux/in.h> and <linux/in6.h>; Swift's Glibc module does not export them.
    static let ipTransparent: Int32 = 19
    static let ipv6Transparent: Int32 = 75
}
