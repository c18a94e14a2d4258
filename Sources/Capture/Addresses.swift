/// Address families a rule can be specific to. Sluice's tables are `inet`, so one table serves both.
public enum IPFamily: String, Sendable, Hashable, CaseIterable {
    case ipv4
    case ipv6

    /// Address length in bytes.
    public var addressLength: Int { self == .ipv4 ? 4 : 16 }
    /// The keyword nft uses for this family's header (`ip daddr`, `ip6 daddr`).
    public var nftKeyword: String { self == .ipv4 ? "ip" : "ip6" }
}

/// An IPv4 or IPv6 address as network-order bytes.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    public let bytes: [UInt8]

    public init(family: IPFamily, bytes: [UInt8]) {
        precondition(bytes.count == family.addressLength, "address length does not match family")
        self.family = family
        self.bytes = bytes
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (no zones, no brackets), as Go's `netip.ParseAddr`
    /// does for the inputs Istio accepts.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let bytes = IPAddress.parseIPv6(text) else { return nil }
            self.init(family: .ipv6, bytes: bytes)
        } else {
            guard let bytes = IPAddress.parseIPv4(text) else { return nil }
            self.init(family: .ipv4, bytes: bytes)
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .ipv4 }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    public var isLoopback: Bool {
        switch family {
        case .ipv4: return bytes[0] == 127
        case .ipv6: return bytes == IPAddress.ipv6Loopback.bytes
        }
    }

    /// Link-local unicast (169.254/16, fe80::/10), which Istio skips when it detects the pod's address.
    public var isLinkLocal: Bool {
        switch family {
        case .ipv4: return bytes[0] == 169 && bytes[1] == 254
        case .ipv6: return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80
        }
    }

    public static let ipv6Loopback = IPAddress(family: .ipv6, bytes: Array(repeating: 0, count: 15) + [1])

    public var description: String {
        switch family {
        case .ipv4: return bytes.map(String.init).joined(separator: ".")
        case .ipv6: return IPAddress.formatIPv6(bytes)
        }
    }

    private static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            // Go rejects leading zeros ("010") because they are ambiguous (octal in some parsers).
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                  part.count == 1 || part.first != "0",
                  let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        // An embedded IPv4 tail ("::ffff:1.2.3.4", "::127.0.0.53").
        var tail: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseIPv4(String(text[text.index(after: lastColon)...])) else { return nil }
            tail = v4
            text = text[...lastColon]
            if text.hasSuffix("::") == false { text = text.dropLast() }
        }
        let halves = IPAddress.splitOnDoubleColon(String(text))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        let rest: [UInt16]
        if halves.count == 2 {
            guard let back = groups(halves[1]) else { return nil }
            rest = back
        } else {
            rest = []
        }
        let available = 8 - tail.count / 2
        var words: [UInt16]
        if halves.count == 2 {
            let missing = available - head.count - rest.count
            guard missing >= 1 else { return nil }
            words = head + Array(repeating: 0, count: missing) + rest
        } else {
            guard head.count == available else { return nil }
            words = head
        }
        var bytes: [UInt8] = []
        for word in words { bytes += [UInt8(word >> 8), UInt8(word & 0xff)] }
        return bytes + tail
    }

    /// Splits on every "::" (Foundation-free; more than one means the text is invalid).
    private static func splitOnDoubleColon(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var previousWasColon = false
        for character in text {
            if character == ":" && previousWasColon {
                current.removeLast()
                parts.append(current)
                current = ""
                previousWasColon = false
                continue
            }
            current.append(character)
            previousWasColon = character == ":"
        }
        parts.append(current)
        return parts
    }

    /// RFC 5952 text, with the dotted IPv4 tail that Go (and nft) print for `::a.b.c.d` forms.
    private static func formatIPv6(_ bytes: [UInt8]) -> String {
        let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        // Longest run of zero words (length >= 2) becomes "::".
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8 && words[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        func hex(_ range: Range<Int>) -> String { words[range].map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

/// A prefix such as `10.0.0.0/8`. The address is kept as given (Go's `netip.Prefix.String()` keeps host
/// bits); `network` is the masked form the kernel compares against.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init(address: IPAddress, prefixLength: Int) {
        precondition(prefixLength >= 0 && prefixLength <= address.family.addressLength * 8)
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `addr/len` the way Go's `netip.ParsePrefix` does: the `/len` is required.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
              !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit),
              parts[1].count == 1 || parts[1].first != "0",
              let length = Int(parts[1]), length <= address.family.addressLength * 8 else { return nil }
        self.init(address: address, prefixLength: length)
    }

    public var family: IPFamily { address.family }

    /// Network-order mask bytes for this prefix length.
    public var mask: [UInt8] {
        (0..<family.addressLength).map { index in
            let bits = max(0, min(8, prefixLength - index * 8))
            return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
    }

    public var network: IPAddress {
        IPAddress(family: family, bytes: zip(address.bytes, mask).map { $0 & $1 })
    }

    /// The last address covered by the prefix.
    public var last: IPAddress {
        IPAddress(family: family, bytes: zip(address.bytes, mask).map { $0 | ~$1 })
    }

    public var isFullLength: Bool { prefixLength == family.addressLength * 8 }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && zip(other.bytes, mask).map { $0 & $1 } == network.bytes
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// An inclusive range of addresses of one family: the element of an nft interval set.
public struct AddressRange: Sendable, Hashable {
    public let first: IPAddress
    public let last: IPAddress

    public init(first: IPAddress, last: IPAddress) {
        precondition(first.family == last.family && first <= last)
        self.first = first
        self.last = last
    }

    /// Sorts the prefixes and merges overlapping or adjacent ones: the kernel refuses overlapping
    /// intervals in a set, and users' exclude lists often overlap (`10.0.0.0/8,10.1.0.0/16`).
    public static func merging(_ prefixes: [CIDR]) -> [AddressRange] {
        let sorted = prefixes.map { AddressRange(first: $0.network, last: $0.last) }
            .sorted { $0.first < $1.first }
        var merged: [AddressRange] = []
        for range in sorted {
            if let previous = merged.last, range.first.family == previous.last.family,
               range.first <= previous.last || range.first.bytes == previous.last.successorBytes {
                merged[merged.count - 1] = AddressRange(first: previous.first, last: max(previous.last, range.last))
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// The one prefix that is exactly this range, if there is one: a range of 10,000 set elements is
    /// rendered on every run (the fingerprint hashes the text), so this is a constant-time check.
    public var singlePrefix: CIDR? {
        var length = 0
        for (a, b) in zip(first.bytes, last.bytes) {
            let differing = a ^ b
            if differing == 0 { length += 8; continue }
            length += differing.leadingZeroBitCount
            break
        }
        let candidate = CIDR(address: first, prefixLength: length)
        return candidate.network == first && candidate.last == last ? candidate : nil
    }

    /// The prefixes that exactly cover this range.
    public var prefixes: [CIDR] {
        var result: [CIDR] = []
        var start = first.bytes
        let end = last.bytes
        let bits = first.family.addressLength * 8
        while true {
            // Largest prefix starting at `start` that stays within `end`.
            var length = bits
            while length > 0 {
                let candidate = CIDR(address: IPAddress(family: first.family, bytes: start), prefixLength: length - 1)
                if candidate.network.bytes != start || candidate.last.bytes.lexicographicallyPrecedes(end) == false
                    && candidate.last.bytes != end { break }
                length -= 1
            }
            let prefix = CIDR(address: IPAddress(family: first.family, bytes: start), prefixLength: length)
            result.append(prefix)
            if prefix.last.bytes == end { return result }
            guard let next = prefix.last.successorBytes else { return result }
            start = next
        }
    }
}

extension IPAddress {
    /// The next address, or nil after the family's last address.
    public var successorBytes: [UInt8]? {
        var result = bytes
        for index in result.indices.reversed() {
            if result[index] == 0xff { result[index] = 0 } else { result[index] += 1; return result }
        }
        return nil
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
