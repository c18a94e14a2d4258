/// A regular expression from Envoy configuration or an admin query, compiled once with Swift Regex.
///
/// Envoy compiles `safe_regex`, its built-in tag extractors and the admin `filter=` with RE2, and
/// `stats_tags` regexes with std::regex (ECMAScript). Swift Regex is a backtracking engine with the
/// same leftmost-first results for the patterns Envoy and Istio write; the spelling differences are
/// rewritten by `swiftRegexSyntax(_:)`, and the matching options below give RE2's byte-oriented,
/// ASCII-class semantics instead of Swift's grapheme-cluster default.
struct EnvoyRegex: @unchecked Sendable {
    // @unchecked: Regex is not declared Sendable, but it is an immutable value whose lazily
    // compiled program is published with an atomic initialisation, so concurrent matching is safe
    // (swift-experimental-string-processing #457/#485 kept the atomic initialisation when the
    // Sendable annotation was backed out).
    let pattern: String
    private let regex: Regex<AnyRegexOutput>

    /// - Parameter role: what the pattern is, for the error: "stats_matcher safe_regex", ….
    init(_ pattern: String, role: String) throws(StatsError) {
        do {
            regex = try Regex(swiftRegexSyntax(pattern))
                .matchingSemantics(.unicodeScalar)
                .asciiOnlyWordCharacters()
                .asciiOnlyDigits()
                .asciiOnlyWhitespace()
        } catch {
            throw StatsError("the \(role) '\(pattern)' is not a valid regular expression: \(error); "
                + "write it in RE2 syntax, as Envoy does")
        }
        self.pattern = pattern
    }

    /// RE2's PartialMatch / std::regex_search: the first match anywhere in the text.
    func firstMatch(in text: String) -> Regex<AnyRegexOutput>.Match? {
        (try? regex.firstMatch(in: text)) ?? nil
    }

    /// RE2's FullMatch, which Envoy's `safe_regex` string matcher uses.
    func matchesWhole(_ text: String) -> Bool {
        ((try? regex.wholeMatch(in: text)) ?? nil) != nil
    }
}

/// Rewrites an Envoy regex into Swift Regex syntax where the two read the same characters
/// differently. Everything else passes through unchanged, and Swift Regex reports what it cannot
/// compile. The differences, all literal characters in RE2 and ECMAScript:
/// - inside a bracket expression Swift reads `[` as a nested class, `&&` and `~~` as set
///   operators, `--` as set subtraction, and a `-` beside a class escape (`[\w-\.]`, in Envoy's
///   own `rds_route_config` tag) as a bad range; they are escaped;
/// - `]` first in a bracket expression (`[]a]`, `[^]a]`) is a member in RE2 and an error in
///   Swift; it is escaped;
/// - `x{,3}` is a literal in RE2 and a quantifier in Swift; the `{` is escaped;
/// - RE2's one-letter Unicode class `\pL` is spelled `\p{L}` in Swift.
/// POSIX classes inside brackets (`[_.[:digit:]]`, in Istio's and Envoy's `listener_address`) mean
/// the same in both and are kept, as is `\Q…\E` quoting.
func swiftRegexSyntax(_ envoyPattern: String) -> String {
    let scalars = Array(envoyPattern.unicodeScalars)
    let classEscapes: Set<Unicode.Scalar> = ["w", "W", "d", "D", "s", "S"]
    var output = String.UnicodeScalarView()
    var index = 0
    var inBracket = false
    var previousWasClassEscape = false

    func scalar(at offset: Int) -> Unicode.Scalar? {
        offset < scalars.count ? scalars[offset] : nil
    }
    func append(_ text: String) {
        output.append(contentsOf: text.unicodeScalars)
    }
    func openBracket() {
        // `[`, an optional `^`, then a `]` that RE2 takes as the first member.
        append("[")
        index += 1
        if scalar(at: index) == "^" {
            append("^")
            index += 1
        }
        if scalar(at: index) == "]" {
            append("\\]")
            index += 1
        }
        inBracket = true
        previousWasClassEscape = false
    }

    while index < scalars.count {
        let current = scalars[index]
        let next = scalar(at: index + 1)

        if current == "\\" {
            guard let escaped = next else {
                output.append(current)  // a trailing backslash: Swift reports it
                index += 1
                continue
            }
            if escaped == "Q" {
                // Quoted text is literal in both syntaxes: copy through the closing \E.
                var end = index + 2
                while end < scalars.count, !(scalars[end] == "\\" && scalar(at: end + 1) == "E") { end += 1 }
                let stop = min(end + 2, scalars.count)
                output.append(contentsOf: scalars[index..<stop])
                index = stop
                previousWasClassEscape = false
                continue
            }
            if escaped == "p" || escaped == "P", let letter = scalar(at: index + 2), letter != "{" {
                append("\\\(escaped){\(letter)}")
                index += 3
                previousWasClassEscape = inBracket
                continue
            }
            output.append(current)
            output.append(escaped)
            index += 2
            previousWasClassEscape = inBracket && classEscapes.contains(escaped)
            continue
        }

        if !inBracket {
            if current == "[" {
                openBracket()
                continue
            }
            if current == "{" && next == "," {
                append("\\{")
            } else {
                output.append(current)
            }
            index += 1
            continue
        }

        // Inside a bracket expression.
        switch current {
        case "]":
            output.append(current)
            inBracket = false
            index += 1
        case "[":
            if next == ":", let close = posixClassEnd(scalars, from: index) {
                output.append(contentsOf: scalars[index..<close])
                index = close
            } else {
                append("\\[")
                index += 1
            }
        case "&", "~":
            append("\\\(current)")
            index += 1
        case "-":
            let nextIsClassEscape = next == "\\" && scalar(at: index + 2).map(classEscapes.contains) == true
            if next == "-" {
                append("\\-\\-")
                index += 2
            } else {
                if previousWasClassEscape || nextIsClassEscape {
                    append("\\-")
                } else {
                    output.append(current)
                }
                index += 1
            }
        default:
            output.append(current)
            index += 1
        }
        previousWasClassEscape = false
    }
    return String(output)
}

/// The index just past a POSIX class `[:name:]` starting at `start`, or nil when the text there is
/// not one.
private func posixClassEnd(_ scalars: [Unicode.Scalar], from start: Int) -> Int? {
    var index = start + 2
    while index < scalars.count, scalars[index].properties.isAlphabetic, scalars[index].isASCII { index += 1 }
    guard index > start + 2, index + 1 < scalars.count, scalars[index] == ":", scalars[index + 1] == "]" else {
        return nil
    }
    return index + 2
}
