import ConfigFormats

extension BootstrapParser {
    /// `stats_config`: tag extraction rules and the stats matcher. Regexes are passed on as text with
    /// their JSON paths; the stats store compiles them and reports the ones that do not compile.
    mutating func statsSettings(_ reader: MessageReader?) throws(ConfigError) -> StatsSettings {
        guard var config = reader else { return StatsSettings(useAllDefaultTags: true, tags: [], matcher: .acceptAll) }
        let useAllDefaultTags = try config.bool("use_all_default_tags") ?? true
        var tags: [TagSpec] = []
        for var tag in try config.messages("stats_tags", type: "TagSpecifier") {
            let name = try tag.requiredString("tag_name", why: "the tag's name")
            let regex = try tag.string("regex")
            let fixedValue = try tag.string("fixed_value")
            if regex != nil, fixedValue != nil {
                throw ConfigError("\(tag.path): regex and fixed_value are alternatives; keep one")
            }
            // Envoy rejects a tag name given twice, since a stat cannot carry two values of one tag.
            if tags.contains(where: { $0.name == name }) {
                throw ConfigError("\(tag.path(of: "tag_name")): tag '\(name)' is specified twice; keep one")
            }
            // With neither, Envoy uses its built-in extractor of that name (the stats store looks it up).
            tags.append(TagSpec(name: name, regex: regex, fixedValue: fixedValue, path: tag.path.description))
            try tag.finish(warnings: &warnings)
        }
        let matcher = try statsMatcher(config.message("stats_matcher", type: "StatsMatcher"))
        try config.finish(warnings: &warnings)
        return StatsSettings(useAllDefaultTags: useAllDefaultTags, tags: tags, matcher: matcher)
    }

    private mutating func statsMatcher(_ reader: MessageReader?) throws(ConfigError) -> MatcherSpec {
        guard var matcher = reader else { return .acceptAll }
        let rejectAll = try matcher.bool("reject_all")
        let exclusion = try matcher.message("exclusion_list", type: "ListStringMatcher")
        let inclusion = try matcher.message("inclusion_list", type: "ListStringMatcher")
        try matcher.finish(warnings: &warnings)
        let given = [rejectAll != nil, exclusion != nil, inclusion != nil].filter { $0 }.count
        if given > 1 {
            throw ConfigError("\(matcher.path): reject_all, exclusion_list and inclusion_list are alternatives; keep one")
        }
        if let exclusion { return .exclusion(try patterns(exclusion)) }
        if let inclusion { return .inclusion(try patterns(inclusion)) }
        return rejectAll == true ? .rejectAll : .acceptAll
    }

    private mutating func patterns(_ list: MessageReader) throws(ConfigError) -> [PatternSpec] {
        var list = list
        var patterns: [PatternSpec] = []
        for matcher in try list.messages("patterns", type: "StringMatcher") {
            patterns.append(try stringMatcher(matcher))
        }
        try list.finish(warnings: &warnings)
        return patterns
    }

    /// An `envoy.type.matcher.v3.StringMatcher`: exactly one of exact, prefix, suffix, contains, safe_regex.
    mutating func stringMatcher(_ reader: MessageReader) throws(ConfigError) -> PatternSpec {
        var matcher = reader
        try matcher.refuse("custom", "custom string matchers are not supported by sluice-proxy")
        let ignoreCase = try matcher.bool("ignore_case") ?? false
        var found: [PatternSpec] = []
        let kinds: [(String, PatternSpec.Kind)] = [("exact", .exact), ("prefix", .prefix), ("suffix", .suffix), ("contains", .contains)]
        for (field, kind) in kinds {
            if let value = try matcher.string(field) {
                found.append(PatternSpec(kind: kind, value: value, ignoreCase: ignoreCase, path: matcher.path(of: field).description))
            }
        }
        if var regex = try matcher.message("safe_regex", type: "RegexMatcher") {
            // As Envoy: a regex states its own case rules.
            if ignoreCase {
                throw ConfigError("\(matcher.path(of: "ignore_case")): has no effect on safe_regex; write the case into the regex")
            }
            let pattern = try regex.requiredString("regex", why: "the regular expression")
            found.append(PatternSpec(kind: .regex, value: pattern, ignoreCase: false, path: regex.path(of: "regex").description))
            try regex.finish(warnings: &warnings)
        }
        try matcher.finish(warnings: &warnings)
        guard found.count == 1 else {
            throw ConfigError("\(matcher.path): \(found.isEmpty ? "needs" : "takes only") one of exact, prefix, suffix,"
                + " contains, safe_regex")
        }
        return found[0]
    }
}
