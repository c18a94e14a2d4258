import Capture
#if canImport(Glibc)
import Glibc
#endif

/// One address of one network interface, as `getifaddrs(3)` lists it.
public struct InterfaceAddress: Sendable, Hashable {
    public var interface: String
    public var address: IPAddress
    public var isUp: Bool
    public var isLoopbackInterface: Bool

    /// Every IPv4 and IPv6 address of every interface in the current network namespace; empty when
    /// the kernel will not say.
    public static func all() -> [InterfaceAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [InterfaceAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        var visited = 0
        while let entry = cursor, visited < 4096 {
            visited += 1
            cursor = entry.pointee.ifa_next
            guard let socketAddress = entry.pointee.ifa_addr, let address = ipAddress(of: socketAddress) else { continue }
            let flags = Int32(entry.pointee.ifa_flags)
            addresses.append(InterfaceAddress(
                interface: entry.pointee.ifa_name.map { String(cString: $0) } ?? "",
                address: address,
                isUp: flags & Int32(IFF_UP) != 0,
                isLoopbackInterface: flags & Int32(IFF_LOOPBACK) != 0))
        }
        return addresses
    }

    private static func ipAddress(of address: UnsafeMutablePointer<sockaddr>) -> IPAddress? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { socketAddress in
                withUnsafeBytes(of: socketAddress.pointee.sin_addr) { IPAddress(family: .ipv4, bytes: Array($0)) }
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { socketAddress in
                withUnsafeBytes(of: socketAddress.pointee.sin6_addr) { IPAddress(family: .ipv6, bytes: Array($0)) }
            }
        default:
            return nil
        }
    }
}
