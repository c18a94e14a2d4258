#if canImport(Glibc)
import Glibc
#endif

/// A system call or netlink request the kernel refused: what was asked, as a person would type it
/// (`RTM_NEWADDR 192.0.2.2/24 dev eth0`, `setns(/run/netns/pod, CLONE_NEWNET)`), and the errno.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
