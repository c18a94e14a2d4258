import Capture
import Glibc

/// The pod's own addresses as Istio's `GetPrivateIPs` collects them: interfaces that are up,
/// without loopback and link-local addresses. They follow INSTANCE_IP in the node's IP list and
/// decide whether the pod is IPv4, IPv6 or dual-stack.
enum HostAddresses {
    static func collect() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        var visited = 0
        while let entry = cursor, visited < 4096 {
            visited += 1
            cursor = entry.pointee.ifa_next
            let flags = Int32(entry.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0,
                  let address = entry.pointee.ifa_addr else { continue }
            if let ip = ipAddress(of: address), !ip.isLinkLocal { addresses.append(ip.description) }
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
