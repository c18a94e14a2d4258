import Capture

/// Durations as Istio's inputs write them: protobuf JSON (`"45s"`, `"0.5s"`, what protojson reads for a
/// `google.protobuf.Duration`) and Go's `time.ParseDuration` form (`1m30s`, `500ms`, what `env.Register`
/// reads for a duration variable). Both are accepted everywhere: `"45s"` means the same in each.
enum DurationSyntax {
    static func parse(_ text: String) -> Duration? {
        parseProtobuf(text) ?? GoSyntax.parseDuration(text)
    }

    /// `-?digits(.digits{1,9})?s`.
    static func parseProtobuf(_ text: String) -> Duration? {
        guard text.hasSuffix("s") else { return nil }
        var body = Substring(text.dropLast())
        var negative = false
        if body.first == "-" {
            negative = true
            body = body.dropFirst()
        }
        let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholeText = parts.first, !wholeText.isEmpty, wholeText.allSatisfy(\.isASCIIDigit),
              let seconds = Int64(wholeText), seconds <= 315_576_000_000 else { return nil }
        var nanoseconds: Int64 = 0
        if parts.count == 2 {
            let fraction = parts[1]
            guard (1...9).contains(fraction.count), fraction.allSatisfy(\.isASCIIDigit) else { return nil }
            nanoseconds = Int64(fraction + String(repeating: "0", count: 9 - fraction.count))!
        }
        let magnitude = Duration.seconds(seconds) + .nanoseconds(nanoseconds)
        return negative ? .zero - magnitude : magnitude
    }

    /// protojson's rendering: whole seconds, or 3, 6 or 9 fraction digits (`"45s"`, `"0.500s"`).
    static func protobufText(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var totalNanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue
            + attoseconds / 1_000_000_000
        let negative = totalNanoseconds < 0
        if negative { totalNanoseconds = -totalNanoseconds }
        let whole = totalNanoseconds / 1_000_000_000
        let nanos = totalNanoseconds % 1_000_000_000
        var text = (negative ? "-" : "") + String(whole)
        if nanos != 0 {
            var digits = String(nanos)
            digits = String(repeating: "0", count: 9 - digits.count) + digits
            if nanos % 1_000_000 == 0 {
                digits = String(digits.prefix(3))
            } else if nanos % 1_000 == 0 {
                digits = String(digits.prefix(6))
            }
            text += "." + digits
        }
        return text + "s"
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
