import Capture
/// The pod's labels and annotations as the Kubernetes downward API writes them into
/// `./etc/istio/pod/{labels,annotations}`: one `key="value"` per line, the value quoted with Go's `%q`.
public struct DownwardAPIFile: Sendable, Equatable {
    /// Entries in file order; a repeated key keeps its last value in its first position.
    public private(set) var entries: [(key: String, value: String)]

    public init(entries: [(key: String, value: String)] = []) {
        self.entries = []
        for entry in entries { self[entry.key] = entry.value }
    }

    public subscript(key: String) -> String? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public var dictionary: [String: String] {
        Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// Istio's `ParseDownwardAPI`: lines without `=` are skipped; a value that is not a Go string literal is
    /// an error naming the line.
    public static func parse(_ text: String, fileName: String) throws(AgentConfigError) -> DownwardAPIFile {
        var file = DownwardAPIFile()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            let quotedValue = String(line[line.index(after: equals)...])
            guard let value = GoStringLiteral.unquote(quotedValue) else {
                throw AgentConfigError(
                    "\(fileName) line \(number + 1): the value of \(goQuoted(key)) is not a Go-quoted string: \(quotedValue);"
                        + " the downward API writes key=\"value\"")
            }
            file[key] = value
        }
        return file
    }

    public static func == (lhs: DownwardAPIFile, rhs: DownwardAPIFile) -> Bool {
        lhs.entries.map(\.key) == rhs.entries.map(\.key) && lhs.entries.map(\.value) == rhs.entries.map(\.value)
    }
}

/// Go's `strconv.Unquote` for the literal forms `%q` produces: double-quoted with escapes, and raw
/// back-quoted strings.
enum GoStringLiteral {
    static func unquote(_ literal: String) -> String? {
        let bytes = Array(literal.utf8)
        guard bytes.count >= 2, let quote = bytes.first, bytes.last == quote else { return nil }
        let body = bytes[1..<(bytes.count - 1)]
        switch quote {
        case UInt8(ascii: "`"):
            guard !body.contains(UInt8(ascii: "`")) else { return nil }
            // Go drops carriage returns from raw strings.
            return String(decoding: body.filter { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        case UInt8(ascii: "\""):
            return unescape(body)
        default:
            return nil
        }
    }

    private static func unescape(_ body: ArraySlice<UInt8>) -> String? {
        var output: [UInt8] = []
        output.reserveCapacity(body.count)
        var index = body.startIndex
        func hexValue(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
            default: nil
            }
        }
        func readHex(count: Int) -> UInt32? {
            guard body.endIndex - index >= count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<count {
                guard let digit = hexValue(body[index]) else { return nil }
                value = value * 16 + digit
                index += 1
            }
            return value
        }
        while index < body.endIndex {
            let byte = body[index]
            index += 1
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\n") { return nil }
            guard byte == UInt8(ascii: "\\") else {
                output.append(byte)
                continue
            }
            guard index < body.endIndex else { return nil }
            let escape = body[index]
            index += 1
            switch escape {
            case UInt8(ascii: "a"): output.append(0x07)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "v"): output.append(0x0B)
            case UInt8(ascii: "\\"): output.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\""): output.append(UInt8(ascii: "\""))
            case UInt8(ascii: "x"):
                guard let value = readHex(count: 2) else { return nil }
                output.append(UInt8(value))
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = UInt32(escape - UInt8(ascii: "0"))
                for _ in 0..<2 {
                    guard index < body.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(body[index]) else { return nil }
                    value = value * 8 + UInt32(body[index] - UInt8(ascii: "0"))
                    index += 1
                }
                guard value <= 255 else { return nil }
                output.append(UInt8(value))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                guard let value = readHex(count: escape == UInt8(ascii: "u") ? 4 : 8),
                      let scalar = Unicode.Scalar(value) else { return nil }
                output.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                return nil
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
