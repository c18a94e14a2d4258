/// A domain name as labels of raw bytes (case preserved, RFC 4343). At most 63 bytes per label,
/// 255 bytes in wire form (labels + length bytes + the root's 0).
///
/// Stored as its uncompressed wire form in one array rather than one array per label: decoding a
/// name then costs one allocation, and encoding copies bytes. `labels` is computed from it.
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    /// Uncompressed wire form: each label preceded by its length, then the root's 0. Always valid
    /// (every initialiser checks or builds it).
    let wire: [UInt8]

    public static let root = DNSName(validatedWire: [0])

    init(validatedWire: [UInt8]) {
        wire = validatedWire
    }

    /// Root = [].
    public var labels: [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(labelCount)
        var index = 0
        while wire[index] != 0 {
            let length = Int(wire[index])
            result.append(Array(wire[(index + 1)..<(index + 1 + length)]))
            index += length + 1
        }
        return result
    }

    public var labelCount: Int {
        var count = 0
        var index = 0
        while wire[index] != 0 {
            count += 1
            index += Int(wire[index]) + 1
        }
        return count
    }

    /// The name in uncompressed wire form (length-prefixed labels, then 0).
    public var wireForm: [UInt8] { wire }

    public var isRoot: Bool { wire.count == 1 }

    public init(labels: [[UInt8]]) throws(DNSWireError) {
        var length = 1
        for (index, label) in labels.enumerated() {
            if label.isEmpty { throw .emptyLabel(index: index) }
            if label.count > 63 { throw .labelTooLong(index: index, length: label.count) }
            length += label.count + 1
        }
        if length > 255 { throw .nameTooLong(part: nil, offset: nil, length: length) }
        var wire: [UInt8] = []
        wire.reserveCapacity(length)
        for label in labels {
            wire.append(UInt8(label.count))
            wire.append(contentsOf: label)
        }
        wire.append(0)
        self.wire = wire
    }

    /// Parses presentation form ("a.b", "a.b.", ".", escapes allowed); nil when a label is empty
    /// (except the lone root "."), longer than 63 bytes, or the name is longer than 255 bytes.
    /// Escapes (RFC 1035 §5.1): `\DDD` is the byte with that decimal value (exactly three digits,
    /// at most 255), `\X` is X itself. Characters outside ASCII stand for their UTF-8 bytes.
    public init?(_ text: String) {
        let dot = UInt8(ascii: "."), backslash = UInt8(ascii: "\\")
        let bytes = Array(text.utf8)
        if bytes == [dot] {
            self = .root
            return
        }
        var wire: [UInt8] = [0]
        wire.reserveCapacity(bytes.count + 2)
        var labelStart = 0
        var labelLength = 0
        var index = 0
        while index < bytes.count {
            var byte = bytes[index]
            index += 1
            if byte == dot {
                if labelLength == 0 { return nil }
                wire[labelStart] = UInt8(labelLength)
                labelStart = wire.count
                wire.append(0)
                labelLength = 0
                continue
            }
            if byte == backslash {
                guard index < bytes.count else { return nil }
                byte = bytes[index]
                index += 1
                if let hundreds = decimalDigit(byte) {
                    guard index + 1 < bytes.count, let tens = decimalDigit(bytes[index]),
                        let units = decimalDigit(bytes[index + 1])
                    else { return nil }
                    index += 2
                    let value = hundreds * 100 + tens * 10 + units
                    guard value <= 255 else { return nil }
                    byte = UInt8(value)
                }
            }
            if labelLength == 63 { return nil }
            wire.append(byte)
            labelLength += 1
            // The final 0 is still to come, so 255 bytes of labels is already too long.
            if wire.count >= 255 { return nil }
        }
        if labelLength > 0 {
            wire[labelStart] = UInt8(labelLength)
            wire.append(0)
        } else if wire.count == 1 {
            return nil  // the empty string
        }
        self.wire = wire
    }

    /// Presentation form, "." for the root, else every label followed by "." ("www.example.com.");
    /// bytes outside 0x21...0x7E and the characters . \ are escaped as \DDD / \. / \\ (RFC 4343/1035).
    public var description: String { presentation(lowercased: false) }

    /// The lookup key: `description` with ASCII A-Z lowered. Two names equal ignoring ASCII case
    /// have the same key.
    public var lowercasedKey: String { presentation(lowercased: true) }

    private func presentation(lowercased: Bool) -> String {
        if wire.count == 1 { return "." }
        let dot = UInt8(ascii: "."), backslash = UInt8(ascii: "\\"), zero = UInt8(ascii: "0")
        var text: [UInt8] = []
        text.reserveCapacity(wire.count + 8)
        var index = 0
        while wire[index] != 0 {
            let end = index + 1 + Int(wire[index])
            for position in (index + 1)..<end {
                var byte = wire[position]
                if byte == dot || byte == backslash {
                    text.append(backslash)
                    text.append(byte)
                } else if byte >= 0x21 && byte <= 0x7E {
                    if lowercased && byte >= 0x41 && byte <= 0x5A { byte += 0x20 }
                    text.append(byte)
                } else {
                    text.append(backslash)
                    text.append(zero + byte / 100)
                    text.append(zero + byte / 10 % 10)
                    text.append(zero + byte % 10)
                }
            }
            text.append(dot)
            index = end
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// True when the two names are equal ignoring ASCII case (RFC 4343).
    public func equalsIgnoringCase(_ other: DNSName) -> Bool {
        guard wire.count == other.wire.count else { return false }
        for index in wire.indices where asciiLowercased(wire[index]) != asciiLowercased(other.wire[index]) {
            return false
        }
        return true
    }
}

@inline(__always)
func asciiLowercased(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
}

private func decimalDigit(_ byte: UInt8) -> Int? {
    byte >= 0x30 && byte <= 0x39 ? Int(byte - 0x30) : nil
}
