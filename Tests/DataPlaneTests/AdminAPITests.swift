import AgentHTTP
import Capture
import ConfigFormats
@testable import DataPlane
import DataPlaneConfig
import ProxyStats
import Synchronization
import Testing

/// A proxy to drive the admin API against: every value settable, every call recorded.
final class FakeProxyControl: ProxyControl {
    struct DrainCall: Equatable {
        var inboundOnly: Bool
        var graceful: Bool
        var skipExit: Bool
    }

    struct State {
        var state: ServerState = .live
        var healthCheckFailed = false
        var drains: [DrainCall] = []
        var quits = 0
        var listeners: [ListenerStatus] = []
        var clusters: [ClusterStatus] = []
    }

    let bootstrap: ProxyBootstrap
    let commandLine: ProxyCommandLine
    let stats: StatsStore
    let logLevels: ProxyLogLevels
    let startTime: WallClockTime
    let mutable = Mutex(State())

    init(bootstrap: ProxyBootstrap, commandLine: ProxyCommandLine = ProxyCommandLine(), startTime: WallClockTime = WallClockTime(seconds: 1_709_618_828)) throws {
        self.bootstrap = bootstrap
        self.commandLine = commandLine
        stats = StatsStore()
        logLevels = try ProxyLogLevels(commandLine: commandLine)
        self.startTime = startTime
    }

    var state: ServerState {
        get { mutable.withLock { $0.state } }
        set { mutable.withLock { $0.state = newValue } }
    }

    var healthCheckFailed: Bool { mutable.withLock { $0.healthCheckFailed } }
    func setHealthCheckFailed(_ failed: Bool) { mutable.withLock { $0.healthCheckFailed = failed } }
    func listenerStatuses() -> [ListenerStatus] { mutable.withLock { $0.listeners } }
    func clusterStatuses() -> [ClusterStatus] { mutable.withLock { $0.clusters } }

    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async {
        mutable.withLock { $0.drains.append(DrainCall(inboundOnly: inboundOnly, graceful: graceful, skipExit: skipExit)) }
    }

    func quit() async {
        mutable.withLock { $0.quits += 1 }
    }
}

/// A small bootstrap with each kind of cluster and listener the agent writes.
let adminTestBootstrapJSON = """
{
  "node": {"id": "sidecar~10.1.2.3~app.default~default.svc.cluster.local", "cluster": "app.default",
           "metadata": {"NAMESPACE": "default"}},
  "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
  "static_resources": {
    "clusters": [
      {"name": "prometheus_stats", "alt_stat_name": "prometheus_stats;", "type": "STATIC", "connect_timeout": "0.250s",
       "lb_policy": "ROUND_ROBIN",
       "load_assignment": {"cluster_name": "prometheus_stats", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
         {"socket_address": {"protocol": "TCP", "address": "127.0.0.1", "port_value": 15000}}}}]}]}},
      {"name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
       "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
         {"pipe": {"path": "./var/run/secrets/workload-spiffe-uds/socket"}}}}]}]}},
      {"name": "PassthroughCluster", "alt_stat_name": "PassthroughCluster;", "type": "ORIGINAL_DST", "connect_timeout": "10s",
       "lb_policy": "CLUSTER_PROVIDED",
       "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
         "max_requests": 4294967295, "max_retries": 4294967295, "track_remaining": true}]}}
    ],
    "listeners": [
      {"name": "0.0.0.0_15090", "address": {"socket_address": {"protocol": "TCP", "address": "0.0.0.0", "port_value": 15090}},
       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
         "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
         "stat_prefix": "stats",
         "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"],
           "routes": [{"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": "prometheus_stats"}}]}]},
         "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
           {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]},
      {"name": "virtualOutbound", "address": {"socket_address": {"protocol": "TCP", "address": "0.0.0.0", "port_value": 15001}},
       "additional_addresses": [{"address": {"socket_address": {"protocol": "TCP", "address": "::", "port_value": 15001}}}],
       "listener_filters": [{"name": "envoy.filters.listener.original_dst", "typed_config":
         {"@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}],
       "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
         "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
         "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster"}}]}],
       "traffic_direction": "OUTBOUND"}
    ]
  }
}
"""

func parseBootstrap(_ json: String) throws -> ProxyBootstrap {
    try ProxyBootstrap.parse(try JSONValue.parse(json: json))
}

func get(_ admin: AdminAPI, _ target: String) async -> HTTPResponse {
    await admin.handle(HTTPRequest(method: "GET", target: target))
}

func post(_ admin: AdminAPI, _ target: String) async -> HTTPResponse {
    await admin.handle(HTTPRequest(method: "POST", target: target))
}

func parsedJSON(_ response: HTTPResponse) throws -> JSONValue {
    try JSONValue.parse(json: response.bodyText)
}

@Suite("Admin API")
struct AdminAPITests {
    let control: FakeProxyControl
    let admin: AdminAPI

    init() throws {
        let commandLine = try ProxyCommandLine.parse([
            "-c", "/etc/istio/proxy/envoy-rev.json", "--drain-time-s", "45", "--drain-strategy", "immediate",
            "--local-address-ip-version", "v4", "-l", "warning", "--component-log-level", "misc:error",
            "--concurrency", "2",
        ])
        control = try FakeProxyControl(bootstrap: try parseBootstrap(adminTestBootstrapJSON), commandLine: commandLine)
        control.mutable.withLock { state in
            state.listeners = [
                ListenerStatus(name: "0.0.0.0_15090", addresses: ["0.0.0.0:15090"]),
                ListenerStatus(name: "virtualOutbound", addresses: ["0.0.0.0:15001", "[::]:15001"]),
            ]
            var stats = HostStats(connectionsActive: 2, connectionsTotal: 7, requestsTotal: 5)
            stats.connectionsConnectFailed = 1
            state.clusters = [
                ClusterStatus(name: "prometheus_stats", observabilityName: "prometheus_stats;", hosts: [
                    HostStatus(address: .socket("127.0.0.1:15000"), stats: stats),
                ]),
                ClusterStatus(name: "PassthroughCluster", observabilityName: "PassthroughCluster;"),
            ]
        }
        // 42 s after the fake's start time.
        admin = AdminAPI(
            control: control, version: "abc/1.0.0/Clean/RELEASE/none", quitDelay: .milliseconds(10),
            clock: { WallClockTime(seconds: 1_709_618_870, nanoseconds: 5) })
    }

    // MARK: - Common behaviour

    @Test func unknownPathIs404WithTheHelpText() async {
        let response = await get(admin, "/nope")
        #expect(response.status == 404)
        #expect(response.bodyText.hasPrefix("invalid path. admin commands are:\n"))
        #expect(response.bodyText.contains("  /quitquitquit (POST): exit the server\n"))
        #expect(response.headers["Content-Type"] == "text/plain; charset=UTF-8")
    }

    @Test func helpListsEndpointsInPathOrderWithPostMarks() async {
        for target in ["/help", "/"] {
            let response = await get(admin, target)
            #expect(response.status == 200)
            let lines = response.bodyText.split(separator: "\n").filter { $0.hasPrefix("  /") }
            let paths = lines.map { $0.dropFirst(2).prefix { $0 != ":" && $0 != " " } }
            #expect(paths == paths.sorted())
            #expect(lines.contains("  /drain_listeners (POST): drain listeners"))
            #expect(lines.contains("  /ready: print server state, return 200 if LIVE, otherwise return 503"))
            #expect(response.bodyText.contains("      inboundonly: Drains all inbound listeners."))
        }
    }

    @Test func everyResponseCarriesEnvoysFallbackHeaders() async {
        for target in ["/ready", "/server_info", "/nope"] {
            let response = await get(admin, target)
            #expect(response.headers["X-Content-Type-Options"] == "nosniff")
            #expect(response.headers["Cache-Control"] == "no-cache, max-age=0")
        }
    }

    @Test(arguments: ["/drain_listeners", "/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/logging", "/reopen_logs"])
    func mutatingEndpointsRefuseGet(path: String) async {
        let response = await get(admin, path + "?graceful")
        #expect(response.status == 405)
        #expect(response.bodyText == "Method GET not allowed, POST required.")
        #expect(control.mutable.withLock { $0.drains.isEmpty && $0.quits == 0 && !$0.healthCheckFailed })
    }

    @Test func countsItsOwnRequests() async {
        _ = await get(admin, "/ready")
        _ = await get(admin, "/nope")
        #expect(control.stats.counter("http.admin.downstream_rq_total").value == 2)
        #expect(control.stats.counter("http.admin.downstream_rq_2xx").value == 1)
        #expect(control.stats.counter("http.admin.downstream_rq_4xx").value == 1)
    }

    // MARK: - /ready and health checks

    @Test func readyIsLiveOnlyWhenLiveAndPassingHealthChecks() async {
        let live = await get(admin, "/ready")
        #expect(live.status == 200)
        #expect(live.bodyText == "LIVE\n")

        let failed = await post(admin, "/healthcheck/fail")
        #expect(failed.status == 200)
        #expect(failed.bodyText == "OK\n")
        let draining = await get(admin, "/ready")
        #expect(draining.status == 503)
        #expect(draining.bodyText == "DRAINING\n")

        #expect(await post(admin, "/healthcheck/ok").bodyText == "OK\n")
        #expect(await get(admin, "/ready").status == 200)

        control.state = .initializing
        let initializing = await get(admin, "/ready")
        #expect(initializing.status == 503)
        #expect(initializing.bodyText == "INITIALIZING\n")
        control.state = .preInitializing
        #expect(await get(admin, "/ready").bodyText == "PRE_INITIALIZING\n")
    }

    @Test func serverStatesUseEnvoysNumbering() {
        #expect(ServerState.live.rawValue == 0)
        #expect(ServerState.draining.rawValue == 1)
        #expect(ServerState.preInitializing.rawValue == 2)
        #expect(ServerState.initializing.rawValue == 3)
        #expect(ServerState.reported(initialization: .live, healthCheckFailed: true) == .draining)
        #expect(ServerState.reported(initialization: .initializing, healthCheckFailed: true) == .initializing)
    }

    // MARK: - /server_info

    @Test func serverInfoHasEnvoysShape() async throws {
        let response = await get(admin, "/server_info")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json")
        let info = try parsedJSON(response)
        #expect(info.objectValue?.keys == [
            "version", "state", "uptime_current_epoch", "uptime_all_epochs", "hot_restart_version",
            "command_line_options", "node",
        ])
        #expect(info["version"]?.stringValue == "abc/1.0.0/Clean/RELEASE/none")
        #expect(info["state"]?.stringValue == "LIVE")
        #expect(info["uptime_current_epoch"]?.stringValue == "42s")
        #expect(info["uptime_all_epochs"]?.stringValue == "42s")
        #expect(info["hot_restart_version"]?.stringValue == "disabled")
        let options = try #require(info["command_line_options"])
        #expect(options["config_path"]?.stringValue == "/etc/istio/proxy/envoy-rev.json")
        #expect(options["drain_time"]?.stringValue == "45s")
        #expect(options["parent_shutdown_time"]?.stringValue == "900s")
        #expect(options["drain_strategy"]?.stringValue == "Immediate")
        #expect(options["local_address_ip_version"]?.stringValue == "v4")
        #expect(options["log_level"]?.stringValue == "warning")
        #expect(options["component_log_level"]?.stringValue == "misc:error")
        #expect(options["concurrency"]?.intValue == 2)
        #expect(options["mode"]?.stringValue == "Serve")
        #expect(options["base_id"]?.stringValue == "0")
        #expect(options["disabled_extensions"]?.arrayValue == [])
        #expect(info["node"]?["id"]?.stringValue == "sidecar~10.1.2.3~app.default~default.svc.cluster.local")
        #expect(info["node"]?["cluster"]?.stringValue == "app.default")
        #expect(info["node"]?["metadata"]?["NAMESPACE"]?.stringValue == "default")

        _ = await post(admin, "/healthcheck/fail")
        #expect(try parsedJSON(await get(admin, "/server_info"))["state"]?.stringValue == "DRAINING")
    }

    @Test func hotRestartVersionIsDisabled() async {
        #expect(await get(admin, "/hot_restart_version").bodyText == "disabled")
    }

    @Test func protobufDurationsUseThreeSixOrNineDigits() {
        #expect(AdminAPI.protobufDuration(.seconds(600)) == "600s")
        #expect(AdminAPI.protobufDuration(.milliseconds(250)) == "0.250s")
        #expect(AdminAPI.protobufDuration(.microseconds(1_000_001)) == "1.000001s")
        #expect(AdminAPI.protobufDuration(.nanoseconds(5)) == "0.000000005s")
    }

    // MARK: - /stats

    @Test func statsInEachFormat() async throws {
        control.stats.counter("cluster.outbound.upstream_cx_total").increment(by: 3)
        control.stats.gauge("server.live").set(1)

        let text = await get(admin, "/stats")
        #expect(text.status == 200)
        #expect(text.headers["Content-Type"] == "text/plain; charset=UTF-8")
        #expect(text.bodyText.contains("cluster.outbound.upstream_cx_total: 3\n"))

        let filtered = await get(admin, "/stats?usedonly&filter=" + PercentEncoding.encodeQueryValue("upstream_cx_total$"))
        #expect(filtered.bodyText == "cluster.outbound.upstream_cx_total: 3\n")

        let json = await get(admin, "/stats?format=json")
        #expect(json.headers["Content-Type"] == "application/json")
        let stats = try #require(try parsedJSON(json)["stats"]?.arrayValue)
        #expect(stats.contains { $0["name"]?.stringValue == "cluster.outbound.upstream_cx_total" && $0["value"]?.intValue == 3 })

        for target in ["/stats?format=prometheus", "/stats/prometheus"] {
            let prometheus = await get(admin, target)
            #expect(prometheus.status == 200)
            #expect(prometheus.headers["Content-Type"] == "text/plain; charset=UTF-8")
            #expect(prometheus.bodyText.contains("# TYPE envoy_server_live gauge"))
        }
    }

    @Test func badStatsQueriesAre400() async {
        #expect(await get(admin, "/stats?filter=" + PercentEncoding.encodeQueryValue("(unclosed")).status == 400)
        #expect(await get(admin, "/stats?type=Nope").status == 400)
        let format = await get(admin, "/stats?format=xml")
        #expect(format.status == 400)
        #expect(format.bodyText.hasPrefix("usage: /stats?format="))
    }

    // MARK: - /listeners

    @Test func listenersAsTextAndJSON() async throws {
        let text = await get(admin, "/listeners")
        #expect(text.bodyText == "0.0.0.0_15090::0.0.0.0:15090\nvirtualOutbound::0.0.0.0:15001\nvirtualOutbound::[::]:15001\n")

        let json = await get(admin, "/listeners?format=json")
        #expect(json.headers["Content-Type"] == "application/json")
        let statuses = try #require(try parsedJSON(json)["listener_statuses"]?.arrayValue)
        #expect(statuses.count == 2)
        #expect(statuses[0]["name"]?.stringValue == "0.0.0.0_15090")
        #expect(statuses[0]["local_address"]?["socket_address"]?["address"]?.stringValue == "0.0.0.0")
        #expect(statuses[0]["local_address"]?["socket_address"]?["port_value"]?.intValue == 15090)
        #expect(statuses[0]["additional_local_addresses"] == nil)
        let additional = try #require(statuses[1]["additional_local_addresses"]?.arrayValue)
        #expect(additional.first?["socket_address"]?["address"]?.stringValue == "::")
    }

    // MARK: - /clusters

    @Test func clustersAsEnvoysText() async {
        let response = await get(admin, "/clusters")
        #expect(response.status == 200)
        let lines = response.bodyText.split(separator: "\n").map(String.init)
        #expect(lines.first == "prometheus_stats::observability_name::prometheus_stats;")
        for expected in [
            "prometheus_stats::default_priority::max_connections::1024",
            "prometheus_stats::high_priority::max_retries::3",
            "prometheus_stats::added_via_api::false",
            "prometheus_stats::127.0.0.1:15000::cx_active::2",
            "prometheus_stats::127.0.0.1:15000::cx_connect_fail::1",
            "prometheus_stats::127.0.0.1:15000::cx_total::7",
            "prometheus_stats::127.0.0.1:15000::rq_total::5",
            "prometheus_stats::127.0.0.1:15000::health_flags::healthy",
            "prometheus_stats::127.0.0.1:15000::weight::1",
            "prometheus_stats::127.0.0.1:15000::success_rate::-1",
            "PassthroughCluster::default_priority::max_connections::4294967295",
            "PassthroughCluster::default_priority::max_retries::4294967295",
            "PassthroughCluster::high_priority::max_connections::1024",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
        // Host stats sorted by name, as Envoy's std::map sorts them.
        let hostPrefix = "prometheus_stats::127.0.0.1:15000::"
        let hostStats = lines.filter { $0.hasPrefix(hostPrefix) }.prefix(8)
            .map { $0.dropFirst(hostPrefix.count).prefix { $0 != ":" } }
        #expect(hostStats == ["cx_active", "cx_connect_fail", "cx_total", "rq_active", "rq_error", "rq_success", "rq_timeout", "rq_total"])
    }

    @Test func clustersAsJSON() async throws {
        let response = await get(admin, "/clusters?format=json")
        #expect(response.headers["Content-Type"] == "application/json")
        let statuses = try #require(try parsedJSON(response)["cluster_statuses"]?.arrayValue)
        #expect(statuses.map { $0["name"]?.stringValue } == ["prometheus_stats", "PassthroughCluster"])
        let host = try #require(statuses[0]["host_statuses"]?.arrayValue?.first)
        #expect(host["address"]?["socket_address"]?["port_value"]?.intValue == 15000)
        let metrics = try #require(host["stats"]?.arrayValue)
        #expect(metrics.contains { $0["name"]?.stringValue == "cx_total" && $0["value"]?.stringValue == "7" })
        #expect(metrics.contains { $0["name"]?.stringValue == "cx_active" && $0["type"]?.stringValue == "GAUGE" })
        #expect(host["health_status"]?["eds_health_status"]?.stringValue == "HEALTHY")
        let thresholds = try #require(statuses[1]["circuit_breakers"]?["thresholds"]?.arrayValue)
        #expect(thresholds[0]["max_connections"]?.intValue == 4_294_967_295)
        #expect(thresholds[1]["priority"]?.stringValue == "HIGH")
        #expect(statuses[1]["observability_name"]?.stringValue == "PassthroughCluster;")
        #expect(statuses[1]["host_statuses"] == nil)
    }

    // MARK: - /config_dump

    @Test func configDumpHasEnvoysTypesAndStaticResources() async throws {
        let response = await get(admin, "/config_dump")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json")
        let configs = try #require(try parsedJSON(response)["configs"]?.arrayValue)
        #expect(configs.map { $0["@type"]?.stringValue ?? "" } == [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        ])
        #expect(configs[0]["bootstrap"]?["node"]?["id"]?.stringValue == "sidecar~10.1.2.3~app.default~default.svc.cluster.local")
        #expect(configs[0]["bootstrap"]?["static_resources"]?["clusters"]?.arrayValue?.count == 3)
        #expect(configs[0]["last_updated"]?.stringValue == "2024-03-05T06:07:08Z")

        let clusters = try #require(configs[1]["static_clusters"]?.arrayValue)
        #expect(clusters.count == 3)
        #expect(clusters[0]["cluster"]?["@type"]?.stringValue == "type.googleapis.com/envoy.config.cluster.v3.Cluster")
        #expect(clusters[0]["cluster"]?["name"]?.stringValue == "prometheus_stats")
        #expect(clusters[0]["last_updated"]?.stringValue == "2024-03-05T06:07:08Z")

        let listeners = try #require(configs[2]["static_listeners"]?.arrayValue)
        #expect(listeners.map { $0["listener"]?["name"]?.stringValue } == ["0.0.0.0_15090", "virtualOutbound"])
        #expect(listeners[0]["listener"]?["@type"]?.stringValue == "type.googleapis.com/envoy.config.listener.v3.Listener")

        let routes = try #require(configs[3]["static_route_configs"]?.arrayValue)
        #expect(routes.count == 1)
        #expect(routes[0]["route_config"]?["@type"]?.stringValue == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration")
        #expect(routes[0]["route_config"]?["virtual_hosts"]?.arrayValue?.first?["name"]?.stringValue == "backend")
    }

    @Test func configDumpOfOneResource() async throws {
        let response = await get(admin, "/config_dump?resource=static_listeners")
        #expect(response.status == 200)
        let configs = try #require(try parsedJSON(response)["configs"]?.arrayValue)
        #expect(configs.count == 2)
        #expect(configs[0]["@type"]?.stringValue == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.StaticListener")
        #expect(configs[0]["listener"]?["name"]?.stringValue == "0.0.0.0_15090")

        let masked = await get(admin, "/config_dump?resource=static_clusters&mask=cluster.name")
        let maskedConfigs = try #require(try parsedJSON(masked)["configs"]?.arrayValue)
        #expect(maskedConfigs.count == 3)
        #expect(maskedConfigs[2]["cluster"]?.objectValue?.keys == ["@type", "name"])
        #expect(maskedConfigs[2]["last_updated"] == nil)

        let singular = await get(admin, "/config_dump?resource=bootstrap")
        #expect(singular.status == 400)
        #expect(singular.bodyText == "bootstrap is not a repeated field. Use ?mask=bootstrap to get only this field")

        let missing = await get(admin, "/config_dump?resource=nothing_like_it")
        #expect(missing.status == 404)
        #expect(missing.bodyText == "nothing_like_it not found in config dump")
    }

    @Test func configDumpMaskAndNameRegex() async throws {
        let masked = try #require(try parsedJSON(await get(admin, "/config_dump?mask=static_clusters"))["configs"]?.arrayValue)
        #expect(masked.map { $0["@type"]?.stringValue ?? "" } == ["type.googleapis.com/envoy.admin.v3.ClustersConfigDump"])

        let nothing = await get(admin, "/config_dump?mask=no_such_field")
        #expect(nothing.status == 400)

        let named = try #require(try parsedJSON(await get(admin, "/config_dump?name_regex=virtual.*"))["configs"]?.arrayValue)
        #expect(named[2]["static_listeners"]?.arrayValue?.map { $0["listener"]?["name"]?.stringValue } == ["virtualOutbound"])
        #expect(named[1]["static_clusters"] == nil)

        #expect(await get(admin, "/config_dump?name_regex=" + PercentEncoding.encodeQueryValue("(")).status == 400)
    }

    @Test func configDumpWithEndpoints() async throws {
        let configs = try #require(try parsedJSON(await get(admin, "/config_dump?include_eds"))["configs"]?.arrayValue)
        #expect(configs[2]["@type"]?.stringValue == "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump")
        let endpoint = try #require(configs[2]["static_endpoint_configs"]?.arrayValue?.first?["endpoint_config"])
        #expect(endpoint["cluster_name"]?.stringValue == "prometheus_stats")
        #expect(endpoint["endpoints"]?.arrayValue?.first?["lb_endpoints"]?.arrayValue?.first?["endpoint"]?["address"]?["socket_address"]?["port_value"]?.intValue == 15000)
    }

    // MARK: - /drain_listeners and /quitquitquit

    @Test func drainFlagsReachTheProxy() async {
        let response = await post(admin, "/drain_listeners?inboundonly&graceful")
        #expect(response.status == 200)
        #expect(response.bodyText == "OK\n")
        _ = await post(admin, "/drain_listeners")
        _ = await post(admin, "/drain_listeners?graceful&skip_exit")
        #expect(control.mutable.withLock { $0.drains } == [
            .init(inboundOnly: true, graceful: true, skipExit: false),
            .init(inboundOnly: false, graceful: false, skipExit: false),
            .init(inboundOnly: false, graceful: true, skipExit: true),
        ])
    }

    @Test func quitAnswersFirstAndQuitsAfter() async throws {
        let slowAdmin = AdminAPI(control: control, quitDelay: .milliseconds(300))
        let response = await post(slowAdmin, "/quitquitquit")
        #expect(response.status == 200)
        #expect(response.bodyText == "OK\n")
        #expect(control.mutable.withLock { $0.quits } == 0)
        let deadline = ContinuousClock.now + .seconds(5)
        while control.mutable.withLock({ $0.quits }) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(control.mutable.withLock { $0.quits } == 1)
    }

    // MARK: - /logging

    @Test func loggingListsEveryComponent() async {
        let response = await post(admin, "/logging")
        #expect(response.status == 200)
        #expect(response.bodyText.hasPrefix("active loggers:\n  admin: warning\n"))
        #expect(response.bodyText.contains("\n  misc: error\n"))
        #expect(response.bodyText.hasSuffix("\n\n"))
    }

    @Test func loggingChangesLevels() async {
        let levels = control.logLevels
        #expect(await post(admin, "/logging?level=debug").status == 200)
        #expect(levels.level(of: "upstream") == .debug)
        #expect(levels.level(of: "misc") == .debug)

        let paths = await post(admin, "/logging?paths=upstream:trace,admin:error")
        #expect(paths.status == 200)
        #expect(paths.bodyText.contains("  upstream: trace\n"))
        #expect(levels.level(of: "upstream") == .trace)
        #expect(levels.level(of: "admin") == .error)

        #expect(await post(admin, "/logging?connection=critical").status == 200)
        #expect(levels.level(of: "connection") == .critical)
    }

    @Test(arguments: [
        ("/logging?level=loud", "error: unknown logger level"),
        ("/logging?level=warn", "error: unknown logger level"),
        ("/logging?nosuchcomponent=debug", "error: unknown logger name"),
        ("/logging?paths=upstream:debug,nosuch:debug", "error: unknown logger name"),
        ("/logging?paths=upstream", "error: empty logger name or empty logger level"),
        ("/logging?level=debug&upstream=info", "error: invalid number of parameters"),
    ])
    func loggingRefusesBadChanges(target: String, error: String) async {
        let before = control.logLevels.snapshot().map(\.level)
        let response = await post(admin, target)
        #expect(response.status == 400)
        #expect(response.bodyText.hasPrefix(error + "\n\nusage: /logging?<name>=<level> (change single level)\n"))
        #expect(response.bodyText.contains("levels: trace debug info warning error critical off \n"))
        #expect(response.bodyText.contains("active loggers:\n"))
        #expect(control.logLevels.snapshot().map(\.level) == before)
    }

    // MARK: - Others

    @Test func certsIsAnEmptyList() async throws {
        let response = await get(admin, "/certs")
        #expect(try parsedJSON(response)["certificates"]?.arrayValue == [])
    }
}
