import AgentHTTP
import Capture
import DataPlaneConfig
import Forwarding
import Logging
import NIOCore
import NIOPosix
import ProxyStats
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The running sluice-proxy: the forwarding engine (15001/15006), the HTTP listeners (15090/15021),
/// the admin API, server stats, drains and shutdown. It is the `ProxyControl` the admin API drives.
public final class ProxyServer: ProxyControl {
    public let bootstrap: ProxyBootstrap
    public let commandLine: ProxyCommandLine
    public let stats: StatsStore
    public let logLevels: ProxyLogLevels
    public let startTime = WallClockTime.now()

    private let engine: ForwardingEngine
    private let group: MultiThreadedEventLoopGroup
    private let logger = Logger(label: "main")
    private let serverStats: ServerStats
    private let mutable = Mutex(MutableState())
    private let stopRequested = ShutdownRequest()

    private struct MutableState {
        var state: ServerState = .initializing
        var healthCheckFailed = false
        var httpListeners: [HTTPRouteListener] = []
        var admin: HTTPServer?
        var gracefullyDraining: Set<String> = []
        var drainTasks: [Task<Void, Never>] = []
    }

    private init(
        bootstrap: ProxyBootstrap, commandLine: ProxyCommandLine, stats: StatsStore,
        logLevels: ProxyLogLevels, engine: ForwardingEngine, group: MultiThreadedEventLoopGroup
    ) {
        self.bootstrap = bootstrap
        self.commandLine = commandLine
        self.stats = stats
        self.logLevels = logLevels
        self.engine = engine
        self.group = group
        self.serverStats = ServerStats(store: stats)
    }

    public var state: ServerState { mutable.withLock { $0.state } }
    public var healthCheckFailed: Bool { mutable.withLock { $0.healthCheckFailed } }

    public func setHealthCheckFailed(_ failed: Bool) {
        mutable.withLock { $0.healthCheckFailed = failed }
        serverStats.update(state: reportedState)
    }

    /// Binds every listener, starts the workers and the admin API, and turns LIVE. Throws a
    /// `ProxyStartError` naming what could not start; whatever had started is stopped again.
    public static func start(
        bootstrap: ProxyBootstrap, commandLine: ProxyCommandLine, plan: ProxyPlan, logLevels: ProxyLogLevels
    ) async throws(ProxyStartError) -> ProxyServer {
        let stats = StatsStore(inclusion: plan.statsInclusion, tagExtractors: plan.tagExtractors)
        let engine: ForwardingEngine
        do {
            engine = try ForwardingEngine(configuration: plan.forwarding, stats: stats, logger: Logger(label: "connection"))
            try engine.start()
        } catch {
            throw ProxyStartError(error.message)
        }
        // Admin and the HTTP listeners are light: one event loop serves them, as Envoy's main thread does.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = ProxyServer(
            bootstrap: bootstrap, commandLine: commandLine, stats: stats, logLevels: logLevels,
            engine: engine, group: group)
        do {
            for listener in plan.httpListeners {
                let started = try await HTTPRouteListener.start(
                    listener: listener, bootstrap: bootstrap, stats: stats, group: group,
                    isDraining: { [weak server] in server?.isDraining(listener: listener.name) ?? true })
                server.mutable.withLock { $0.httpListeners.append(started) }
            }
            if let address = plan.adminAddress {
                let admin = AdminAPI(control: server)
                let http = try await HTTPServer.start(host: address.address.description, port: Int(address.port), group: group) { request in
                    await admin.handle(request)
                }
                server.mutable.withLock { $0.admin = http }
            }
        } catch {
            await server.stopEverything()
            throw ProxyStartError("\(error)")
        }
        server.serverStats.started(
            workers: plan.forwarding.workers, listeners: bootstrap.listeners.count, clusters: bootstrap.clusters.count)
        server.mutable.withLock { $0.state = .live }
        server.serverStats.update(state: server.reportedState)
        server.logger.info("sluice-proxy is LIVE: \(bootstrap.listeners.count) listeners, \(plan.forwarding.workers) workers")
        return server
    }

    /// Serves until `/quitquitquit` or `requestStop()` (SIGTERM/SIGINT), then stops everything.
    public func run() async {
        let refresher = Task { [serverStats, engine, startTime] in
            while !Task.isCancelled {
                serverStats.refresh(uptimeSince: startTime, connections: engine.activeConnections)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await stopRequested.wait()
        refresher.cancel()
        logger.info("shutting down")
        await stopEverything()
    }

    /// Called from the signal thread (SIGTERM, SIGINT): the same clean stop as `/quitquitquit`.
    public func requestStop() {
        stopRequested.signal()
    }

    public func quit() async {
        stopRequested.signal()
    }

    public func listenerStatuses() -> [ListenerStatus] {
        let forwarded = Dictionary(engine.boundAddresses.map { ($0.listener, $0.addresses) }, uniquingKeysWith: { first, _ in first })
        let http = mutable.withLock { state in
            Dictionary(state.httpListeners.map { ($0.name, $0.boundAddresses) }, uniquingKeysWith: { first, _ in first })
        }
        return bootstrap.listeners.map { listener in
            ListenerStatus(name: listener.name, addresses: forwarded[listener.name] ?? http[listener.name] ?? listener.addresses)
        }
    }

    /// Static clusters with the per-host counters of the HTTP listeners that route to them (a cluster
    /// served by two listeners sums both). ORIGINAL_DST clusters list no hosts: Envoy shows the
    /// destinations it holds hosts for, sluice-proxy keeps none per destination; their totals are in
    /// `/stats` under `cluster.<name>.`.
    public func clusterStatuses() -> [ClusterStatus] {
        let perListener = mutable.withLock { $0.httpListeners.map { $0.hostStatuses() } }
        return bootstrap.clusters.map { cluster in
            var status = ClusterStatus(cluster)
            status.hosts = status.hosts.map { host in
                var merged = host
                for statuses in perListener {
                    if let seen = statuses[cluster.name], seen.address == host.address { merged.stats = merged.stats + seen.stats }
                }
                return merged
            }
            return status
        }
    }

    // MARK: - Drains

    public func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async {
        let selected = bootstrap.listeners.filter { !inboundOnly || $0.direction == .inbound }
        let names = Set(selected.map(\.name))
        logger.info("draining \(names.isEmpty ? "no" : names.sorted().joined(separator: ", ")) listeners (graceful: \(graceful), skip_exit: \(skipExit))")
        guard graceful else {
            stopListeners(names)
            return
        }
        // Envoy's graceful drain: the listeners keep accepting for the drain time (so connections
        // that arrive while endpoints are still being removed are served), HTTP answers carry
        // `Connection: close`; then, unless skip_exit, the listeners stop and what is still open is
        // closed.
        mutable.withLock { $0.gracefullyDraining.formUnion(names) }
        guard !skipExit else { return }
        let drainTime = commandLine.drainTime
        let task = Task { [weak self] in
            try? await Task.sleep(for: drainTime)
            guard let self, !Task.isCancelled else { return }
            self.logger.info("drain time \(drainTime) over: closing \(names.sorted().joined(separator: ", "))")
            self.stopListeners(names)
            self.engine.closeConnections { names.contains($0.name) }
        }
        mutable.withLock { $0.drainTasks.append(task) }
    }

    func isDraining(listener name: String) -> Bool {
        mutable.withLock { $0.gracefullyDraining.contains(name) }
    }

    private func stopListeners(_ names: Set<String>) {
        let activeBefore = acceptingListenerCount
        engine.stopAccepting { names.contains($0.name) }
        let http = mutable.withLock { state in state.httpListeners.filter { names.contains($0.name) } }
        for listener in http { listener.stopAccepting() }
        let activeAfter = acceptingListenerCount
        serverStats.listenersStopped(activeAfter, stopped: activeBefore - activeAfter)
    }

    private var acceptingListenerCount: Int {
        engine.acceptingListeners.count + mutable.withLock { $0.httpListeners.filter(\.isAccepting).count }
    }

    // MARK: - Stopping

    private func stopEverything() async {
        let (admin, http, drains) = mutable.withLock { state in
            defer {
                state.admin = nil
                state.httpListeners.removeAll()
                state.drainTasks.removeAll()
            }
            return (state.admin, state.httpListeners, state.drainTasks)
        }
        for task in drains { task.cancel() }
        engine.shutdown()
        for listener in http { await listener.close() }
        await admin?.close()
        try? await group.shutdownGracefully()
    }
}

public struct ProxyStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }
}

/// A one-shot "stop now" that any thread may signal and one task awaits.
final class ShutdownRequest: Sendable {
    private let state = Mutex<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.signalled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.signalled { return true }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
