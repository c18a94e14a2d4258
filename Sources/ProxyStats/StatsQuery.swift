/// The admin renderings: `/stats` (text), `/stats?format=json`, `/stats/prometheus`.
public enum StatsFormat: Sendable { case text, json, prometheus }

/// The admin query parameters that select stats, as Envoy's `StatsParams` reads them.
public struct StatsQuery: Sendable {
    /// Envoy's `type=` values. sluice-proxy has no histograms or text readouts, so those two
    /// select nothing; they are accepted because Envoy accepts them.
    public enum StatType: Sendable {
        case all, counters, gauges, histograms, textReadouts

        /// Envoy's spellings, case-sensitive as Envoy compares them.
        public init?(envoyLabel: String) {
            switch envoyLabel {
            case "All": self = .all
            case "Counters": self = .counters
            case "Gauges": self = .gauges
            case "Histograms": self = .histograms
            case "TextReadouts": self = .textReadouts
            default: return nil
            }
        }
    }

    /// A regex searched for anywhere in the full stat name (Envoy's `filter=`, an RE2 partial
    /// match). A pattern that does not compile selects nothing; `init(queryItems:)` rejects it
    /// instead, with the compiler's message.
    public var filter: String? {
        didSet { compiledFilter = StatsQuery.compile(filter) }
    }
    /// `usedonly`: only stats that have been written.
    public var usedOnly: Bool
    /// `type=`. Envoy's `/stats/prometheus` ignores it and always renders every type; so does
    /// `StatsStore.render(.prometheus, query:)`.
    public var type: StatType

    private var compiledFilter: Result<EnvoyRegex, StatsError>?

    public init(filter: String? = nil, usedOnly: Bool = false, type: StatType = .all) {
        self.filter = filter
        self.usedOnly = usedOnly
        self.type = type
        compiledFilter = StatsQuery.compile(filter)
    }

    /// From admin query items (`usedonly`, `filter=`, `type=`; `format=` is the caller's; unknown
    /// parameters are ignored, as Envoy ignores them). A repeated parameter counts once, the first
    /// time, as in Envoy's query map. A filter that does not compile or an unknown `type=` is an
    /// error, as Envoy answers both with 400 Bad Request.
    public init(queryItems: [(name: String, value: String)]) throws(StatsError) {
        self.init()
        var seen: Set<String> = []
        for item in queryItems where seen.insert(item.name).inserted {
            switch item.name {
            case "usedonly":
                usedOnly = true
            case "filter":
                // Property observers do not run inside an initializer: compile here.
                filter = item.value
                compiledFilter = StatsQuery.compile(item.value)
                if case .failure(let error) = compiledFilter { throw error }
            case "type":
                guard let type = StatType(envoyLabel: item.value) else {
                    throw StatsError("type=\(item.value) is not a stats type; use All, Counters, Gauges, "
                        + "Histograms or TextReadouts")
                }
                self.type = type
            default:
                continue
            }
        }
    }

    private static func compile(_ filter: String?) -> Result<EnvoyRegex, StatsError>? {
        guard let filter else { return nil }
        do {
            return .success(try EnvoyRegex(filter, role: "filter= query parameter"))
        } catch {
            return .failure(error)
        }
    }

    /// `usedonly` and `filter=`, which every format honours.
    func selects(name: String, used: Bool) -> Bool {
        if usedOnly && !used { return false }
        switch compiledFilter {
        case nil: return true
        case .success(let regex): return regex.firstMatch(in: name) != nil
        case .failure: return false
        }
    }

    /// `type=`, for the text and JSON formats.
    func selects(_ value: StatEntry.Value) -> Bool {
        switch type {
        case .all: true
        case .counters: value.isCounter
        case .gauges: !value.isCounter
        case .histograms, .textReadouts: false
        }
    }
}
