import Capture
#if canImport(Glibc)
import Glibc
#endif

/// `Endpoint` as the socket API sees it: `sockaddr_in`/`sockaddr_in6` for bind, connect and sendto,
/// back from `sockaddr_storage`, and conntrack's original destination of a redirected connection.
/// Shared by sluice-init's validation probe, sluice-proxy's forwarding and the lab's probes and servers.
extension Endpoint {
    /// Calls `body` with this endpoint as a `sockaddr_in`/`sockaddr_in6` and its length.
    public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        switch address.family {
        case .ipv4:
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin_addr) { $0.copyBytes(from: address.bytes) }
            return try withUnsafePointer(to: &socketAddress) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .ipv6:
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: address.bytes) }
            return try withUnsafePointer(to: &socketAddress) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    /// Reads an endpoint from a `sockaddr_in`/`sockaddr_in6` in `storage`; nil for other families.
    public init?(_ storage: sockaddr_storage) {
        var storage = storage
        let endpoint: Endpoint? = withUnsafeBytes(of: &storage) { raw in
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET:
                let socketAddress = raw.load(as: sockaddr_in.self)
                let bytes = withUnsafeBytes(of: socketAddress.sin_addr) { Array($0) }
                return Endpoint(IPAddress(family: .ipv4, bytes: bytes), UInt16(bigEndian: socketAddress.sin_port))
            case AF_INET6:
                let socketAddress = raw.load(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: socketAddress.sin6_addr) { Array($0) }
                return Endpoint(IPAddress(family: .ipv6, bytes: bytes), UInt16(bigEndian: socketAddress.sin6_port))
            default:
                return nil
            }
        }
        guard let endpoint else { return nil }
        self = endpoint
    }

    /// The address `socket` is bound to (getsockname); nil when the kernel will not say.
    public static func local(of socket: Int32) -> Endpoint? {
        read(socket, getsockname)
    }

    /// The address `socket` is connected to (getpeername); nil when it is not connected.
    public static func remote(of socket: Int32) -> Endpoint? {
        read(socket, getpeername)
    }

    private static func read(
        _ socket: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) -> Endpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(socket, $0, &length) }
        }
        return status == 0 ? Endpoint(storage) : nil
    }

    /// `SO_ORIGINAL_DST` (SOL_IP) / `IP6T_SO_ORIGINAL_DST` (SOL_IPV6) of an accepted TCP connection of
    /// `family`: conntrack's original destination, before a REDIRECT. Nil when the kernel has none (no
    /// NAT rule touched the connection, or no conntrack entry at all).
    public static func originalDestination(of socket: Int32, family: IPFamily) -> Endpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(family == .ipv4 ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        let level = family == .ipv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6)
        let status = getsockopt(socket, level, originalDestinationOption, &storage, &length)
        return status == 0 ? Endpoint(storage) : nil
    }

    /// `SO_ORIGINAL_DST` (<linux/netfilter_ipv4.h>) and `IP6T_SO_ORIGINAL_DST`
    /// (<linux/netfilter_ipv6/ip6_tables.h>) share the value 80; Swift's Glibc module exports neither.
    private static let originalDestinationOption: Int32 = 80
}
