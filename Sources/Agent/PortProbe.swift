import Glibc

/// Whether a TCP port can be bound, checked with a throw-away socket. `SO_REUSEADDR` as the real
/// listeners set it, so a port in TIME_WAIT after a restart is not mistaken for one in use.
enum PortProbe {
    /// nil when `address:port` can be bound; otherwise what the kernel said, as words.
    static func bindProblem(address: String, port: Int) -> String? {
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        if address.contains(":") {
            family = AF_INET6
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            guard inet_pton(AF_INET6, address, &socketAddress.sin6_addr) == 1 else { return nil }
            withUnsafeBytes(of: socketAddress) { bytes in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            family = AF_INET
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            guard inet_pton(AF_INET, address, &socketAddress.sin_addr) == 1 else { return nil }
            withUnsafeBytes(of: socketAddress) { bytes in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        // No IPv6 in this pod: the listener that wants it fails on its own terms; not a port conflict.
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard result != 0 else { return nil }
        switch errno {
        case EADDRINUSE: return "is already in use"
        case EACCES: return "needs a privilege the agent does not have"
        case EADDRNOTAVAIL, EAFNOSUPPORT: return nil
        default: return "cannot be bound: \(String(cString: strerror(errno)))"
        }
    }
}
