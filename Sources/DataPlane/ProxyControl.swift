import Capture
import DataPlaneConfig
import ProxyStats

/// Envoy's `envoy.admin.v3.ServerInfo.State`, with its numbering: the value of the `server.state`
/// gauge, and the name `/ready` and `/server_info` print.
public enum ServerState: Int, Sendable, CaseIterable {
    /// Serving traffic.
    case live = 0
    /// Failing health checks (`/healthcheck/fail`) so load balancers drain it.
    case draining = 1
    /// Cluster manager initialisation has not finished.
    case preInitializing = 2
    /// Initialisation callbacks are running.
    case initializing = 3

    /// The protobuf enum name: `LIVE`, `DRAINING`, `PRE_INITIALIZING`, `INITIALIZING`.
    public var name: String {
        switch self {
        case .live: "LIVE"
        case .draining: "DRAINING"
        case .preInitializing: "PRE_INITIALIZING"
        case .initializing: "INITIALIZING"
        }
    }

    /// Envoy's `Utility::serverState`: an initialised server that fails health checks reports DRAINING.
    public static func reported(initialization state: ServerState, healthCheckFailed: Bool) -> ServerState {
        state == .live && healthCheckFailed ? .draining : state
    }
}

/// A listener and the addresses it actually bound (port 0 resolved), first the `address`, then the
/// `additional_addresses`.
public struct ListenerStatus: Sendable, Equatable {
    public var name: String
    public var addresses: [Endpoint]

    public init(name: String, addresses: [Endpoint]) {
        self.name = name
        self.addresses = addresses
    }
}

/// Envoy's per-host counters and gauges (`ALL_HOST_STATS`), as `/clusters` prints them.
public struct HostStats: Sendable, Equatable {
    public var connectionsActive: UInt64 = 0
    public var connectionsConnectFailed: UInt64 = 0
    public var connectionsTotal: UInt64 = 0
    public var requestsActive: UInt64 = 0
    public var requestsError: UInt64 = 0
    public var requestsSuccess: UInt64 = 0
    public var requestsTimeout: UInt64 = 0
    public var requestsTotal: UInt64 = 0

    public init() {}

    public init(connectionsActive: UInt64, connectionsTotal: UInt64, requestsTotal: UInt64) {
        self.connectionsActive = connectionsActive
        self.connectionsTotal = connectionsTotal
        self.requestsTotal = requestsTotal
    }

    /// Counters first, then gauges, each in Envoy's declaration order (the JSON rendering's order).
    var counters: [(String, UInt64)] {
        [("cx_connect_fail", connectionsConnectFailed), ("cx_total", connectionsTotal), ("rq_error", requestsError),
         ("rq_success", requestsSuccess), ("rq_timeout", requestsTimeout), ("rq_total", requestsTotal)]
    }

    var gauges: [(String, UInt64)] {
        [("cx_active", connectionsActive), ("rq_active", requestsActive)]
    }

    public static func + (lhs: HostStats, rhs: HostStats) -> HostStats {
        var sum = HostStats()
        sum.connectionsActive = lhs.connectionsActive + rhs.connectionsActive
        sum.connectionsConnectFailed = lhs.connectionsConnectFailed + rhs.connectionsConnectFailed
        sum.connectionsTotal = lhs.connectionsTotal + rhs.connectionsTotal
        sum.requestsActive = lhs.requestsActive + rhs.requestsActive
        sum.requestsError = lhs.requestsError + rhs.requestsError
        sum.requestsSuccess = lhs.requestsSuccess + rhs.requestsSuccess
        sum.requestsTimeout = lhs.requestsTimeout + rhs.requestsTimeout
        sum.requestsTotal = lhs.requestsTotal + rhs.requestsTotal
        return sum
    }
}

/// One upstream host of a cluster.
public struct HostStatus: Sendable, Equatable {
    public var address: ProxyAddress
    public var stats: HostStats
    public var healthy: Bool

    public init(address: ProxyAddress, stats: HostStats = HostStats(), healthy: Bool = true) {
        self.address = address
        self.stats = stats
        self.healthy = healthy
    }
}

/// A cluster as `/clusters` shows it. ORIGINAL_DST clusters list the destinations they currently
/// hold connections to (Envoy creates such hosts on demand), or none.
public struct ClusterStatus: Sendable, Equatable {
    public var name: String
    /// `alt_stat_name` when set, else the name (Envoy's `observability_name`).
    public var observabilityName: String
    public var hosts: [HostStatus]

    /// Circuit-breaker limits are not carried here: `/clusters` reads them from the bootstrap.
    public init(name: String, observabilityName: String? = nil, hosts: [HostStatus] = []) {
        self.name = name
        self.observabilityName = observabilityName ?? name
        self.hosts = hosts
    }

    /// The cluster as configured, with its static endpoints and no traffic yet.
    public init(_ cluster: ClusterConfig) {
        var hosts: [HostStatus] = []
        if case .staticEndpoints(let addresses) = cluster.discovery {
            hosts = addresses.map { HostStatus(address: $0) }
        }
        self.init(name: cluster.name, observabilityName: cluster.statName, hosts: hosts)
    }
}

/// What the admin API needs from the running proxy. The server implements it; tests fake it.
///
/// Everything is read when a request arrives, so implementations return live values. The admin API
/// never blocks the data path: `drainListeners` and `quit` may take long, but the admin handler
/// awaits only `drainListeners` (Envoy answers `/drain_listeners` once the drain has *started*, so
/// implementations start it and return) and calls `quit` after its response is written.
public protocol ProxyControl: AnyObject, Sendable {
    var bootstrap: ProxyBootstrap { get }
    var commandLine: ProxyCommandLine { get }
    var stats: StatsStore { get }
    var logLevels: ProxyLogLevels { get }
    /// The initialisation state (`LIVE` once listeners are up). The admin API reports DRAINING on its
    /// own while health checks are failed, as Envoy does; implementations need not fold that in.
    var state: ServerState { get }
    /// When this process started serving (the current and only epoch: sluice-proxy never hot-restarts).
    var startTime: WallClockTime { get }
    /// `/healthcheck/fail` sets it, `/healthcheck/ok` clears it.
    var healthCheckFailed: Bool { get }
    func setHealthCheckFailed(_ failed: Bool)
    /// In bootstrap order, with the addresses actually bound.
    func listenerStatuses() -> [ListenerStatus]
    func clusterStatuses() -> [ClusterStatus]
    /// `/drain_listeners`: `inboundOnly` limits it to `traffic_direction: INBOUND` listeners;
    /// `graceful` keeps accepting for the drain time (`--drain-time-s`) before the listeners stop;
    /// `skipExit` leaves the listeners open after the drain period. Returns once the drain has started.
    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async
    /// `/quitquitquit`: stop the process cleanly. Called after the response has been produced.
    func quit() async
}

extension ProxyControl {
    /// The state `/ready`, `/server_info` and `server.state` report.
    public var reportedState: ServerState {
        ServerState.reported(initialization: state, healthCheckFailed: healthCheckFailed)
    }
}
