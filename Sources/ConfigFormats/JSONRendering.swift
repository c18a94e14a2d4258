extension JSONValue {
    /// The value as JSON text. Pretty output indents by two spaces and ends with a newline; compact
    /// output has no whitespace at all (for command-line arguments such as Envoy's `--config-yaml`).
    public func renderedJSON(pretty: Bool = true) -> String {
        var output = ""
        render(into: &output, indent: pretty ? 0 : nil)
        if pretty { output += "\n" }
        return output
    }

    private func render(into output: inout String, indent: Int?) {
        switch self {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .integer(let number): output += String(number)
        case .double(let number): output += Self.render(number)
        case .string(let text): Self.renderString(text, into: &output)
        case .array(let elements):
            guard !elements.isEmpty else { output += "[]"; return }
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                Self.newline(&output, indent.map { $0 + 1 })
                element.render(into: &output, indent: indent.map { $0 + 1 })
            }
            Self.newline(&output, indent)
            output += "]"
        case .object(let object):
            guard !object.isEmpty else { output += "{}"; return }
            output += "{"
            var first = true
            for (key, value) in object {
                if !first { output += "," }
                first = false
                Self.newline(&output, indent.map { $0 + 1 })
                Self.renderString(key, into: &output)
                output += indent == nil ? ":" : ": "
                value.render(into: &output, indent: indent.map { $0 + 1 })
            }
            Self.newline(&output, indent)
            output += "}"
        }
    }

    private static func newline(_ output: inout String, _ indent: Int?) {
        guard let indent else { return }
        output += "\n" + String(repeating: "  ", count: indent)
    }

    /// Integral doubles keep a ".0" so they read back as doubles; non-finite values have no JSON
    /// spelling and become null, as JavaScript's JSON.stringify does.
    private static func render(_ number: Double) -> String {
        guard number.isFinite else { return "null" }
        return "\(number)"
    }

    private static func renderString(_ text: String, into output: inout String) {
        output += "\""
        appendEscaped(text, to: &output)
        output += "\""
    }

    /// `text` as the inside of a JSON string (RFC 8259 escapes; control characters as `\u00XX`).
    public static func escapedStringContents(_ text: String) -> String {
        var output = ""
        appendEscaped(text, to: &output)
        return output
    }

    private static func appendEscaped(_ text: String, to output: inout String) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
    }
}
