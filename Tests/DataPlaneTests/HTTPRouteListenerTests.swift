import AgentHTTP
import Capture
import ConfigFormats
import DataPlane
import DataPlaneConfig
import NIOCore
import NIOPosix
import ProxyStats
import Synchronization
import Testing

/// An HTTP listener bootstrap: `listenerHost` port 0, routes to `backend` (the test's upstream),
/// `dead` (a port nothing listens on), `empty` (no endpoints), with `extraRoutes` and
/// `extraClusters` spliced in for the error cases.
func routeBootstrapJSON(
    listenerHost: String = "127.0.0.1", listenerPort: Int = 0, additionalListenerHost: String? = nil,
    upstreamPort: Int, deadPort: Int,
    extraRoutes: String = "", extraClusters: String = "", extraVirtualHosts: String = ""
) -> String {
    func staticCluster(_ name: String, port: Int) -> String {
        """
        {"name": "\(name)", "alt_stat_name": "\(name);", "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": "\(name)", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
           {"socket_address": {"address": "127.0.0.1", "port_value": \(port)}}}}]}]}}
        """
    }
    return """
    {
      "node": {"id": "test", "cluster": "test"},
      "static_resources": {
        "clusters": [
          \(staticCluster("backend", port: upstreamPort)),
          \(staticCluster("dead", port: deadPort)),
          {"name": "empty", "type": "STATIC", "connect_timeout": "1s",
           "load_assignment": {"cluster_name": "empty", "endpoints": []}}
          \(extraClusters)
        ],
        "listeners": [
          {"name": "http_test", "address": {"socket_address": {"address": "\(listenerHost)", "port_value": \(listenerPort)}},
           \(additionalListenerHost.map { #""additional_addresses": [{"address": {"socket_address": {"address": "\#($0)", "port_value": \#(listenerPort)}}}],"# } ?? "")
           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
             "stat_prefix": "routetest",
             "route_config": {"virtual_hosts": [
               {"name": "exact", "domains": ["exact.example.com"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "dead"}}]},
               \(extraVirtualHosts)
               {"name": "backend", "domains": ["*"],
                "routes": [
                  {"match": {"path": "/healthz/ready"}, "route": {"cluster": "backend"}},
                  {"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": "backend"}},
                  {"match": {"prefix": "/dead"}, "route": {"cluster": "dead"}},
                  {"match": {"prefix": "/empty"}, "route": {"cluster": "empty"}}
                  \(extraRoutes)
                ]}]},
             "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
               {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}
        ]
      }
    }
    """
}

/// A port that was free a moment ago: bound by a server that is closed again.
func unusedPort() async throws -> Int {
    let server = try await HTTPServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) { _ in
        .text(200, "")
    }
    let port = server.port
    await server.close()
    return port
}

/// What the upstream received.
final class RequestLog: Sendable {
    private let requests = Mutex<[HTTPRequest]>([])

    func append(_ request: HTTPRequest) { requests.withLock { $0.append(request) } }
    var all: [HTTPRequest] { requests.withLock { $0 } }
}

/// The upstream: answers by path and records what it saw.
func startUpstream(seen: RequestLog) async throws -> HTTPServer {
    try await HTTPServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) { request in
        seen.append(request)
        switch request.path {
        case "/stats/prometheus":
            return HTTPResponse(
                status: 200, headers: ["Content-Type": "text/plain; version=0.0.4", "Server": "upstream-server", "X-Upstream": "yes"],
                body: Array("envoy_server_live 1\n".utf8))
        case "/healthz/ready":
            return .text(503, "not ready")
        default:
            return .text(404, "upstream 404")
        }
    }
}

func send(_ method: String = "GET", to endpoint: Endpoint, _ target: String, headers: HTTPFields = [:]) async throws -> HTTPResponse {
    try await HTTPClient.send(
        HTTPClientRequest(
            host: endpoint.address.description, port: Int(endpoint.port), method: method, target: target,
            headers: headers, timeout: .seconds(5)),
        group: MultiThreadedEventLoopGroup.singleton)
}

/// What a raw keep-alive HTTP/1.1 client saw: the bytes, and whether the server closed the connection.
final class RawExchange: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let state = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    var closedByServer: Bool { state.withLock { $0.closed } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        state.withLock { $0.bytes += bytes }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.withLock { $0.closed = true }
    }

    /// Sends `GET target` without `Connection: close`, then watches for `wait` (or until the server
    /// closes). Returns what arrived and whether the server had closed before the client did.
    static func send(to endpoint: Endpoint, _ target: String, wait: Duration) async throws -> (text: String, closedByServer: Bool) {
        let exchange = RawExchange()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(exchange) }
            }
            .connect(host: endpoint.address.description, port: Int(endpoint.port)).get()
        let request = "GET \(target) HTTP/1.1\r\nHost: test\r\n\r\n"
        try await channel.writeAndFlush(channel.allocator.buffer(string: request)).get()
        let deadline = ContinuousClock.now + wait
        while !exchange.closedByServer, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = (exchange.text, exchange.closedByServer)
        try? await channel.close()
        return result
    }
}

@Suite("HTTP route listener")
struct HTTPRouteListenerTests {
    struct Running {
        let listener: HTTPRouteListener
        let upstream: HTTPServer
        let stats: StatsStore
        let seen: RequestLog
        /// `listener.<statName>.`, as DataPlaneConfig spells the listener's address.
        let statName: String
        var endpoint: Endpoint { listener.boundAddresses[0] }

        func stop() async {
            await listener.close()
            await upstream.close()
        }
    }

    func start(
        listenerHost: String = "127.0.0.1", listenerPort: Int = 0, additionalListenerHost: String? = nil,
        draining: Bool = false
    ) async throws -> Running {
        let seen = RequestLog()
        let upstream = try await startUpstream(seen: seen)
        let bootstrap = try parseBootstrap(routeBootstrapJSON(
            listenerHost: listenerHost, listenerPort: listenerPort, additionalListenerHost: additionalListenerHost,
            upstreamPort: upstream.port, deadPort: try await unusedPort()))
        let stats = StatsStore()
        let listener = try await HTTPRouteListener.start(
            listener: bootstrap.listeners[0], bootstrap: bootstrap, stats: stats,
            group: MultiThreadedEventLoopGroup.singleton, isDraining: { draining })
        return Running(
            listener: listener, upstream: upstream, stats: stats, seen: seen, statName: bootstrap.listeners[0].statName)
    }

    @Test func forwardsAMatchingRouteToTheClusterEndpoint() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        #expect(running.endpoint.port != 0)
        #expect(running.listener.status.addresses == running.listener.boundAddresses)

        let response = try await send(to: running.endpoint, "/stats/prometheus?usedonly", headers: ["Host": "pod.local:15090"])
        #expect(response.status == 200)
        #expect(response.bodyText == "envoy_server_live 1\n")
        #expect(response.headers["Content-Type"] == "text/plain; version=0.0.4")
        #expect(response.headers["X-Upstream"] == "yes")
        // Envoy's connection manager overwrites `server`, and the router reports the upstream's time.
        #expect(response.headers.values(for: "server") == ["envoy"])
        #expect(response.headers["x-envoy-upstream-service-time"].flatMap { Int($0) } != nil)
        #expect(response.headers["date"]?.hasSuffix(" GMT") == true)
        #expect(response.headers["connection"] == nil || response.headers["connection"] == "close")

        let upstreamSaw = try #require(running.seen.all.first)
        #expect(upstreamSaw.target == "/stats/prometheus?usedonly")
        #expect(upstreamSaw.headers["Host"] == "pod.local:15090")
        #expect(upstreamSaw.headers["x-forwarded-proto"] == "http")
        #expect(upstreamSaw.headers["x-request-id"]?.count == 36)
        #expect(upstreamSaw.headers["x-envoy-expected-rq-timeout-ms"] == "15000")
    }

    @Test func upstreamStatusesPassThroughAndAreCounted() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        _ = try await send(to: running.endpoint, "/stats/prometheus")
        let notReady = try await send(to: running.endpoint, "/healthz/ready")
        #expect(notReady.status == 503)
        #expect(notReady.bodyText == "not ready")

        let stats = running.stats
        #expect(stats.counter("cluster.backend;.upstream_rq_total").value == 2)
        #expect(stats.counter("cluster.backend;.upstream_rq_200").value == 1)
        #expect(stats.counter("cluster.backend;.upstream_rq_503").value == 1)
        #expect(stats.counter("cluster.backend;.upstream_rq_2xx").value == 1)
        #expect(stats.counter("cluster.backend;.upstream_rq_5xx").value == 1)
        #expect(stats.counter("cluster.backend;.upstream_cx_total").value == 2)
        #expect(stats.gauge("cluster.backend;.upstream_cx_active").value == 0)
        #expect(stats.counter("http.routetest.downstream_rq_total").value == 2)
        #expect(stats.counter("http.routetest.downstream_rq_2xx").value == 1)
        #expect(stats.counter("http.routetest.downstream_rq_5xx").value == 1)
        #expect(stats.counter("http.routetest.downstream_rq_completed").value == 2)
        #expect(stats.counter("listener.127.0.0.1_0.http.routetest.downstream_rq_2xx").value == 1)

        // Connection counters move when the connection closes, a moment after the response.
        let deadline = ContinuousClock.now + .seconds(5)
        while stats.gauge("http.routetest.downstream_cx_active").value != 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(stats.counter("listener.127.0.0.1_0.downstream_cx_total").value == 2)
        #expect(stats.gauge("listener.127.0.0.1_0.downstream_cx_active").value == 0)
        #expect(stats.counter("listener.127.0.0.1_0.downstream_cx_destroy").value == 2)
        #expect(stats.counter("http.routetest.downstream_cx_total").value == 2)
        #expect(stats.gauge("http.routetest.downstream_cx_active").value == 0)

        let host = try #require(running.listener.hostStatuses()["backend"])
        #expect(host.stats.requestsTotal == 2)
        #expect(host.stats.connectionsTotal == 2)
        #expect(host.stats.requestsSuccess == 1)
        #expect(host.stats.requestsError == 1)
    }

    @Test func noRouteIs404WithAnEmptyBody() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        let response = try await send(to: running.endpoint, "/somewhere/else")
        #expect(response.status == 404)
        #expect(response.body.isEmpty)
        #expect(response.headers["server"] == "envoy")
        // An exact path route does not match a longer path.
        #expect(try await send(to: running.endpoint, "/healthz/ready/more").status == 404)
        #expect(running.stats.counter("http.routetest.no_route").value == 2)
        #expect(running.stats.counter("http.routetest.downstream_rq_4xx").value == 2)
        #expect(running.seen.all.isEmpty)
    }

    @Test func upstreamDownIs503ConnectError() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        let response = try await send(to: running.endpoint, "/dead/anything")
        #expect(response.status == 503)
        #expect(response.bodyText.hasPrefix("upstream connect error or disconnect/reset before headers. reset reason: "))
        #expect(response.headers["content-type"] == "text/plain")
        #expect(running.stats.counter("cluster.dead;.upstream_cx_connect_fail").value == 1)
        #expect(running.stats.counter("cluster.dead;.upstream_cx_total").value == 1)
        // Envoy counts a request to the cluster only once a connection carries it.
        #expect(running.stats.counter("cluster.dead;.upstream_rq_total").value == 0)
        #expect(running.stats.counter("http.routetest.downstream_rq_5xx").value == 1)
        #expect(running.listener.hostStatuses()["dead"]?.stats.connectionsConnectFailed == 1)
    }

    @Test func clusterWithoutEndpointsIsNoHealthyUpstream() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        let response = try await send(to: running.endpoint, "/empty")
        #expect(response.status == 503)
        #expect(response.bodyText == "no healthy upstream")
        #expect(running.stats.counter("cluster.empty.upstream_cx_none_healthy").value == 1)
    }

    @Test func virtualHostByHostHeader() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        // exact.example.com routes everything to the dead cluster: 503, not the upstream's answer.
        let exact = try await send(to: running.endpoint, "/stats/prometheus", headers: ["Host": "EXACT.example.com:15090"])
        #expect(exact.status == 503)
        let other = try await send(to: running.endpoint, "/stats/prometheus", headers: ["Host": "other.example.com"])
        #expect(other.status == 200)
    }

    @Test func drainingResponsesAskToClose() async throws {
        let running = try await start(draining: true)
        defer { Task { await running.stop() } }
        let response = try await send(to: running.endpoint, "/stats/prometheus")
        #expect(response.status == 200)
        #expect(response.headers["connection"] == "close")
        let local = try await send(to: running.endpoint, "/nothing")
        #expect(local.headers["connection"] == "close")
    }

    @Test func drainingClosesKeepAliveConnectionsAfterTheResponse() async throws {
        let live = try await start()
        defer { Task { await live.stop() } }
        let kept = try await RawExchange.send(to: live.endpoint, "/stats/prometheus", wait: .milliseconds(300))
        #expect(kept.text.hasPrefix("HTTP/1.1 200"))
        #expect(!kept.closedByServer)

        let draining = try await start(draining: true)
        defer { Task { await draining.stop() } }
        let closed = try await RawExchange.send(to: draining.endpoint, "/stats/prometheus", wait: .seconds(5))
        #expect(closed.text.hasPrefix("HTTP/1.1 200"))
        #expect(closed.text.lowercased().contains("\r\nconnection: close\r\n"))
        #expect(closed.closedByServer)
    }

    @Test func servesOnIPv6Loopback() async throws {
        let running = try await start(listenerHost: "::1")
        defer { Task { await running.stop() } }
        #expect(running.endpoint.address == IPAddress("::1"))
        let response = try await send(to: running.endpoint, "/stats/prometheus")
        #expect(response.status == 200)
        #expect(running.statName == "[__1]_0")
        #expect(running.stats.counter("listener.[__1]_0.downstream_cx_total").value == 1)
    }

    @Test func bindsBothFamiliesOnOnePortAsEnvoyDoes() async throws {
        // 0.0.0.0:p and [::]:p together need IPV6_V6ONLY on the IPv6 socket.
        let port = try await unusedPort()
        let running = try await start(listenerHost: "0.0.0.0", listenerPort: port, additionalListenerHost: "::")
        defer { Task { await running.stop() } }
        #expect(running.listener.boundAddresses == [
            Endpoint(IPAddress("0.0.0.0")!, UInt16(port)), Endpoint(IPAddress("::")!, UInt16(port)),
        ])
        for loopback in ["127.0.0.1", "::1"] {
            let response = try await send(to: Endpoint(IPAddress(loopback)!, UInt16(port)), "/stats/prometheus")
            #expect(response.status == 200)
        }
    }

    @Test func stopAcceptingRefusesNewConnections() async throws {
        let running = try await start()
        defer { Task { await running.stop() } }
        #expect(running.listener.isAccepting)
        running.listener.stopAccepting()
        let deadline = ContinuousClock.now + .seconds(5)
        while running.listener.isAccepting, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(!running.listener.isAccepting)
        await #expect(throws: HTTPClientError.self) {
            _ = try await send(to: running.endpoint, "/stats/prometheus")
        }
    }

    // MARK: - Start-up errors

    func startError(extraRoutes: String = "", extraClusters: String = "", extraVirtualHosts: String = "") async throws -> String {
        do {
            // The bootstrap parser refuses some of these already; the route table refuses the rest.
            let bootstrap = try parseBootstrap(routeBootstrapJSON(
                upstreamPort: 1, deadPort: 2, extraRoutes: extraRoutes, extraClusters: extraClusters,
                extraVirtualHosts: extraVirtualHosts))
            let listener = try await HTTPRouteListener.start(
                listener: bootstrap.listeners[0], bootstrap: bootstrap, stats: StatsStore(),
                group: MultiThreadedEventLoopGroup.singleton, isDraining: { false })
            await listener.close()
            return ""
        } catch let error as ConfigError {
            return error.message
        }
    }

    @Test func routeToAPipeClusterIsRefused() async throws {
        let message = try await startError(
            extraRoutes: #", {"match": {"prefix": "/sds"}, "route": {"cluster": "sds-grpc"}}"#,
            extraClusters: """
            , {"name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                 {"pipe": {"path": "./var/run/secrets/workload-spiffe-uds/socket"}}}}]}]}}
            """)
        #expect(message.contains("routes[4] (prefix /sds)"))
        #expect(message.contains("sds-grpc"))
        #expect(message.contains("pipe"))
    }

    @Test func routeToAnOriginalDestinationClusterIsRefused() async throws {
        let message = try await startError(
            extraRoutes: #", {"match": {"prefix": "/out"}, "route": {"cluster": "PassthroughCluster"}}"#,
            extraClusters: #", {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "10s"}"#)
        #expect(message.contains("routes[4] (prefix /out)"))
        #expect(message.contains("ORIGINAL_DST"))
    }

    @Test func routeToAnUnknownClusterIsRefused() async throws {
        let message = try await startError(extraRoutes: #", {"match": {"path": "/x"}, "route": {"cluster": "nowhere"}}"#)
        #expect(message.contains("routes[4]"))
        #expect(message.contains("'nowhere'"))
    }

    @Test func duplicateDomainsAreRefused() async throws {
        let message = try await startError(
            extraVirtualHosts: #"{"name": "again", "domains": ["Exact.example.com"], "routes": []},"#)
        #expect(message.contains("Exact.example.com"))
    }
}
