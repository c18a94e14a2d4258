#if canImport(Glibc)
import Glibc
#endif

/// CA_ADDR taken apart: the host (brackets removed for IPv6) and the port. Istio dials it with
/// grpc-go, which wants "host:port"; a missing port or an unbracketed IPv6 address is refused here
/// rather than failing later on every call.
struct CAAddress: Sendable, Hashable, CustomStringConvertible {
    enum HostKind: Sendable, Hashable {
        case ipv4
        case ipv6
        case dnsName
    }

    var host: String
    var port: Int
    var kind: HostKind

    /// Istio's plaintext debug port on istiod (`:15010` in CA_ADDR turns TLS off in pilot-agent).
    static let plaintextDebugPort = 15010

    var description: String { kind == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func parse(_ text: String) throws(IstioCAError) -> CAAddress {
        func refuse(_ why: String) -> IstioCAError {
            IstioCAError("CA_ADDR \"\(text)\": \(why); expected host:port, e.g. istiod.istio-system.svc:15012 or [fd00::1]:15012",
                         isRetryable: false)
        }
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw refuse("the IPv6 address has no closing ]") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw refuse("no :port after the IPv6 address") }
            portText = rest.dropFirst()
            guard isIPv6Literal(host) else { throw refuse("\"\(host)\" is not an IPv6 address") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw refuse("no port") }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw refuse("an IPv6 address must be in brackets") }
        }
        guard !host.isEmpty else { throw refuse("no host") }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
              let port = Int(portText), (1...65535).contains(port)
        else { throw refuse("the port \"\(portText)\" is not a number in 1...65535") }

        let kind: HostKind
        if text.hasPrefix("[") {
            kind = .ipv6
        } else if isIPv4Literal(host) {
            kind = .ipv4
        } else if isDNSName(host) {
            kind = .dnsName
        } else {
            throw refuse("\"\(host)\" is neither an IP address nor a DNS name")
        }
        return CAAddress(host: host, port: port, kind: kind)
    }

    static func isIPv4Literal(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    static func isIPv6Literal(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    static func isIPLiteral(_ text: String) -> Bool { isIPv4Literal(text) || isIPv6Literal(text) }

    /// Letters, digits, '-' and '_' in dot-separated labels of at most 63 bytes (a trailing dot allowed).
    static func isDNSName(_ text: String) -> Bool {
        var name = Substring(text)
        if name.hasSuffix(".") { name = name.dropLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }
}
