import AgentHTTP
import Testing

/// An Envoy-style admin API for tests: records requests, answers `/stats` with `statsText`
/// (nil → 500), `/stats/prometheus` with `prometheusBody`, and the POST endpoints with `OK`.
final class FakeAdmin: Sendable {
    let server: HTTPServer
    let requests: Recorder<HTTPRequest>
    let statsText: Shared<String?>
    let prometheusBody: Shared<String>

    var port: Int { server.port }

    private init(server: HTTPServer, requests: Recorder<HTTPRequest>, statsText: Shared<String?>, prometheusBody: Shared<String>) {
        self.server = server
        self.requests = requests
        self.statsText = statsText
        self.prometheusBody = prometheusBody
    }

    static func start(stats: String? = "") async throws -> FakeAdmin {
        let requests = Recorder<HTTPRequest>()
        let statsText = Shared<String?>(stats)
        let prometheusBody = Shared("envoy_cluster_upstream_cx_total{cluster=\"a\"} 3\n")
        let server = try await startServer { request in
            requests.append(request)
            switch (request.method, request.path) {
            case ("GET", "/stats"):
                guard let text = statsText.value else { return .text(500, "stats unavailable") }
                return .text(200, text)
            case ("GET", "/stats/prometheus"):
                return HTTPResponse(
                    status: 200, headers: ["Content-Type": "text/plain; version=0.0.4"],
                    body: Array(prometheusBody.value.utf8))
            case ("POST", "/drain_listeners"), ("POST", "/quitquitquit"):
                return .text(200, "OK\n")
            default:
                return .text(404, "unknown path \(request.path)")
            }
        }
        return FakeAdmin(server: server, requests: requests, statsText: statsText, prometheusBody: prometheusBody)
    }

    func client(timeout: Duration = .seconds(2)) -> EnvoyAdminClient {
        EnvoyAdminClient(host: "127.0.0.1", port: port, group: testGroup, timeout: timeout)
    }

    func close() async {
        await server.close()
    }
}

@Suite("Envoy admin client")
struct EnvoyAdminClientTests {
    @Test(arguments: [
        (true, true, true, "/drain_listeners?inboundonly&graceful&skip_exit"),
        (true, true, false, "/drain_listeners?inboundonly&graceful"),
        (false, true, false, "/drain_listeners?graceful"),
        (false, false, false, "/drain_listeners"),
        (false, false, true, "/drain_listeners?skip_exit"),
    ])
    func drainListenersSendsOnlyTheChosenFlags(inboundOnly: Bool, graceful: Bool, skipExit: Bool, expected: String) async throws {
        let admin = try await FakeAdmin.start()
        defer { Task { await admin.close() } }
        try await admin.client().drainListeners(inboundOnly: inboundOnly, graceful: graceful, skipExit: skipExit)
        let request = try #require(admin.requests.values.last)
        #expect(request.method == "POST")
        #expect(request.target == expected)
    }

    @Test func quitQuitQuitPosts() async throws {
        let admin = try await FakeAdmin.start()
        defer { Task { await admin.close() } }
        try await admin.client().quitQuitQuit()
        #expect(admin.requests.values.map { "\($0.method) \($0.target)" } == ["POST /quitquitquit"])
    }

    @Test func statsSendsTheRegexIntactAndParsesIntegers() async throws {
        let admin = try await FakeAdmin.start(stats: """
            server.state: 0
            listener_manager.workers_started: 1
            server.state: 7
            cluster.x.upstream_rq_time: P0(nan,1.0) P25(nan,1.05)
            server.version_label: 1.2.3-dev
            listener_manager.total_listeners_active: 4

            """)
        defer { Task { await admin.close() } }
        let regex = #"^(server\.state|listener_manager\.workers_started)$ a+b"#
        let stats = try await admin.client().stats(filter: regex, usedOnly: true)
        #expect(stats == [
            "server.state": 0, "listener_manager.workers_started": 1, "listener_manager.total_listeners_active": 4,
        ])
        let request = try #require(admin.requests.values.last)
        let query = PercentEncoding.queryItems(request.query ?? "")
        #expect(query.map(\.name) == ["usedonly", "filter"])
        #expect(query.last?.value == regex)
    }

    @Test func statsWithoutUsedOnly() async throws {
        let admin = try await FakeAdmin.start(stats: "a: 1\n")
        defer { Task { await admin.close() } }
        _ = try await admin.client().stats(filter: "a", usedOnly: false)
        #expect(admin.requests.values.last?.target == "/stats?filter=a")
    }

    @Test func non2xxIsAnError() async throws {
        let admin = try await FakeAdmin.start(stats: nil)
        defer { Task { await admin.close() } }
        await #expect(throws: EnvoyAdminError.unexpectedStatus(
            path: "/stats?usedonly&filter=x", status: 500, body: "stats unavailable")) {
            try await admin.client().stats(filter: "x")
        }
    }

    @Test func unreachableAdminIsARequestError() async throws {
        let port = try await closedPort()
        let client = EnvoyAdminClient(host: "127.0.0.1", port: port, group: testGroup)
        await #expect(throws: EnvoyAdminError.request(.connectionRefused(address: "127.0.0.1:\(port)"))) {
            try await client.quitQuitQuit()
        }
    }

    static let connectionStats = """
        listener.0.0.0.0_15006.downstream_cx_active: 3
        listener.0.0.0.0_15006.worker_0.downstream_cx_active: 2
        listener.0.0.0.0_15006.worker_1.downstream_cx_active: 1
        listener.0.0.0.0_15001.downstream_cx_active: 2
        listener.[__]_15006.downstream_cx_active: 4
        listener.0.0.0.0_15021.downstream_cx_active: 5
        listener.0.0.0.0_15090.downstream_cx_active: 6
        listener.admin.downstream_cx_active: 1
        listener.admin.main_thread.downstream_cx_active: 1
        listener.envoy_internal_connect_originate.downstream_cx_active: 7
        http.inbound_0.0.0.0_8080.downstream_cx_active: 9

        """

    @Test func activeConnectionsSkipWorkersInternalAdminAndExcludedPorts() async throws {
        let admin = try await FakeAdmin.start(stats: Self.connectionStats)
        defer { Task { await admin.close() } }
        let active = try await admin.client().activeDownstreamConnections(excludingPorts: [15021, 15090])
        #expect(active == 3 + 2 + 4)
        let query = PercentEncoding.queryItems(admin.requests.values.last?.query ?? "")
        #expect(query.map(\.name) == ["usedonly", "filter"])
        #expect(query.last?.value == "downstream_cx_active$")
    }

    @Test func activeConnectionsAreNilWhenTheStatIsMissing() {
        #expect(EnvoyStatsText.activeDownstreamConnections(in: "server.state: 0\n", excludingPorts: []) == nil)
        #expect(EnvoyStatsText.activeDownstreamConnections(in: "listener.admin.downstream_cx_active: 1\n", excludingPorts: []) == 0)
    }

    @Test func prometheusTextFromAnotherPortAsksForText() async throws {
        let stats = try await FakeAdmin.start()
        defer { Task { await stats.close() } }
        let client = EnvoyAdminClient(host: "127.0.0.1", port: 1, group: testGroup)
        let (contentType, body) = try await client.prometheusText(port: stats.port, query: "usedonly")
        #expect(contentType == "text/plain; version=0.0.4")
        #expect(String(decoding: body, as: UTF8.self) == stats.prometheusBody.value)
        let request = try #require(stats.requests.values.last)
        #expect(request.target == "/stats/prometheus?usedonly")
        #expect(request.headers["Accept"] == "text/plain")
    }
}
