import AgentHTTP
import Logging
import StatusServer
import Testing

let liveStats = """
    server.state: 0
    listener_manager.workers_started: 1
    listener_manager.total_listeners_active: 4

    """

/// A check with a scripted answer, to test the ordering of `/healthz/ready`.
struct ScriptedCheck: ReadinessCheck {
    let name: String
    let result: Shared<ReadinessResult>
    let calls = Recorder<Int>()

    init(name: String, _ result: ReadinessResult) {
        self.name = name
        self.result = Shared(result)
    }

    func check() async -> ReadinessResult {
        calls.append(1)
        return result.value
    }
}

func makeRoutes(
    checks: [any ReadinessCheck] = [], shutdown: ShutdownFlag = ShutdownFlag(), logger: Logger = Logger(label: "test"),
    metricsMerge: MetricsMergeConfiguration? = nil, metricsLocalhostOnly: Bool = false, prober: ApplicationProber? = nil,
    quit: @escaping @Sendable () async -> Void = {}, drain: @escaping @Sendable () async -> Void = {},
    metrics: AgentMetrics = AgentMetrics(buildTag: "test"), nameTableJSON: (@Sendable () -> String?)? = nil
) -> StatusRoutes {
    StatusRoutes(
        configuration: StatusServerConfiguration(
            readinessChecks: checks, metrics: metrics, metricsMerge: metricsMerge,
            metricsLocalhostOnly: metricsLocalhostOnly, prober: prober, shutdown: shutdown, quit: quit, drain: drain,
            nameTableJSON: nameTableJSON),
        group: testGroup, logger: logger)
}

@Suite("Readiness")
struct ReadinessTests {
    @Test func dataPlaneNotUpIsNotReady() async throws {
        let port = try await closedPort()
        let readiness = DataPlaneReadiness(
            admin: EnvoyAdminClient(host: "127.0.0.1", port: port, group: testGroup), expectedListeners: 2,
            shutdown: ShutdownFlag())
        guard case .notReady(let reason) = await readiness.check() else {
            Issue.record("ready without a data plane")
            return
        }
        #expect(reason.hasPrefix("failed to get readiness stats:"))
        #expect(reason.contains("refused"))
    }

    @Test func transitionsFromStartingToLiveAndCachesLiveness() async throws {
        let admin = try await FakeAdmin.start(stats: "server.state: 3\nlistener_manager.workers_started: 0\n")
        defer { Task { await admin.close() } }
        let startups = Recorder<Duration>()
        let readiness = DataPlaneReadiness(
            admin: admin.client(), expectedListeners: 4, shutdown: ShutdownFlag(),
            startedAt: .now - .seconds(2), onFirstReady: { startups.append($0) })

        #expect(await readiness.check() == .notReady(reason: "server is not live, current state is: INITIALIZING"))
        admin.statsText.value = "server.state: 0\nlistener_manager.workers_started: 0\n"
        #expect(await readiness.check() == .notReady(reason: "workers have not yet started"))
        admin.statsText.value = "server.state: 0\nlistener_manager.workers_started: 1\nlistener_manager.total_listeners_active: 3\n"
        #expect(await readiness.check() == .notReady(
            reason: "3 of 4 static listeners active (listener_manager.total_listeners_active)"))
        #expect(startups.count == 0)

        admin.statsText.value = liveStats
        #expect(await readiness.check() == .ready)
        #expect(startups.count == 1)
        #expect(try #require(startups.values.first) >= .seconds(2))

        // Cached: a later stats failure does not flap readiness, and startup is recorded once.
        admin.statsText.value = nil
        let requestsBefore = admin.requests.count
        #expect(await readiness.check() == .ready)
        #expect(admin.requests.count == requestsBefore)
        #expect(startups.count == 1)

        // A restarted data plane must become live again; the startup duration stays the first one.
        readiness.resetLiveness()
        guard case .notReady = await readiness.check() else {
            Issue.record("ready from the cache after a reset")
            return
        }
        admin.statsText.value = liveStats
        #expect(await readiness.check() == .ready)
        #expect(startups.count == 1)
    }

    @Test func missingStatsAreNotReady() async throws {
        let admin = try await FakeAdmin.start(stats: "server.state: 0\n")
        defer { Task { await admin.close() } }
        let readiness = DataPlaneReadiness(admin: admin.client(), expectedListeners: 1, shutdown: ShutdownFlag())
        guard case .notReady(let reason) = await readiness.check() else {
            Issue.record("ready without workers_started")
            return
        }
        #expect(reason.contains("listener_manager.workers_started"))
    }

    @Test func terminatedOnceShutdownStarts() async throws {
        let admin = try await FakeAdmin.start(stats: liveStats)
        defer { Task { await admin.close() } }
        let shutdown = ShutdownFlag()
        let readiness = DataPlaneReadiness(admin: admin.client(), expectedListeners: 4, shutdown: shutdown)
        #expect(await readiness.check() == .ready)
        shutdown.set()
        #expect(await readiness.check() == .notReady(reason: "server is terminated"))
    }

    @Test func healthzRunsChecksInOrderAndLogsTransitions() async throws {
        let logs = CapturedLogs()
        let first = ScriptedCheck(name: "first", .notReady(reason: "first is down"))
        let second = ScriptedCheck(name: "second", .notReady(reason: "second is down"))
        let routes = makeRoutes(checks: [first, second], logger: logs.logger)

        var response = await routes.respond(to: HTTPRequest(target: "/healthz/ready"))
        #expect(response.status == 503)
        #expect(response.bodyText == "first is down")
        #expect(second.calls.count == 0)
        _ = await routes.respond(to: HTTPRequest(target: "/healthz/ready"))

        first.result.value = .ready
        response = await routes.respond(to: HTTPRequest(target: "/healthz/ready"))
        #expect(response.status == 503)
        #expect(response.bodyText == "second is down")

        second.result.value = .ready
        response = await routes.respond(to: HTTPRequest(target: "/healthz/ready"))
        #expect(response.status == 200)
        _ = await routes.respond(to: HTTPRequest(target: "/healthz/ready"))

        #expect(logs.messages.values == [
            "warning: Envoy proxy is NOT ready: first is down",
            "warning: Envoy proxy is NOT ready: second is down",
            "info: Envoy proxy is ready",
        ])
    }

    @Test func healthzAgainstALiveDataPlaneOverHTTP() async throws {
        let admin = try await FakeAdmin.start(stats: "server.state: 2\nlistener_manager.workers_started: 0\n")
        defer { Task { await admin.close() } }
        let shutdown = ShutdownFlag()
        let metrics = AgentMetrics(buildTag: "1.0-test")
        let readiness = DataPlaneReadiness(
            admin: admin.client(), expectedListeners: 4, shutdown: shutdown,
            onFirstReady: { metrics.recordStartupDuration($0) })
        let server = try await StatusServer.start(
            host: "127.0.0.1", port: 0,
            configuration: StatusServerConfiguration(
                readinessChecks: [readiness], metrics: metrics, shutdown: shutdown, quit: {}, drain: {}),
            group: testGroup, logger: Logger(label: "test"))
        defer { Task { await server.close() } }
        let probe = HTTPClientRequest(host: "127.0.0.1", port: server.port, target: "/healthz/ready")

        var response = try await HTTPClient.send(probe, group: testGroup)
        #expect(response.status == 503)
        #expect(response.bodyText == "server is not live, current state is: PRE_INITIALIZING")

        admin.statsText.value = liveStats
        response = try await HTTPClient.send(probe, group: testGroup)
        #expect(response.status == 200)
        let scrape = metrics.render()
        #expect(scrape.contains("istio_agent_startup_duration_seconds "))
        #expect(!scrape.contains("istio_agent_startup_duration_seconds 0\n"))

        shutdown.set()
        response = try await HTTPClient.send(probe, group: testGroup)
        #expect(response.status == 503)
        #expect(response.bodyText == "server is terminated")
    }
}
