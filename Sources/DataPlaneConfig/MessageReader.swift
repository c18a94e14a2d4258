import ConfigFormats

/// A place in the bootstrap as errors name it: `static_resources.clusters[2].type`.
struct JSONPath: Sendable, CustomStringConvertible {
    private(set) var text: String

    static let root = JSONPath(text: "")

    func field(_ name: String) -> JSONPath {
        JSONPath(text: text.isEmpty ? name : "\(text).\(name)")
    }

    func index(_ position: Int) -> JSONPath {
        JSONPath(text: "\(text)[\(position)]")
    }

    var description: String { text.isEmpty ? "the bootstrap" : text }
}

/// One protobuf message of the bootstrap, read field by field. Every field a parser asks for is
/// "known"; when the parser is done, `finish` looks at the fields nobody read: those in
/// `IgnoredFields` are accepted (with a warning when the user would expect an effect), and any
/// other is refused, because it may be an Envoy field that changes behaviour.
///
/// Field names are matched as protobuf's JSON reader matches them: `port_value` or `portValue`.
/// JSON null is an unset field, as in protobuf JSON.
struct MessageReader {
    let message: String
    let path: JSONPath
    private let fields: [String: (key: String, value: JSONValue)]
    private let order: [String]
    private var known: [String] = []
    private var refused: Set<String> = []
    private var consumed: Set<String> = []

    init(_ value: JSONValue, message: String, path: JSONPath) throws(ConfigError) {
        guard case .object(let object) = value else {
            throw ConfigError("\(path): expected an object (\(message)), found \(value.kindDescription)")
        }
        self.message = message
        self.path = path
        var fields: [String: (key: String, value: JSONValue)] = [:]
        var order: [String] = []
        for (key, value) in object {
            let name = MessageReader.protoFieldName(key)
            if let other = fields[name] {
                throw ConfigError("\(path.field(key)): the same field is also given as '\(other.key)'; keep one")
            }
            fields[name] = (key, value)
            order.append(name)
        }
        self.fields = fields
        self.order = order
    }

    /// protobuf JSON's lowerCamelCase spelling back to the field name: `portValue` → `port_value`.
    static func protoFieldName(_ key: String) -> String {
        guard key.contains(where: \.isUppercase), !key.hasPrefix("@") else { return key }
        var name = ""
        for character in key {
            if character.isASCII, character.isUppercase {
                name += "_" + character.lowercased()
            } else {
                name.append(character)
            }
        }
        return name
    }

    // MARK: - Presence

    /// The field's value, marked as read; nil when absent or null.
    mutating func value(_ name: String) -> JSONValue? {
        if !known.contains(name) { known.append(name) }
        guard let field = fields[name] else { return nil }
        consumed.insert(name)
        if case .null = field.value { return nil }
        return field.value
    }

    func has(_ name: String) -> Bool {
        if let field = fields[name], field.value != .null { return true }
        return false
    }

    /// The path of a field, spelled as the document spells it.
    func path(of name: String) -> JSONPath {
        path.field(fields[name]?.key ?? name)
    }

    /// Reads a field without using it: for fields accepted with no effect whose value does not matter.
    mutating func skip(_ name: String) {
        _ = value(name)
    }

    // MARK: - Scalars

    mutating func string(_ name: String) throws(ConfigError) -> String? {
        guard let value = value(name) else { return nil }
        guard case .string(let text) = value else {
            throw ConfigError("\(path(of: name)): expected a string, found \(value.kindDescription)")
        }
        return text
    }

    mutating func requiredString(_ name: String, why: String) throws(ConfigError) -> String {
        guard let text = try string(name), !text.isEmpty else {
            throw ConfigError("\(path(of: name)): required (\(why))")
        }
        return text
    }

    mutating func bool(_ name: String) throws(ConfigError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard case .bool(let flag) = value else {
            throw ConfigError("\(path(of: name)): expected true or false, found \(value.kindDescription)")
        }
        return flag
    }

    /// An integer field; protobuf JSON also writes 64-bit integers as strings ("15000").
    mutating func integer(_ name: String, in range: ClosedRange<Int64>) throws(ConfigError) -> Int64? {
        guard let value = value(name) else { return nil }
        let number: Int64?
        switch value {
        case .string(let text): number = Int64(text)
        default: number = value.intValue
        }
        guard let number, range.contains(number) else {
            let shown = value.stringValue.map { "'\($0)'" } ?? value.renderedJSON(pretty: false)
            throw ConfigError(
                "\(path(of: name)): \(shown) is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    mutating func uint32(_ name: String) throws(ConfigError) -> UInt32? {
        try integer(name, in: 0...Int64(UInt32.max)).map { UInt32($0) }
    }

    /// A protobuf enum: its name, or its number (protobuf JSON accepts both). `values` lists the names
    /// in number order; a nil entry is a number the enum does not use.
    mutating func enumeration(_ name: String, values: [String?]) throws(ConfigError) -> String? {
        guard let value = value(name) else { return nil }
        let accepted = values.compactMap { $0 }.joined(separator: ", ")
        switch value {
        case .string(let text) where values.contains(text):
            return text
        case .integer(let number) where number >= 0 && number < values.count && values[Int(number)] != nil:
            return values[Int(number)]
        default:
            let shown = value.stringValue ?? value.renderedJSON(pretty: false)
            throw ConfigError("\(path(of: name)): unknown value '\(shown)'; Envoy accepts \(accepted)")
        }
    }

    /// A `google.protobuf.Duration` in its JSON form: "10s", "0.250s", "1.5s".
    mutating func duration(_ name: String) throws(ConfigError) -> Duration? {
        guard let value = value(name) else { return nil }
        guard case .string(let text) = value, let duration = MessageReader.parseDuration(text) else {
            let shown = value.stringValue.map { "'\($0)'" } ?? value.renderedJSON(pretty: false)
            throw ConfigError(
                "\(path(of: name)): \(shown) is not a duration; write seconds with an 's', e.g. \"10s\" or \"0.250s\"")
        }
        return duration
    }

    /// Seconds with up to nine fractional digits and an `s`; negative durations mean nothing here.
    static func parseDuration(_ text: String) -> Duration? {
        guard text.hasSuffix("s") else { return nil }
        let number = text.dropLast()
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isPlainDigit),
              let seconds = Int64(whole), seconds <= 315_576_000_000 else { return nil }
        var nanoseconds: Int64 = 0
        if parts.count == 2 {
            let fraction = parts[1]
            guard !fraction.isEmpty, fraction.count <= 9, fraction.allSatisfy(\.isPlainDigit) else { return nil }
            nanoseconds = Int64(fraction + String(repeating: "0", count: 9 - fraction.count))!
        }
        return .seconds(seconds) + .nanoseconds(nanoseconds)
    }

    // MARK: - Messages and lists

    mutating func message(_ name: String, type: String) throws(ConfigError) -> MessageReader? {
        guard let value = value(name) else { return nil }
        return try MessageReader(value, message: type, path: path(of: name))
    }

    /// A repeated field's elements with their paths; empty when absent.
    mutating func list(_ name: String) throws(ConfigError) -> [(value: JSONValue, path: JSONPath)] {
        guard let value = value(name) else { return [] }
        guard case .array(let elements) = value else {
            throw ConfigError("\(path(of: name)): expected a list, found \(value.kindDescription)")
        }
        let listPath = path(of: name)
        return elements.enumerated().map { ($0.element, listPath.index($0.offset)) }
    }

    mutating func messages(_ name: String, type: String) throws(ConfigError) -> [MessageReader] {
        var readers: [MessageReader] = []
        for element in try list(name) {
            readers.append(try MessageReader(element.value, message: type, path: element.path))
        }
        return readers
    }

    /// A list of strings.
    mutating func strings(_ name: String) throws(ConfigError) -> [String] {
        var texts: [String] = []
        for element in try list(name) {
            guard case .string(let text) = element.value else {
                throw ConfigError("\(element.path): expected a string, found \(element.value.kindDescription)")
            }
            texts.append(text)
        }
        return texts
    }

    /// Refuses a field that is set, with the reason; for fields Envoy honours that sluice-proxy does not.
    /// An empty list or object asks for nothing and is let through.
    mutating func refuse(_ name: String, _ reason: String) throws(ConfigError) {
        refused.insert(name)
        switch value(name) {
        case nil: return
        case .array(let elements) where elements.isEmpty: return
        case .object(let object) where object.isEmpty: return
        default: throw ConfigError("\(path(of: name)): \(reason)")
        }
    }

    // MARK: - The rest

    /// Accepts the unread fields listed in `IgnoredFields` and refuses any other.
    func finish(warnings: inout [String]) throws(ConfigError) {
        for name in order where !consumed.contains(name) {
            let fieldPath = path(of: name)
            if let ignored = IgnoredFields.entry(message: message, field: name) {
                if ignored.warns, fields[name]?.value != .null {
                    warnings.append("\(fieldPath): accepted and ignored: \(ignored.reason)")
                }
                continue
            }
            if fields[name]?.value == .null { continue }
            let readable = known.filter { !refused.contains($0) }
            let list = readable.isEmpty ? "" : "; the \(message) fields it reads are \(readable.joined(separator: ", "))"
            throw ConfigError("\(fieldPath): not supported by sluice-proxy\(list)")
        }
    }
}

extension Character {
    /// 0-9 only: Envoy's numbers are ASCII (Character.isNumber would take other scripts' digits).
    var isPlainDigit: Bool { ("0"..."9").contains(self) }
}
