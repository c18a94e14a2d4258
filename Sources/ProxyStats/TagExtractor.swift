/// One tag on a stat: `envoy.cluster_name="xds-grpc"`.
public struct StatTag: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A stat name split the way Envoy's `TagProducer` splits it: what is left after the tag values
/// are cut out (the Prometheus metric name), and the tags in extraction order.
public struct TaggedStatName: Sendable, Equatable {
    public var extractedName: String
    public var tags: [StatTag]

    public init(extractedName: String, tags: [StatTag]) {
        self.extractedName = extractedName
        self.tags = tags
    }
}

/// One of Envoy's tag extractors (`stats_config.stats_tags`, or a built-in default).
public struct TagExtractor: Sendable {
    /// The tag name: `cluster_name` from Istio's bootstrap, `envoy.cluster_name` for Envoy's own.
    public let name: String
    let rule: Rule
    /// Envoy's prefix token: an extractor whose pattern can only match names starting with
    /// `<token>.` is only tried on those names, after every extractor without one. That shortcut
    /// also fixes the order tags come out in, which shows in Prometheus label order.
    let prefixToken: String?

    enum Rule: Sendable {
        /// A `stats_tags` regex: std::regex search; group 1 is cut from the name, group 2 (when the
        /// regex has one) is the value, else group 1 is.
        case search(EnvoyRegex)
        /// Envoy's built-in RE2 extractors: a partial match with two groups, a non-empty group 1,
        /// and a value that may not equal `negativeMatch`.
        case builtInRegex(EnvoyRegex, negativeMatch: String?)
        /// Envoy's built-in token patterns (`cluster.$.**`).
        case tokens(TokenPattern)
        /// `fixed_value`: the tag on every stat, nothing cut from the name.
        case fixed(String)
    }

    /// A `stats_tags` entry with `regex`, applied as Envoy applies one: search the stat name; the
    /// first capture group is removed from the name and the second group is the value (or the
    /// first, when the regex has only one). A regex without a capture group never extracts.
    public init(name: String, regex: String) throws(StatsError) {
        self.name = name
        rule = .search(try EnvoyRegex(regex, role: "stats_tags regex for tag '\(name)'"))
        prefixToken = regexPrefixToken(regex)
    }

    /// A `stats_tags` entry with `fixed_value`: every stat gets the tag.
    public init(name: String, fixedValue: String) {
        self.name = name
        rule = .fixed(fixedValue)
        prefixToken = nil
    }

    /// An Envoy built-in regex extractor. The patterns are constants checked by the tests.
    init(builtIn name: String, regex: String, negativeMatch: String? = nil) {
        self.name = name
        do {
            rule = .builtInRegex(try EnvoyRegex(regex, role: "built-in tag '\(name)'"), negativeMatch: negativeMatch)
        } catch {
            preconditionFailure("\(error)")
        }
        prefixToken = regexPrefixToken(regex)
    }

    /// An Envoy built-in token extractor: `.`-separated tokens where `*` is any one token, `**` any
    /// number of tokens, and `$` the token that becomes the value.
    init(builtIn name: String, tokens: String) {
        self.name = name
        let pattern = TokenPattern(tokens)
        rule = .tokens(pattern)
        prefixToken = pattern.prefixToken
    }

    /// Applies this extractor to `name`: the tag value and the UTF-8 byte range to cut, or nil.
    func extract(from name: String) -> (value: String, cut: Range<Int>?)? {
        switch rule {
        case .fixed(let value):
            return (value, nil)
        case .tokens(let pattern):
            return pattern.extract(from: name)
        case .search(let regex):
            guard let match = regex.firstMatch(in: name), match.output.count > 1 else { return nil }
            // std::regex semantics: a group that took no part in the match reads as empty.
            let valueGroup = match.output[match.output.count > 2 ? 2 : 1]
            let value = valueGroup.substring.map(String.init) ?? ""
            return (value, match.output[1].range.map { byteRange(of: $0, in: name) })
        case .builtInRegex(let regex, let negativeMatch):
            guard let match = regex.firstMatch(in: name), match.output.count > 2,
                  let removed = match.output[1].range, !removed.isEmpty else { return nil }
            let group2 = match.output[2].substring.map(String.init) ?? ""
            let value = group2.isEmpty ? String(name[removed]) : group2
            if let negativeMatch, value == negativeMatch { return nil }
            return (value, byteRange(of: removed, in: name))
        }
    }
}

private func byteRange(of range: Range<String.Index>, in text: String) -> Range<Int> {
    let start = text.utf8.distance(from: text.startIndex, to: range.lowerBound)
    let end = text.utf8.distance(from: text.startIndex, to: range.upperBound)
    return start..<end
}

/// Envoy's `extractRegexPrefix`: for a regex `^word\.…` or `^word(?=\.)…` (or exactly `^word$`),
/// `word`; otherwise no prefix. Istio's `^cluster(\.(.+);)` has none, so it runs with the
/// extractors that are tried on every name.
func regexPrefixToken(_ regex: String) -> String? {
    let bytes = Array(regex.utf8)
    guard bytes.first == UInt8(ascii: "^") else { return nil }
    var index = 1
    while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
    guard index > 1, index < bytes.count else { return nil }
    let rest = bytes[index...]
    let isLast = index == bytes.count - 1
    let followedByDot = rest.starts(with: Array(#"\."#.utf8)) || rest.starts(with: Array(#"(?=\.)"#.utf8))
    guard (!isLast && followedByDot) || (isLast && bytes[index] == UInt8(ascii: "$")) else { return nil }
    return String(decoding: bytes[1..<index], as: UTF8.self)
}

private func isWordByte(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
}

/// Envoy's token extractor (`TagExtractorTokensImpl`): cheaper than a regex, and the form of most of
/// Envoy's current built-in tags.
struct TokenPattern: Sendable {
    let tokens: [String]
    let valueIndex: Int

    init(_ pattern: String) {
        tokens = pattern.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        valueIndex = tokens.firstIndex(of: "$") ?? 0
    }

    var prefixToken: String? {
        guard let first = tokens.first, first != "$", first != "*", first != "**" else { return nil }
        return first
    }

    /// The value token, and the bytes to cut: the token with the dot after it, or, for the last
    /// token, the dot before it.
    func extract(from name: String) -> (value: String, cut: Range<Int>?)? {
        let input = name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        var value: (offset: Int, index: Int)?
        guard search(input, inputIndex: 0, patternIndex: 0, byteOffset: 0, value: &value), let value else {
            return nil
        }
        var cutStart = value.offset
        var cutEnd = value.offset + input[value.index].count
        if value.index < input.count - 1 {
            cutEnd += 1
        } else if cutStart > 0 {
            cutStart -= 1
        }
        return (String(decoding: input[value.index], as: UTF8.self), cutStart..<cutEnd)
    }

    /// Whether the pattern matches the tokens from `inputIndex` on; records where the value token
    /// is. A `**` that is not last tries every number of skipped tokens, fewest first.
    private func search(_ input: [Substring.UTF8View], inputIndex: Int, patternIndex: Int, byteOffset: Int,
                        value: inout (offset: Int, index: Int)?) -> Bool {
        var inputIndex = inputIndex
        var patternIndex = patternIndex
        var byteOffset = byteOffset
        while inputIndex < input.count && patternIndex < tokens.count {
            let expected = tokens[patternIndex]
            if patternIndex == valueIndex {
                value = (byteOffset, inputIndex)
            } else if expected == "**" {
                if patternIndex == tokens.count - 1 {
                    return true
                }
                for skip in inputIndex..<input.count {
                    if search(input, inputIndex: skip, patternIndex: patternIndex + 1, byteOffset: byteOffset, value: &value) {
                        return true
                    }
                    byteOffset += input[skip].count + 1
                }
                return false
            } else if expected != "*" && !input[inputIndex].elementsEqual(expected.utf8) {
                return false
            }
            byteOffset += input[inputIndex].count + 1
            inputIndex += 1
            patternIndex += 1
        }
        return patternIndex == tokens.count && inputIndex == input.count
    }
}
