import Synchronization

/// One stat as the admin API shows it.
public struct StatValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case counter, gauge }
    public var name: String
    public var kind: Kind
    /// A counter above `Int64.max` shows as `Int64.max`; renderings print the full value.
    public var value: Int64
    public var used: Bool

    public init(name: String, kind: Kind, value: Int64, used: Bool) {
        self.name = name
        self.kind = kind
        self.value = value
        self.used = used
    }
}

/// The data plane's stats: Envoy's `Stats::Store` reduced to counters and gauges.
///
/// Creating a stat takes a lock (it is rare: once per listener, cluster or worker); updating one
/// never does, because callers keep the `Counter`/`Gauge` instance and update its atomics. The
/// tag-extracted name each stat renders under in Prometheus is computed once, at creation.
public final class StatsStore: Sendable {
    public let inclusion: StatsInclusion
    private let tagProducer: TagProducer
    private let registry = Mutex(Registry())

    private struct Registry {
        var counters: [String: Registered<Counter>] = [:]
        var gauges: [String: Registered<Gauge>] = [:]
        // Rejected stats are kept too, so that one name always gives one instance and the
        // matcher runs once per name.
        var detachedCounters: [String: Counter] = [:]
        var detachedGauges: [String: Gauge] = [:]
    }

    struct Registered<Metric: Sendable>: Sendable {
        let metric: Metric
        let tagged: TaggedStatName
    }

    /// - Parameters:
    ///   - inclusion: the bootstrap's `stats_matcher`.
    ///   - tagExtractors: in Envoy's order: `envoyDefaults` first when `use_all_default_tags` is
    ///     unset or true, then the bootstrap's `stats_tags`.
    public init(inclusion: StatsInclusion = .all, tagExtractors: [TagExtractor] = TagExtractor.envoyDefaults) {
        self.inclusion = inclusion
        tagProducer = TagProducer(tagExtractors)
    }

    /// The same name returns the same instance. A name the inclusion rejects returns a working but
    /// detached instance that no rendering shows (Envoy never instantiates rejected stats).
    public func counter(_ name: String) -> Counter {
        if let existing = registry.withLock({ $0.counters[name]?.metric ?? $0.detachedCounters[name] }) {
            return existing
        }
        // Matching and tag extraction run outside the lock; if another thread registers the same
        // name meanwhile, its instance wins and this work is dropped.
        let tagged = inclusion.includes(name) ? tagProducer.tags(for: name) : nil
        return registry.withLock { registry in
            if let existing = registry.counters[name]?.metric ?? registry.detachedCounters[name] {
                return existing
            }
            let counter = Counter(name: name)
            if let tagged {
                registry.counters[name] = Registered(metric: counter, tagged: tagged)
            } else {
                registry.detachedCounters[name] = counter
            }
            return counter
        }
    }

    /// As `counter(_:)`, for gauges. A counter and a gauge may share a name, as in Envoy.
    public func gauge(_ name: String) -> Gauge {
        if let existing = registry.withLock({ $0.gauges[name]?.metric ?? $0.detachedGauges[name] }) {
            return existing
        }
        let tagged = inclusion.includes(name) ? tagProducer.tags(for: name) : nil
        return registry.withLock { registry in
            if let existing = registry.gauges[name]?.metric ?? registry.detachedGauges[name] {
                return existing
            }
            let gauge = Gauge(name: name)
            if let tagged {
                registry.gauges[name] = Registered(metric: gauge, tagged: tagged)
            } else {
                registry.detachedGauges[name] = gauge
            }
            return gauge
        }
    }

    /// The Prometheus name and tags of an included stat, as computed when it was created.
    public func tags(ofStatNamed name: String) -> TaggedStatName? {
        registry.withLock { $0.counters[name]?.tagged ?? $0.gauges[name]?.tagged }
    }

    /// Included stats, sorted by name (byte order, as Envoy's `/stats`); a counter comes before a
    /// gauge of the same name.
    public func snapshot() -> [StatValue] {
        entries().map { entry in
            switch entry.value {
            case .counter(let value):
                StatValue(name: entry.name, kind: .counter, value: Int64(clamping: value), used: entry.used)
            case .gauge(let value):
                StatValue(name: entry.name, kind: .gauge, value: value, used: entry.used)
            }
        }
    }

    /// Every included stat with its value read now, sorted as `snapshot()`.
    func entries() -> [StatEntry] {
        let (counters, gauges) = registry.withLock { (Array($0.counters.values), Array($0.gauges.values)) }
        var entries: [StatEntry] = []
        entries.reserveCapacity(counters.count + gauges.count)
        for registered in counters {
            let counter = registered.metric
            entries.append(StatEntry(name: counter.name, tagged: registered.tagged,
                                     value: .counter(counter.value), used: counter.used))
        }
        for registered in gauges {
            let gauge = registered.metric
            entries.append(StatEntry(name: gauge.name, tagged: registered.tagged,
                                     value: .gauge(gauge.value), used: gauge.used))
        }
        entries.sort { left, right in
            if left.name == right.name { return left.value.isCounter && !right.value.isCounter }
            return precedesInByteOrder(left.name, right.name)
        }
        return entries
    }
}

/// A stat read for rendering: its value is read once, so a rendering is self-consistent per stat.
struct StatEntry {
    enum Value {
        case counter(UInt64)
        case gauge(Int64)

        var isCounter: Bool {
            if case .counter = self { true } else { false }
        }

        var text: String {
            switch self {
            case .counter(let value): String(value)
            case .gauge(let value): String(value)
            }
        }
    }

    let name: String
    let tagged: TaggedStatName
    let value: Value
    let used: Bool
}

/// Envoy sorts names as byte strings (std::string keys); Swift's `<` on String compares Unicode
/// scalars after normalisation, which agrees on ASCII but not in general.
func precedesInByteOrder(_ left: String, _ right: String) -> Bool {
    left.utf8.lexicographicallyPrecedes(right.utf8)
}
