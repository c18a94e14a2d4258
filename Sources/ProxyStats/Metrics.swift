import Synchronization

// Counters and gauges are shared by every forwarding worker and updated per splice, so the hot path
// is one relaxed atomic add. Relaxed ordering is enough: a stat orders nothing else, and readers
// (the admin API) only need each value to be eventually current, as in Envoy.

/// A monotonically increasing count, Envoy's `Stats::Counter`.
public final class Counter: Sendable {
    public let name: String
    private let storage = Atomic<UInt64>(0)
    private let everUsed = Atomic<Bool>(false)

    /// A counter that belongs to no store. `StatsStore.counter(_:)` is the usual way to get one.
    public init(name: String) {
        self.name = name
    }

    public func increment(by amount: UInt64 = 1) {
        storage.wrappingAdd(amount, ordering: .relaxed)
        markUsed(everUsed)
    }

    public var value: UInt64 { storage.load(ordering: .relaxed) }

    /// Envoy's `used()`: true once the counter has been written, even by an increment of 0.
    /// `/stats?usedonly` and `/stats/prometheus?usedonly` show only used stats.
    public var used: Bool { everUsed.load(ordering: .relaxed) }
}

/// A value that goes up and down, Envoy's `Stats::Gauge`. Signed, so that an unbalanced decrement
/// shows as a negative number instead of Envoy's wrapped-around 2^64 - 1.
public final class Gauge: Sendable {
    public let name: String
    private let storage = Atomic<Int64>(0)
    private let everUsed = Atomic<Bool>(false)

    /// A gauge that belongs to no store. `StatsStore.gauge(_:)` is the usual way to get one.
    public init(name: String) {
        self.name = name
    }

    public func increment(by amount: Int64 = 1) {
        storage.wrappingAdd(amount, ordering: .relaxed)
        markUsed(everUsed)
    }

    public func decrement(by amount: Int64 = 1) {
        storage.wrappingSubtract(amount, ordering: .relaxed)
        markUsed(everUsed)
    }

    public func set(_ value: Int64) {
        storage.store(value, ordering: .relaxed)
        markUsed(everUsed)
    }

    public var value: Int64 { storage.load(ordering: .relaxed) }

    /// Envoy's `used()`: true once the gauge has been written (set, incremented or decremented),
    /// even when the value it holds is back to 0.
    public var used: Bool { everUsed.load(ordering: .relaxed) }
}

/// Sets a used flag without writing its cache line on every update: after the first write the
/// flag is only read, so workers updating the same stat do not also contend on the flag.
@inline(__always)
private func markUsed(_ flag: borrowing Atomic<Bool>) {
    if !flag.load(ordering: .relaxed) {
        flag.store(true, ordering: .relaxed)
    }
}
