/// An IP address and a port: `192.0.2.1:80`, `[2001:db8:2::1]:80`. A pure value, here so that the lab's
/// probes and sluice-init's validation probe name and print socket addresses the same way; the
/// `sockaddr` side lives in Netfilter (`SocketAddress.swift`).
public struct Endpoint: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `a.b.c.d:port` or `[v6]:port`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        guard let address = IPAddress(String(host)) else { return nil }
        self.init(address, port)
    }

    /// For literals in tests and the demo; a malformed literal is a programming error.
    public init(stringLiteral text: String) {
        guard let endpoint = Endpoint(text) else { preconditionFailure("not an endpoint: \(text)") }
        self = endpoint
    }

    public var description: String {
        address.family == .ipv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}
