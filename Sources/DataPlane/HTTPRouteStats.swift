import Capture
import ProxyStats
import Synchronization

/// The Envoy stats one HTTP listener writes, created once when the listener starts.
struct HTTPListenerStats: Sendable {
    // listener.<statName>.*
    let listenerConnectionsTotal: Counter
    let listenerConnectionsActive: Gauge
    let listenerConnectionsDestroyed: Counter
    // listener.<statName>.http.<statPrefix>.*: the connection manager's per-listener response stats.
    let listenerResponsesByClass: [Counter]
    let listenerRequestsCompleted: Counter
    // http.<statPrefix>.*
    let connectionsTotal: Counter
    let connectionsActive: Gauge
    let connectionsDestroyed: Counter
    let http1ConnectionsTotal: Counter
    let http1ConnectionsActive: Gauge
    let requestsTotal: Counter
    let http1RequestsTotal: Counter
    let requestsActive: Gauge
    let responsesByClass: [Counter]
    let requestsCompleted: Counter
    // The router filter's, also under http.<statPrefix>.
    let noRoute: Counter
    let routedRequests: Counter

    init(store: StatsStore, listenerStatName: String, statPrefix: String) {
        let listener = "listener.\(listenerStatName)."
        let http = "http.\(statPrefix)."
        listenerConnectionsTotal = store.counter(listener + "downstream_cx_total")
        listenerConnectionsActive = store.gauge(listener + "downstream_cx_active")
        listenerConnectionsDestroyed = store.counter(listener + "downstream_cx_destroy")
        listenerResponsesByClass = (1...5).map { store.counter(listener + "http.\(statPrefix).downstream_rq_\($0)xx") }
        listenerRequestsCompleted = store.counter(listener + "http.\(statPrefix).downstream_rq_completed")
        connectionsTotal = store.counter(http + "downstream_cx_total")
        connectionsActive = store.gauge(http + "downstream_cx_active")
        connectionsDestroyed = store.counter(http + "downstream_cx_destroy")
        http1ConnectionsTotal = store.counter(http + "downstream_cx_http1_total")
        http1ConnectionsActive = store.gauge(http + "downstream_cx_http1_active")
        requestsTotal = store.counter(http + "downstream_rq_total")
        http1RequestsTotal = store.counter(http + "downstream_rq_http1_total")
        requestsActive = store.gauge(http + "downstream_rq_active")
        responsesByClass = (1...5).map { store.counter(http + "downstream_rq_\($0)xx") }
        requestsCompleted = store.counter(http + "downstream_rq_completed")
        noRoute = store.counter(http + "no_route")
        routedRequests = store.counter(http + "rq_total")
    }

    func connectionOpened() {
        listenerConnectionsTotal.increment()
        listenerConnectionsActive.increment()
        connectionsTotal.increment()
        connectionsActive.increment()
        http1ConnectionsTotal.increment()
        http1ConnectionsActive.increment()
    }

    func connectionClosed() {
        listenerConnectionsActive.decrement()
        listenerConnectionsDestroyed.increment()
        connectionsActive.decrement()
        connectionsDestroyed.increment()
        http1ConnectionsActive.decrement()
    }

    func requestStarted() {
        requestsTotal.increment()
        http1RequestsTotal.increment()
        requestsActive.increment()
    }

    func requestFinished(status: Int) {
        requestsActive.decrement()
        requestsCompleted.increment()
        listenerRequestsCompleted.increment()
        let statusClass = status / 100
        if (1...5).contains(statusClass) {
            responsesByClass[statusClass - 1].increment()
            listenerResponsesByClass[statusClass - 1].increment()
        }
    }
}

/// `cluster.<statName>.*` for one upstream cluster, and its host's own counters for `/clusters`.
final class UpstreamClusterStats: Sendable {
    let store: StatsStore
    let prefix: String
    let requestsTotal: Counter
    let requestsActive: Gauge
    let requestsCompleted: Counter
    let requestsTimedOut: Counter
    let responsesByClass: [Counter]
    let connectionsTotal: Counter
    let connectionsActive: Gauge
    let connectionsDestroyed: Counter
    let connectFailures: Counter
    let noneHealthy: Counter
    let host: HostCounters
    /// `upstream_rq_<code>`: codes are open-ended, so each is created on first use and kept.
    private let responsesByCode = Mutex<[Int: Counter]>([:])

    init(store: StatsStore, statName: String) {
        self.store = store
        let prefix = "cluster.\(statName)."
        self.prefix = prefix
        requestsTotal = store.counter(prefix + "upstream_rq_total")
        requestsActive = store.gauge(prefix + "upstream_rq_active")
        requestsCompleted = store.counter(prefix + "upstream_rq_completed")
        requestsTimedOut = store.counter(prefix + "upstream_rq_timeout")
        responsesByClass = (1...5).map { store.counter(prefix + "upstream_rq_\($0)xx") }
        connectionsTotal = store.counter(prefix + "upstream_cx_total")
        connectionsActive = store.gauge(prefix + "upstream_cx_active")
        connectionsDestroyed = store.counter(prefix + "upstream_cx_destroy")
        connectFailures = store.counter(prefix + "upstream_cx_connect_fail")
        noneHealthy = store.counter(prefix + "upstream_cx_none_healthy")
        host = HostCounters()
    }

    func responseCounter(for status: Int) -> Counter {
        responsesByCode.withLock { counters in
            if let counter = counters[status] { return counter }
            let counter = store.counter(prefix + "upstream_rq_\(status)")
            counters[status] = counter
            return counter
        }
    }

    func countResponse(status: Int) {
        responseCounter(for: status).increment()
        let statusClass = status / 100
        if (1...5).contains(statusClass) { responsesByClass[statusClass - 1].increment() }
        requestsCompleted.increment()
    }
}

/// Envoy's per-host stats, kept outside the stats store as Envoy keeps them (they show in
/// `/clusters`, not `/stats`).
final class HostCounters: Sendable {
    let connectionsActive = Atomic<UInt64>(0)
    let connectionsTotal = Atomic<UInt64>(0)
    let connectFailures = Atomic<UInt64>(0)
    let requestsActive = Atomic<UInt64>(0)
    let requestsTotal = Atomic<UInt64>(0)
    let requestsSuccess = Atomic<UInt64>(0)
    let requestsError = Atomic<UInt64>(0)
    let requestsTimedOut = Atomic<UInt64>(0)

    var snapshot: HostStats {
        var stats = HostStats()
        stats.connectionsActive = connectionsActive.load(ordering: .relaxed)
        stats.connectionsTotal = connectionsTotal.load(ordering: .relaxed)
        stats.connectionsConnectFailed = connectFailures.load(ordering: .relaxed)
        stats.requestsActive = requestsActive.load(ordering: .relaxed)
        stats.requestsTotal = requestsTotal.load(ordering: .relaxed)
        stats.requestsSuccess = requestsSuccess.load(ordering: .relaxed)
        stats.requestsError = requestsError.load(ordering: .relaxed)
        stats.requestsTimeout = requestsTimedOut.load(ordering: .relaxed)
        return stats
    }
}

extension Atomic where Value == UInt64 {
    func increment() { wrappingAdd(1, ordering: .relaxed) }
    func decrement() { wrappingSubtract(1, ordering: .relaxed) }
}
