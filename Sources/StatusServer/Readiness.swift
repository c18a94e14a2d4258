import AgentHTTP
import Synchronization

public enum ReadinessResult: Sendable, Equatable {
    case ready
    case notReady(reason: String)
}

/// One of the probers behind `/healthz/ready`; they run in order and the first failure wins.
public protocol ReadinessCheck: Sendable {
    var name: String { get }
    func check() async -> ReadinessResult
}

/// Set once when the agent starts shutting down (SIGTERM, `/quitquitquit`); readiness fails from then on.
public final class ShutdownFlag: Sendable {
    private let isSetStorage = Mutex(false)

    public init() {}

    public func set() {
        isSetStorage.withLock { $0 = true }
    }

    public var isSet: Bool { isSetStorage.withLock { $0 } }
}

/// Istio's Envoy prober (`status/ready/probe.go`) against the data plane's admin API.
///
/// Istio first requires `cluster_manager.cds.update_success > 0 && listener_manager.lds.update_success > 0`
/// (config received from istiod). In standalone mode there is no control plane and every listener is
/// static in the bootstrap, so that check is replaced by "all static listeners are active":
/// `listener_manager.total_listeners_active >= expectedListeners`.
public final class DataPlaneReadiness: ReadinessCheck {
    public let name = "data plane"

    private let admin: EnvoyAdminClient
    private let expectedListeners: Int
    private let shutdown: ShutdownFlag
    private let startedAt: ContinuousClock.Instant
    private let onFirstReady: @Sendable (Duration) -> Void
    /// Istio caches live-ness once reached: later stats failures (a busy admin thread) must not flap readiness.
    private let becameReady = Mutex(false)
    private let startupRecorded = Mutex(false)

    static let statsFilter = #"^(server\.state|listener_manager\.workers_started|listener_manager\.total_listeners_active)$"#

    /// - Parameters:
    ///   - expectedListeners: the number of static listeners in the bootstrap.
    ///   - startedAt: when the agent started; `onFirstReady` receives the time from then to the first
    ///     ready answer (`istio_agent_startup_duration_seconds`).
    public init(
        admin: EnvoyAdminClient,
        expectedListeners: Int,
        shutdown: ShutdownFlag,
        startedAt: ContinuousClock.Instant = .now,
        onFirstReady: @escaping @Sendable (Duration) -> Void = { _ in }
    ) {
        self.admin = admin
        self.expectedListeners = expectedListeners
        self.shutdown = shutdown
        self.startedAt = startedAt
        self.onFirstReady = onFirstReady
    }

    public func check() async -> ReadinessResult {
        if shutdown.isSet {
            return .notReady(reason: "server is terminated")
        }
        if becameReady.withLock({ $0 }) {
            return .ready
        }
        let stats: [String: Int64]
        do {
            stats = try await admin.stats(filter: Self.statsFilter, usedOnly: true)
        } catch {
            return .notReady(reason: "failed to get readiness stats: \(error)")
        }
        let result = Self.evaluate(stats, expectedListeners: expectedListeners)
        if result == .ready {
            becameReady.withLock { $0 = true }
            let first = startupRecorded.withLock { recorded in
                defer { recorded = true }
                return !recorded
            }
            if first { onFirstReady(ContinuousClock.now - startedAt) }
        }
        return result
    }

    /// Forgets the cached live-ness, for when the agent restarts the data plane (`--restart-proxy`):
    /// the new process must become live again before the pod is ready.
    public func resetLiveness() {
        becameReady.withLock { $0 = false }
    }

    static func evaluate(_ stats: [String: Int64], expectedListeners: Int) -> ReadinessResult {
        guard let state = stats["server.state"], let workersStarted = stats["listener_manager.workers_started"] else {
            return .notReady(reason: "server.state or listener_manager.workers_started stat missing: the data plane is still starting")
        }
        guard state == 0 else {
            return .notReady(reason: "server is not live, current state is: \(serverStateName(state))")
        }
        guard workersStarted == 1 else {
            return .notReady(reason: "workers have not yet started")
        }
        let active = stats["listener_manager.total_listeners_active"] ?? 0
        guard active >= Int64(expectedListeners) else {
            return .notReady(reason: "\(active) of \(expectedListeners) static listeners active (listener_manager.total_listeners_active)")
        }
        return .ready
    }

    static func serverStateName(_ state: Int64) -> String {
        switch state {
        case 0: return "LIVE"
        case 1: return "DRAINING"
        case 2: return "PRE_INITIALIZING"
        case 3: return "INITIALIZING"
        default: return "UNKNOWN (\(state))"
        }
    }
}
