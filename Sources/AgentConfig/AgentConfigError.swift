/// Bad input on pilot-agent's command line, in its environment or in a file it reads: one line naming the
/// input (flag, variable, file, annotation) and what would be right. Distinct from runtime failures so the
/// caller can exit 2 for these and 1 for the rest.
public struct AgentConfigError: Error, CustomStringConvertible, Sendable, Hashable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    /// Configuration errors exit 2, as sluice-init's do; runtime failures exit 1.
    public var exitCode: Int32 { 2 }

    public var description: String { message }
}

/// Quotes a value for a message the way Go's `%q` does for printable text, so messages read like Istio's.
func goQuoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\r": result += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f {
                result += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}
