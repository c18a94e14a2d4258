import Capture
import CSockets
import Sockets
#if canImport(Glibc)
import Glibc
#endif

/// The socket calls of the forwarding path, each returning the kernel's errno on failure. Nothing
/// here blocks: every descriptor is non-blocking.
/// A failed call's errno.
struct Errno: Error {
    let code: Int32

    init(_ code: Int32) {
        self.code = code
    }

    var text: String { SocketCalls.errnoText(code) }
}

enum SocketCalls {
    // Linux option numbers Swift's Glibc module does not export.
    static let ipTransparent: Int32 = 19          // IP_TRANSPARENT
    static let ipv6Transparent: Int32 = 75        // IPV6_TRANSPARENT
    static let ipBindAddressNoPort: Int32 = 24    // IP_BIND_ADDRESS_NO_PORT
    static let socketMark: Int32 = 36             // SO_MARK

    static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// A listening TCP socket on `endpoint`. IPv6 sockets are IPv6-only so `0.0.0.0` and `::` on the
    /// same port can both be bound (Envoy's default for additional addresses).
    static func listen(on endpoint: Endpoint, transparent: Bool, backlog: Int32 = 1024) -> Result<Int32, Errno> {
        let family = endpoint.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Errno(errno)) }
        var failure: Int32 = 0
        if setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0 { failure = errno }
        if failure == 0, family == AF_INET6, setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) != 0 { failure = errno }
        if failure == 0, transparent {
            let (level, option) = family == AF_INET ? (Int32(IPPROTO_IP), ipTransparent) : (Int32(IPPROTO_IPV6), ipv6Transparent)
            if setOption(fd, level, option, 1) != 0 { failure = errno }
        }
        if failure == 0, endpoint.withSocketAddress({ bind(fd, $0, $1) }) != 0 { failure = errno }
        if failure == 0, Glibc.listen(fd, backlog) != 0 { failure = errno }
        if failure != 0 {
            close(fd)
            return .failure(Errno(failure))
        }
        return .success(fd)
    }

    /// Starts a non-blocking connect to `destination`, optionally from `source` (port 0). With
    /// `transparent`, the source may be any address (the downstream's, for original_src) and the
    /// socket carries `mark`.
    static func startConnect(
        to destination: Endpoint, from source: IPAddress?, transparent: Bool, mark: UInt32?
    ) -> Result<Int32, Errno> {
        let family = destination.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Errno(errno)) }
        var failure: Int32 = 0
        // Envoy sets TCP_NODELAY on both legs: a proxy must not add Nagle delays the app did not ask for.
        if setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1) != 0 { failure = errno }
        if failure == 0, transparent {
            let (level, option) = family == AF_INET ? (Int32(IPPROTO_IP), ipTransparent) : (Int32(IPPROTO_IPV6), ipv6Transparent)
            if setOption(fd, level, option, 1) != 0 { failure = errno }
        }
        if failure == 0, let mark, setOption(fd, SOL_SOCKET, socketMark, Int32(bitPattern: mark)) != 0 { failure = errno }
        if failure == 0, let source {
            // Pick the port at connect time, not at bind: binding first would reserve a port per
            // 4-tuple-less bind and exhaust the ephemeral range under many connections.
            _ = setOption(fd, Int32(IPPROTO_IP), ipBindAddressNoPort, 1)
            if Endpoint(source, 0).withSocketAddress({ bind(fd, $0, $1) }) != 0 { failure = errno }
        }
        if failure == 0, destination.withSocketAddress({ connect(fd, $0, $1) }) != 0, errno != EINPROGRESS { failure = errno }
        if failure != 0 {
            close(fd)
            return .failure(Errno(failure))
        }
        return .success(fd)
    }

    /// SO_ERROR: 0 once a non-blocking connect has succeeded.
    static func pendingError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else { return errno }
        return value
    }

    /// Closes with an RST instead of a FIN (SO_LINGER with a zero timeout), so the other end sees
    /// the reset the proxy saw.
    static func closeWithReset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    static func setNoDelay(_ fd: Int32) {
        _ = setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    @discardableResult
    static func setOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32) -> Int32 {
        var value = value
        return setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }
}
