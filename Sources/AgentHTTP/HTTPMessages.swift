import Capture
/// Header fields in the order they were written, looked up without regard to case (RFC 9110 §5.1).
public struct HTTPFields: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    private var fields: [Field]

    public init() {
        fields = []
    }

    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    public var isEmpty: Bool { fields.isEmpty }
    public var count: Int { fields.count }

    public func makeIterator() -> IndexingIterator<[Field]> {
        fields.makeIterator()
    }

    /// The first value of `name`, or nil. Setting replaces every field of that name with one (nil removes them).
    public subscript(name: String) -> String? {
        get { fields.first { $0.name.caseInsensitiveEquals(name) }?.value }
        set {
            if let index = fields.firstIndex(where: { $0.name.caseInsensitiveEquals(name) }), let newValue {
                fields[index].value = newValue
                var seen = false
                fields.removeAll { field in
                    guard field.name.caseInsensitiveEquals(name) else { return false }
                    defer { seen = true }
                    return seen
                }
            } else {
                remove(name)
                if let newValue { fields.append(Field(name: name, value: newValue)) }
            }
        }
    }

    public func values(for name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool {
        fields.contains { $0.name.caseInsensitiveEquals(name) }
    }

    public mutating func append(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.caseInsensitiveEquals(name) }
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let lhs = self.utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).allSatisfy { asciiLowercased($0) == asciiLowercased($1) }
    }
}

private func asciiLowercased(_ byte: UInt8) -> UInt8 {
    (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
}

/// One request as the server received it. Every field is settable so tests can build requests
/// directly (a request "from" another host is just a request with a different `remoteAddress`).
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent: path plus optional `?query`.
    public var target: String
    public var headers: HTTPFields
    public var body: [UInt8]
    /// The peer's IP address (no port), or nil when the connection had none (e.g. a Unix socket).
    public var remoteAddress: String?
    public var remotePort: Int?

    public init(
        method: String = "GET",
        target: String,
        headers: HTTPFields = [:],
        body: [UInt8] = [],
        remoteAddress: String? = "127.0.0.1",
        remotePort: Int? = nil
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
    }

    /// The target up to (not including) `?`.
    public var path: String {
        if let mark = target.firstIndex(of: "?") { return String(target[..<mark]) }
        return target
    }

    /// Everything after the first `?`, or nil when there is none.
    public var query: String? {
        guard let mark = target.firstIndex(of: "?") else { return nil }
        return String(target[target.index(after: mark)...])
    }

    /// Istio's `IsRequestFromLocalhost`: the peer's address is a loopback address.
    public var isFromLoopback: Bool {
        guard let remoteAddress else { return false }
        return IPAddressText.isLoopback(remoteAddress)
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPFields
    public var body: [UInt8]

    public init(status: Int, headers: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain` response.
    public static func text(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Small textual helpers for IP addresses as sockets and URLs spell them; parsing is Capture's `IPAddress`.
public enum IPAddressText {
    /// True for 127.0.0.0/8, ::1 and IPv4-mapped 127/8 (`::ffff:127.x.y.z`), bracketed or with a zone.
    public static func isLoopback(_ address: String) -> Bool {
        guard let parsed = IPAddress(unbracketed(address)) else { return false }
        if parsed.family == .ipv6, parsed.bytes[..<10].allSatisfy({ $0 == 0 }), parsed.bytes[10] == 0xff, parsed.bytes[11] == 0xff {
            return parsed.bytes[12] == 127
        }
        return parsed.isLoopback
    }

    public static func isIPv6(_ address: String) -> Bool {
        unbracketed(address).contains(":")
    }

    public static func isIPLiteral(_ address: String) -> Bool {
        IPAddress(address) != nil
    }

    /// `host:port`, bracketing IPv6 literals (`[::1]:15020`).
    public static func hostPort(_ host: String, _ port: Int) -> String {
        if host.contains(":"), !host.hasPrefix("[") { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }

    private static func unbracketed(_ address: String) -> String {
        var text = Substring(address)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        return String(text)
    }
}
