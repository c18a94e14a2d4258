/// Envoy's `envoy.type.matcher.v3.StringMatcher`, as `stats_matcher` uses it on stat names.
public struct StringMatcher: Sendable {
    public enum Kind: Sendable { case exact, prefix, suffix, contains, regex }

    public let kind: Kind
    public let value: String
    public let ignoreCase: Bool
    private let compiled: EnvoyRegex?
    /// `value` lowercased once, for the case-insensitive kinds.
    private let foldedValue: [UInt8]

    /// `.regex` compiles `value` here, so a bad pattern fails at configuration time, not on the
    /// first stat. `ignoreCase` applies to exact/prefix/suffix/contains only: Envoy documents that
    /// it has no effect on `safe_regex` (write `(?i)` in the pattern instead).
    public init(_ kind: Kind, _ value: String, ignoreCase: Bool = false) throws(StatsError) {
        self.kind = kind
        self.value = value
        self.ignoreCase = ignoreCase
        compiled = kind == .regex ? try EnvoyRegex(value, role: "stats_matcher safe_regex") : nil
        foldedValue = asciiLowercased(value.utf8)
    }

    /// Byte-wise comparisons, as Envoy's (absl) string matching; `ignoreCase` folds ASCII only,
    /// as `absl::EqualsIgnoreCase` does. A regex must match the whole name: `safe_regex` is a
    /// full match in Envoy.
    public func matches(_ text: String) -> Bool {
        if let compiled {
            return compiled.matchesWhole(text)
        }
        if ignoreCase {
            return matches(asciiLowercased(text.utf8), foldedValue)
        }
        return matches(Array(text.utf8), Array(value.utf8))
    }

    private func matches(_ text: [UInt8], _ pattern: [UInt8]) -> Bool {
        switch kind {
        case .exact: text == pattern
        case .prefix: text.starts(with: pattern)
        case .suffix: text.count >= pattern.count && text.suffix(pattern.count).elementsEqual(pattern)
        case .contains: contains(text, pattern)
        case .regex: false  // handled by `compiled`
        }
    }
}

/// Envoy's `stats_matcher`: which stats exist at all. Envoy decides once, when a stat is created,
/// and never instantiates a rejected one; `StatsStore` does the same.
public enum StatsInclusion: Sendable {
    /// No `stats_matcher`, or `reject_all: false`.
    case all
    /// `reject_all: true`.
    case none
    /// `inclusion_list`: a stat exists when any pattern matches it.
    case only([StringMatcher])
    /// `exclusion_list`: a stat exists unless a pattern matches it.
    case allExcept([StringMatcher])

    public func includes(_ name: String) -> Bool {
        switch self {
        case .all: true
        case .none: false
        case .only(let matchers): matchers.contains { $0.matches(name) }
        case .allExcept(let matchers): !matchers.contains { $0.matches(name) }
        }
    }
}

private func asciiLowercased(_ bytes: String.UTF8View) -> [UInt8] {
    bytes.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 }
}

private func contains(_ text: [UInt8], _ pattern: [UInt8]) -> Bool {
    guard !pattern.isEmpty else { return true }
    guard text.count >= pattern.count else { return false }
    for start in 0...(text.count - pattern.count)
    where text[start] == pattern[0] && text[start..<(start + pattern.count)].elementsEqual(pattern) {
        return true
    }
    return false
}
