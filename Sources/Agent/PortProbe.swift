import Capture
import Sockets
import Glibc
import Netfilter

/// Whether a TCP port can be bound, checked with a throw-away socket. `SO_REUSEADDR` as the real
/// listeners set it, so a port in TIME_WAIT after a restart is not mistaken for one in use.
enum PortProbe {
    /// nil when `address:port` can be bound; otherwise what the kernel said, as words.
    static func bindProblem(address: String, port: Int) -> String? {
        guard let ip = IPAddress(address), let portNumber = UInt16(exactly: port) else { return nil }
        let fd = socket(ip.family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        // No IPv6 in this pod: the listener that wants it fails on its own terms; not a port conflict.
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Endpoint(ip, portNumber).withSocketAddress({ bind(fd, $0, $1) }) != 0 else { return nil }
        switch errno {
        case EADDRINUSE: return "is already in use"
        case EACCES: return "needs a privilege the agent does not have"
        case EADDRNOTAVAIL, EAFNOSUPPORT: return nil
        default: return "cannot be bound: \(String(cString: strerror(errno)))"
        }
    }
}
