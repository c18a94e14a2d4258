import AgentHTTP
import Logging
import NIOCore
import Synchronization

/// What the status server serves; the agent maps its configuration onto this.
public struct StatusServerConfiguration: Sendable {
    /// Run in order by `/healthz/ready`; the first failure is the answer.
    public var readinessChecks: [any ReadinessCheck]
    public var metrics: AgentMetrics
    /// Nil disables merging: `/stats/prometheus` then serves the agent's metrics only.
    public var metricsMerge: MetricsMergeConfiguration?
    /// `METRICS_LOCALHOST_ACCESS_ONLY`.
    public var metricsLocalhostOnly: Bool
    public var prober: ApplicationProber?
    public var shutdown: ShutdownFlag
    /// `POST /quitquitquit`: the agent stops the data plane at once and exits 0.
    public var quit: @Sendable () async -> Void
    /// `POST /drain`: the agent drains the data plane's listeners (`inboundonly&graceful&skip_exit`).
    public var drain: @Sendable () async -> Void
    /// `GET /debug/ndsz`: the DNS proxy's name table as JSON, nil before the first one; absent when the
    /// DNS proxy is off.
    public var nameTableJSON: (@Sendable () -> String?)?

    public init(
        readinessChecks: [any ReadinessCheck],
        metrics: AgentMetrics,
        metricsMerge: MetricsMergeConfiguration? = nil,
        metricsLocalhostOnly: Bool = false,
        prober: ApplicationProber? = nil,
        shutdown: ShutdownFlag,
        quit: @escaping @Sendable () async -> Void,
        drain: @escaping @Sendable () async -> Void,
        nameTableJSON: (@Sendable () -> String?)? = nil
    ) {
        self.nameTableJSON = nameTableJSON
        self.readinessChecks = readinessChecks
        self.metrics = metrics
        self.metricsMerge = metricsMerge
        self.metricsLocalhostOnly = metricsLocalhostOnly
        self.prober = prober
        self.shutdown = shutdown
        self.quit = quit
        self.drain = drain
    }
}

/// The 15020 endpoints of STATUS.md §2, as a function from request to response (tests call it directly).
public final class StatusRoutes: Sendable {
    private let configuration: StatusServerConfiguration
    private let merger: MetricsMerger
    private let logger: Logger
    /// The last readiness answer, so transitions are logged once rather than on every kubelet probe.
    private let lastReadiness = Mutex<ReadinessResult?>(nil)

    public init(configuration: StatusServerConfiguration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        merger = MetricsMerger(
            configuration: configuration.metricsMerge ?? MetricsMergeConfiguration(dataPlanePrometheusPort: nil),
            metrics: configuration.metrics, group: group, logger: logger)
    }

    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        switch path {
        case "/healthz/ready":
            return await readiness()
        case "/stats/prometheus", "/metrics":
            if configuration.metricsLocalhostOnly, !request.isFromLoopback {
                return .text(403, "metrics are served only to localhost\n")
            }
            return await merger.scrape(request)
        case "/quitquitquit":
            return await localPost(request) {
                logger.info("received /quitquitquit: stopping the data plane and exiting")
                configuration.shutdown.set()
                await configuration.quit()
            }
        case "/drain":
            return await localPost(request) {
                logger.info("received /drain: draining the data plane's listeners")
                await configuration.drain()
            }
        case "/debug/ndsz":
            guard request.isFromLoopback else { return .text(403, "only requests from localhost are allowed\n") }
            // Istio's answers: 404 with DNS off, `{}` before the first table.
            guard let nameTableJSON = configuration.nameTableJSON else {
                return HTTPResponse(status: 404, headers: ["Content-Type": "application/json"], body: Array("{}".utf8))
            }
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: Array((nameTableJSON() ?? "{}").utf8))
        default:
            if path.hasPrefix("/app-health/") || path.hasPrefix("/app-lifecycle/") {
                guard let prober = configuration.prober else {
                    return .text(400, "app prober config does not exists for \(path)")
                }
                return await prober.respond(to: request)
            }
            return .text(404, "404 page not found\n")
        }
    }

    /// Istio's guards for the lifecycle endpoints: POST only (405), from localhost only (403).
    private func localPost(_ request: HTTPRequest, _ action: () async -> Void) async -> HTTPResponse {
        guard request.method.uppercased() == "POST" else {
            return .text(405, "method \(request.method) not allowed: use POST\n")
        }
        guard request.isFromLoopback else {
            logger.error("rejected \(request.path) from \(request.remoteAddress ?? "an unknown address"): only localhost may call it")
            return .text(403, "only requests from localhost are allowed\n")
        }
        await action()
        return .text(200, "OK")
    }

    private func readiness() async -> HTTPResponse {
        let result = await currentReadiness()
        let previous = lastReadiness.withLock { last in
            defer { last = result }
            return last
        }
        switch result {
        case .ready:
            if previous != .ready { logger.info("Envoy proxy is ready") }
            return HTTPResponse(status: 200)
        case .notReady(let reason):
            if previous != result { logger.warning("Envoy proxy is NOT ready: \(reason)") }
            return .text(503, reason)
        }
    }

    private func currentReadiness() async -> ReadinessResult {
        if configuration.shutdown.isSet {
            return .notReady(reason: "server is terminated")
        }
        for check in configuration.readinessChecks {
            let result = await check.check()
            if case .notReady = result { return result }
        }
        return .ready
    }
}

/// The status server on 15020: `StatusRoutes` behind an `HTTPServer`.
public final class StatusServer: Sendable {
    public let routes: StatusRoutes
    private let server: HTTPServer

    public var port: Int { server.port }
    public var localAddress: String { server.localAddress }

    private init(routes: StatusRoutes, server: HTTPServer) {
        self.routes = routes
        self.server = server
    }

    /// Istio listens on all interfaces (`:15020`): the kubelet reaches it through Envoy's 15021 and,
    /// for rewritten application probes, directly at the pod IP.
    public static func start(
        host: String = "0.0.0.0", port: Int = 15020, configuration: StatusServerConfiguration,
        group: any EventLoopGroup, logger: Logger
    ) async throws(HTTPServerError) -> StatusServer {
        let routes = StatusRoutes(configuration: configuration, group: group, logger: logger)
        let server = try await HTTPServer.start(host: host, port: port, group: group) { request in
            await routes.respond(to: request)
        }
        return StatusServer(routes: routes, server: server)
    }

    /// Istio closes the status listener as soon as shutdown starts, before the data plane drains, so
    /// 15021 readiness fails and `/quitquitquit` is no longer reachable.
    public func close() async {
        await server.close()
    }
}
