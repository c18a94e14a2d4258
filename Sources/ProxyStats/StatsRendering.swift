extension StatsStore {
    /// The admin API's renderings, byte for byte as Envoy's:
    /// - `.text` (`/stats`): `name: value` lines, counters and gauges together, sorted by name;
    /// - `.json` (`/stats?format=json`): `{"stats":[{"name":"…","value":N},…]}`, same order;
    /// - `.prometheus` (`/stats/prometheus`): counters, then gauges, each grouped by tag-extracted
    ///   name in name order, `# TYPE envoy_<name> counter|gauge` once per group, then one
    ///   `envoy_<name>{tag="value",…} N` line per stat ordered by its full name. `type=` is ignored,
    ///   as Envoy ignores it there.
    public func render(_ format: StatsFormat, query: StatsQuery) -> String {
        let selected = entries().filter { query.selects(name: $0.name, used: $0.used) }
        switch format {
        case .text:
            return renderText(selected.filter { query.selects($0.value) })
        case .json:
            return renderJSON(selected.filter { query.selects($0.value) })
        case .prometheus:
            return renderPrometheus(selected)
        }
    }
}

func renderText(_ entries: [StatEntry]) -> String {
    var output = ""
    for entry in entries {
        output += entry.name + ": " + entry.value.text + "\n"
    }
    return output
}

func renderJSON(_ entries: [StatEntry]) -> String {
    var output = #"{"stats":["#
    for (index, entry) in entries.enumerated() {
        if index > 0 { output += "," }
        output += #"{"name":""# + jsonEscaped(entry.name) + #"","value":"# + entry.value.text + "}"
    }
    return output + "]}"
}

func renderPrometheus(_ entries: [StatEntry]) -> String {
    var output = ""
    for (kind, isCounter) in [("counter", true), ("gauge", false)] {
        var families: [String: [StatEntry]] = [:]
        for entry in entries where entry.value.isCounter == isCounter {
            families[entry.tagged.extractedName, default: []].append(entry)
        }
        for extractedName in families.keys.sorted(by: precedesInByteOrder) {
            let metricName = "envoy_" + prometheusSanitized(extractedName)
            output += "# TYPE " + metricName + " " + kind + "\n"
            // Within a family Envoy orders stats by their symbolised names: token by token, so
            // `cluster.xds.x` sorts before `cluster.xds-grpc.x`.
            let members = families[extractedName]!.sorted { precedesByTokens($0.name, $1.name) }
            for entry in members {
                let labels = entry.tagged.tags.map { tag in
                    prometheusSanitized(tag.name) + "=\"" + prometheusEscapedLabelValue(tag.value) + "\""
                }
                output += metricName + "{" + labels.joined(separator: ",") + "} " + entry.value.text + "\n"
            }
        }
    }
    return output
}

/// Envoy's `sanitizeName`: every character outside `[a-zA-Z0-9_]` becomes `_` (one per Unicode
/// scalar, as RE2 replaces UTF-8 characters). Metric names need no leading-digit fix: they all
/// start with `envoy_`.
func prometheusSanitized(_ name: String) -> String {
    var output = String.UnicodeScalarView()
    for scalar in name.unicodeScalars {
        let isAllowed = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_")
        output.append(isAllowed ? scalar : "_")
    }
    return String(output)
}

/// Prometheus text-format label escaping (as Envoy's `sanitizeValue`): backslash, newline and
/// double quote.
func prometheusEscapedLabelValue(_ value: String) -> String {
    guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\"") })
    else { return value }
    var output = ""
    for character in value.unicodeScalars {
        switch character {
        case "\\": output += #"\\"#
        case "\n": output += #"\n"#
        case "\"": output += #"\""#
        default: output.unicodeScalars.append(character)
        }
    }
    return output
}

/// JSON string escaping as Envoy's `Json::sanitize` (nlohmann's serializer): `"` and `\`, the short
/// escapes for \b \f \n \r \t, `\u00xx` for other control characters; everything else, including
/// non-ASCII text, as is.
func jsonEscaped(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
    else { return text }
    var output = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": output += #"\""#
        case "\\": output += #"\\"#
        case "\u{08}": output += #"\b"#
        case "\u{0C}": output += #"\f"#
        case "\n": output += #"\n"#
        case "\r": output += #"\r"#
        case "\t": output += #"\t"#
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            output += #"\u"# + String(repeating: "0", count: 4 - hex.count) + hex
        default:
            output.unicodeScalars.append(scalar)
        }
    }
    return output
}

/// Envoy's `SymbolTable::lessThan`: names compared as sequences of `.`-separated tokens, each token
/// as bytes.
func precedesByTokens(_ left: String, _ right: String) -> Bool {
    let leftTokens = left.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    let rightTokens = right.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    for (leftToken, rightToken) in zip(leftTokens, rightTokens) where !leftToken.elementsEqual(rightToken) {
        return leftToken.lexicographicallyPrecedes(rightToken)
    }
    return leftTokens.count < rightTokens.count
}
