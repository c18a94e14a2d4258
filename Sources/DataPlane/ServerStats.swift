import ProxyStats
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// Envoy's server-wide stats: what pilot-agent's readiness reads (`server.state`,
/// `listener_manager.workers_started`, `listener_manager.total_listeners_active`) and what people
/// graph (`server.uptime`, `server.total_connections`, memory).
final class ServerStats: Sendable {
    private let state: Gauge
    private let live: Gauge
    private let uptime: Gauge
    private let concurrency: Gauge
    private let totalConnections: Gauge
    private let memoryAllocated: Gauge
    private let memoryPhysical: Gauge
    private let hotRestartEpoch: Gauge
    private let workersStarted: Gauge
    private let listenersActive: Gauge
    private let listenersWarming: Gauge
    private let listenersDraining: Gauge
    private let listenerAdded: Counter
    private let listenerStopped: Counter
    private let activeClusters: Gauge
    private let warmingClusters: Gauge
    private let clusterAdded: Counter

    init(store: StatsStore) {
        state = store.gauge("server.state")
        live = store.gauge("server.live")
        uptime = store.gauge("server.uptime")
        concurrency = store.gauge("server.concurrency")
        totalConnections = store.gauge("server.total_connections")
        memoryAllocated = store.gauge("server.memory_allocated")
        memoryPhysical = store.gauge("server.memory_physical_size")
        hotRestartEpoch = store.gauge("server.hot_restart_epoch")
        workersStarted = store.gauge("listener_manager.workers_started")
        listenersActive = store.gauge("listener_manager.total_listeners_active")
        listenersWarming = store.gauge("listener_manager.total_listeners_warming")
        listenersDraining = store.gauge("listener_manager.total_listeners_draining")
        listenerAdded = store.counter("listener_manager.listener_added")
        listenerStopped = store.counter("listener_manager.listener_stopped")
        activeClusters = store.gauge("cluster_manager.active_clusters")
        warmingClusters = store.gauge("cluster_manager.warming_clusters")
        clusterAdded = store.counter("cluster_manager.cluster_added")
        // INITIALIZING until the listeners are up.
        state.set(Int64(ServerState.initializing.rawValue))
        hotRestartEpoch.set(0)
        listenersWarming.set(0)
        warmingClusters.set(0)
    }

    func started(workers: Int, listeners: Int, clusters: Int) {
        concurrency.set(Int64(workers))
        listenerAdded.increment(by: UInt64(listeners))
        listenersActive.set(Int64(listeners))
        listenersDraining.set(0)
        clusterAdded.increment(by: UInt64(clusters))
        activeClusters.set(Int64(clusters))
        workersStarted.set(1)
    }

    func update(state reported: ServerState) {
        state.set(Int64(reported.rawValue))
        live.set(reported == .live ? 1 : 0)
    }

    func listenersStopped(_ stillActive: Int, stopped: Int) {
        listenersActive.set(Int64(stillActive))
        listenerStopped.increment(by: UInt64(stopped))
    }

    func refresh(uptimeSince start: WallClockTime, connections: Int) {
        uptime.set(WallClockTime.now().seconds - start.seconds)
        totalConnections.set(Int64(connections))
        if let resident = Self.residentBytes() {
            memoryPhysical.set(resident)
            memoryAllocated.set(resident)
        }
    }

    /// Resident set size from /proc/self/statm (pages × page size); nil when unreadable.
    static func residentBytes() -> Int64? {
        guard let statm = try? TextFile.read("/proc/self/statm") else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
