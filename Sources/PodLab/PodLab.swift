import Capture
import Netfilter
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension SocketOwner {
    /// An application process in the pod.
    public static let app = SocketOwner(uid: 1000, gid: 1000)
    /// The sidecar (Envoy, pilot-agent): Istio's proxy UID/GID.
    public static let proxy = SocketOwner(uid: 1337, gid: 1337)
}

/// A pod and the rest of the world in two network namespaces joined by a veth pair, with servers on
/// both sides that report where every connection landed.
///
/// ```
///  pod netns                                   peer netns
///  lo  127.0.0.1, ::1                          lo
///  eth0 192.0.2.2/24  2001:db8:1::2/64  <-->  veth0 192.0.2.1/24  2001:db8:1::1/64
///   routes: 198.51.100.0/24, 203.0.113.0/24          198.51.100.1/24  203.0.113.1/24
///           via 192.0.2.1; 2001:db8:2::/64           2001:db8:2::1/64
///           via 2001:db8:1::1
/// ```
/// Every address is a documentation prefix assigned inside namespaces the lab made, so no probe can
/// reach a real network. Both namespaces are removed by `tearDown()` or, at the latest, `deinit`.
public final class PodLab: Sendable {
    public static let podIPv4: IPAddress = IPAddress("192.0.2.2")!
    public static let podIPv6: IPAddress = IPAddress("2001:db8:1::2")!
    public static let peerIPv4: IPAddress = IPAddress("192.0.2.1")!
    public static let peerIPv6: IPAddress = IPAddress("2001:db8:1::1")!
    /// "External" destinations, on the peer's veth and reached through it.
    public static let externalIPv4: [IPAddress] = [IPAddress("198.51.100.1")!, IPAddress("203.0.113.1")!]
    public static let externalIPv6: [IPAddress] = [IPAddress("2001:db8:2::1")!]
    public static let podInterface = "eth0"
    public static let peerInterface = "veth0"

    /// The pod's address of `family` on eth0.
    public static func podAddress(_ family: IPFamily) -> IPAddress { family == .ipv4 ? podIPv4 : podIPv6 }
    /// The peer's address of `family` on its veth.
    public static func peerAddress(_ family: IPFamily) -> IPAddress { family == .ipv4 ? peerIPv4 : peerIPv6 }
    /// The "external" destinations of `family`.
    public static func externalAddresses(_ family: IPFamily) -> [IPAddress] { family == .ipv4 ? externalIPv4 : externalIPv6 }
    /// 127.0.0.1 or ::1.
    public static func loopback(_ family: IPFamily) -> IPAddress { family == .ipv4 ? IPAddress("127.0.0.1")! : .ipv6Loopback }

    public struct Ports: Sendable {
        /// TCP ports served in the pod on every address (besides 15001, 15006 and 15053).
        public var podTCP: [UInt16] = [8080, 15008, 15020, 15021, 15090]
        /// TCP ports served in the peer on every address.
        public var peerTCP: [UInt16] = [53, 80, 443, 8000]
        /// UDP ports served in the peer on each of its addresses.
        public var peerUDP: [UInt16] = [53, 5000]
        /// UDP sockets in the pod (besides the DNS proxy's), each bound to one address like the peer's:
        /// a local DNS server on 127.0.0.53:53, the app's own UDP port.
        public var podUDP: [Endpoint] = []

        public init() {}
    }

    /// Everything that shapes a lab besides its name.
    public struct Layout: Sendable {
        public var ports = Ports()
        /// Who runs the sidecar: owner of the 15001, 15006 and 15053 listeners. It matters where rules
        /// match the proxy's own sockets, e.g. the DNS proxy's replies (`udp sport 15053 skuid U`).
        public var proxy: SocketOwner = .proxy
        /// `IP_TRANSPARENT` on the 15006 listeners, as Envoy sets it in TPROXY mode: the kernel hands a
        /// TPROXY'd connection only to a transparent socket.
        public var transparentInboundListener = false
        /// Probe listeners on 15001/15006 stand in for the proxy; off when a real proxy takes those ports.
        public var proxyProbeListeners = true
        /// Probe listeners on 15053 stand in for the agent's DNS proxy; off when a real agent may take it.
        public var dnsProxyProbeListeners = true
        /// More veth pairs between pod and peer, for rules that name interfaces (`-c`, `-k`).
        public var links: [Link] = []

        public init() {}
    }

    public let podNamespaceName: String
    public let peerNamespaceName: String
    public let pod: NetworkNamespace
    public let peer: NetworkNamespace
    public let podServer: ProbeServer
    public let peerServer: ProbeServer
    private let tornDown = Mutex(false)

    /// Builds the topology and starts the servers. Namespace names are `<prefix>-pod-<pid>-<random>` and
    /// `<prefix>-peer-<pid>-<random>`, so parallel tests and leftover runs never collide.
    public init(prefix: String = "sluice-lab", layout: Layout = Layout()) throws {
        Self.removeStaleNamespaces(prefix: prefix)
        let tag = Self.namespaceTag()
        podNamespaceName = "\(prefix)-pod-\(tag)"
        peerNamespaceName = "\(prefix)-peer-\(tag)"
        var created: [String] = []
        do {
            pod = try NetworkNamespace.create(named: podNamespaceName)
            created.append(podNamespaceName)
            peer = try NetworkNamespace.create(named: peerNamespaceName)
            created.append(peerNamespaceName)
            try Self.wire(pod: pod, peer: peer)
            for link in layout.links { try link.wire(pod: pod, peer: peer) }
            podServer = try ProbeServer(side: .pod, namespace: pod, listeners: Self.podListeners(layout))
            do {
                peerServer = try ProbeServer(side: .peer, namespace: peer, listeners: Self.peerListeners(layout))
            } catch {
                podServer.stop()
                throw error
            }
        } catch {
            for name in created { try? NetworkNamespace.delete(named: name) }
            throw error
        }
    }

    deinit { tearDown() }

    /// Stops the servers and removes both namespaces (with them the veth pair and every rule in them).
    /// Idempotent.
    public func tearDown() {
        let done = tornDown.withLock { done in
            defer { done = true }
            return done
        }
        if done { return }
        podServer.stop()
        peerServer.stop()
        try? NetworkNamespace.delete(named: podNamespaceName)
        try? NetworkNamespace.delete(named: peerNamespaceName)
    }

    public func namespace(_ side: Side) -> NetworkNamespace { side == .pod ? pod : peer }

    /// `<pid>-<random>`: what makes a namespace name of this process unique, and tells
    /// `removeStaleNamespaces` whose it was.
    static func namespaceTag() -> String {
        "\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }

    /// Deletes `<prefix>-pod-<pid>-*` / `<prefix>-peer-<pid>-*` (a lab's) and `<prefix>-<pid>-*` (a
    /// `ScratchNamespace`'s) namespaces whose process is gone: a lab killed before `tearDown` (SIGKILL, a
    /// crash) must not leave namespaces behind for ever.
    public static func removeStaleNamespaces(prefix: String) {
        guard let directory = opendir(NetworkNamespace.namedNamespaceDirectory) else { return }
        var stale: [String] = []
        // /run/netns holds a handful of entries; the bound only guards against a pathological directory.
        for _ in 0..<100_000 {
            guard let entry = readdir(directory) else { break }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // At most one head yields a number: after `<prefix>-` comes `pod`, `peer` or the pid.
            for head in ["\(prefix)-pod-", "\(prefix)-peer-", "\(prefix)-"] {
                guard name.hasPrefix(head), let pid = Int32(name.dropFirst(head.count).prefix { $0 != "-" }) else { continue }
                if kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
            }
        }
        closedir(directory)
        for name in stale { try? NetworkNamespace.delete(named: name) }
    }

    // MARK: Probes

    /// A TCP connection from `side` (the pod unless told) as `owner`, optionally bound to `source`.
    public func connect(from side: Side = .pod, as owner: SocketOwner? = nil, to destination: Endpoint,
                        source: IPAddress? = nil, timeout: Duration = Probe.defaultTimeout) -> ProbeResult {
        Probe.connect(in: namespace(side), as: owner, to: destination, from: source, timeout: timeout)
    }

    /// One UDP datagram from `side` as `owner`, and the reply.
    public func sendDatagram(from side: Side = .pod, as owner: SocketOwner? = nil, to destination: Endpoint,
                             source: IPAddress? = nil, timeout: Duration = Probe.defaultTimeout) -> ProbeResult {
        Probe.sendDatagram(in: namespace(side), as: owner, to: destination, from: source, timeout: timeout)
    }

    /// Runs a program inside `side`'s namespace (as root, like an init container).
    public func run(_ executable: String, _ arguments: [String], in side: Side = .pod,
                    environment: [String: String] = Subprocess.defaultEnvironment,
                    timeout: Duration = .seconds(20)) throws -> ProcessOutput {
        try Subprocess.run(executable, arguments, in: namespace(side), environment: environment, timeout: timeout)
    }

    // MARK: Building

    /// ICMP errors (port or host unreachable) are rate-limited per destination by default, so a probe
    /// that should be refused at once sometimes waits for its timeout instead. Best effort: a kernel
    /// without these knobs just keeps its limits.
    private static func disableICMPRateLimits() {
        for path in ["/proc/sys/net/ipv4/icmp_ratelimit", "/proc/sys/net/ipv6/icmp/ratelimit"] {
            // /proc/sys/net shows the network namespace of the thread that opens it.
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            _ = write(fd, "0\n", 2)
            close(fd)
        }
    }

    private static func wire(pod: NetworkNamespace, peer: NetworkNamespace) throws {
        try pod.run { disableICMPRateLimits() }
        try peer.run { disableICMPRateLimits() }
        // Order matters: both ends up before addresses, addresses before routes via them.
        try pod.run {
            let netlink = try RouteNetlink()
            try netlink.createVethPair(podInterface, peer: peerInterface, peerNamespace: peer.fileDescriptor)
            try netlink.setLinkUp("lo")
            try netlink.setLinkUp(podInterface)
        }
        try peer.run {
            let netlink = try RouteNetlink()
            try netlink.setLinkUp("lo")
            try netlink.setLinkUp(peerInterface)
            try netlink.addAddress(peerIPv4, prefixLength: 24, to: peerInterface)
            try netlink.addAddress(peerIPv6, prefixLength: 64, to: peerInterface)
            for address in externalIPv4 { try netlink.addAddress(address, prefixLength: 24, to: peerInterface) }
            for address in externalIPv6 { try netlink.addAddress(address, prefixLength: 64, to: peerInterface) }
        }
        try pod.run {
            let netlink = try RouteNetlink()
            try netlink.addAddress(podIPv4, prefixLength: 24, to: podInterface)
            try netlink.addAddress(podIPv6, prefixLength: 64, to: podInterface)
            for address in externalIPv4 {
                try netlink.addRoute(to: CIDR(address: address, prefixLength: 24), via: peerIPv4)
            }
            for address in externalIPv6 {
                try netlink.addRoute(to: CIDR(address: address, prefixLength: 64), via: peerIPv6)
            }
        }
    }

    private static let anyIPv4 = IPAddress("0.0.0.0")!
    private static let anyIPv6 = IPAddress("::")!

    static func podListeners(_ layout: Layout) -> [Listener] {
        var listeners: [Listener] = []
        let proxy = layout.proxy
        // The proxy's and the agent's listeners belong to the proxy UID, as in a real sidecar.
        for any in [anyIPv4, anyIPv6] {
            if layout.proxyProbeListeners {
                listeners.append(Listener(.tcp, Endpoint(any, 15001), .outboundProxy, owner: proxy))
                listeners.append(Listener(.tcp, Endpoint(any, 15006), .inboundProxy, owner: proxy,
                                          transparent: layout.transparentInboundListener))
            }
            for port in layout.ports.podTCP { listeners.append(Listener(.tcp, Endpoint(any, port), .app, owner: .app)) }
        }
        // Like pilot-agent's DNS proxy: loopback only. REDIRECT of locally generated packets rewrites the
        // destination to 127.0.0.1 / ::1, so replies leave from the address conntrack expects.
        for loopback in [IPAddress("127.0.0.1")!, IPAddress.ipv6Loopback] where layout.dnsProxyProbeListeners {
            listeners.append(Listener(.tcp, Endpoint(loopback, 15053), .dnsProxy, owner: proxy))
            listeners.append(Listener(.udp, Endpoint(loopback, 15053), .dnsProxy, owner: proxy))
        }
        for endpoint in layout.ports.podUDP { listeners.append(Listener(.udp, endpoint, .app, owner: .app)) }
        return listeners
    }

    static func peerListeners(_ layout: Layout) -> [Listener] {
        var listeners: [Listener] = []
        for any in [anyIPv4, anyIPv6] {
            for port in layout.ports.peerTCP { listeners.append(Listener(.tcp, Endpoint(any, port), .peer)) }
        }
        // One UDP socket per address: a wildcard socket would answer from the address routing picks
        // (192.0.2.1), which the prober's connected socket would discard.
        let linkAddresses = layout.links.flatMap { $0.peerAddresses.map(\.address) }
        for address in [peerIPv4, peerIPv6] + externalIPv4 + externalIPv6 + linkAddresses {
            for port in layout.ports.peerUDP { listeners.append(Listener(.udp, Endpoint(address, port), .peer)) }
        }
        return listeners
    }
}
