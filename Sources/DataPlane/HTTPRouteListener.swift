import AgentHTTP
import Capture
import DataPlaneConfig
import NIOCore
import ProxyStats

/// An HTTP listener of the bootstrap (Istio's 15090 → `/stats/prometheus` on the admin address, and
/// 15021 → `/healthz/ready` on the agent): binds every address of the listener, picks a virtual host
/// and route as Envoy's router does, forwards to the route's cluster with one upstream connection per
/// request, and writes Envoy's stats for the listener, the connection manager and the cluster.
public final class HTTPRouteListener: Sendable {
    /// Responses larger than this are refused (503); Envoy streams, sluice-proxy buffers. Envoy's own
    /// `/stats/prometheus` is far smaller.
    public static let maximumResponseBodyBytes = 64 << 20

    public let name: String
    public let table: HTTPRouteTable
    /// In the listener's order (`address`, then `additional_addresses`), with the ports the kernel chose.
    public let boundAddresses: [Endpoint]
    private let servers: [HTTPServer]
    private let router: HTTPRouter

    private init(name: String, table: HTTPRouteTable, boundAddresses: [Endpoint], servers: [HTTPServer], router: HTTPRouter) {
        self.name = name
        self.table = table
        self.boundAddresses = boundAddresses
        self.servers = servers
        self.router = router
    }

    /// Checks the routes (see `HTTPRouteTable.init`), creates the listener's stats, and binds.
    ///
    /// - Parameters:
    ///   - isDraining: read on every response; while true, responses carry `Connection: close` and the
    ///     connection closes after them, as Envoy's HTTP/1.1 connection manager does during a drain.
    ///   - requestTimeout: Envoy's default route timeout.
    /// - Throws: `ConfigError` for a route sluice-proxy cannot serve, `HTTPServerError` for a failed bind
    ///   (every address bound before it is closed again).
    public static func start(
        listener: ListenerConfig,
        bootstrap: ProxyBootstrap,
        stats: StatsStore,
        group: any EventLoopGroup,
        isDraining: @escaping @Sendable () -> Bool,
        requestTimeout: Duration = .seconds(15)
    ) async throws -> HTTPRouteListener {
        let table = try HTTPRouteTable(listener: listener, bootstrap: bootstrap)
        let listenerStats = HTTPListenerStats(store: stats, listenerStatName: listener.statName, statPrefix: table.statPrefix)
        var clusterStats: [String: UpstreamClusterStats] = [:]
        for (cluster, upstream) in table.upstreams {
            clusterStats[cluster] = UpstreamClusterStats(store: stats, statName: upstream.statName)
        }
        let router = HTTPRouter(
            table: table, listenerStats: listenerStats, clusterStats: clusterStats, group: group,
            isDraining: isDraining, requestTimeout: requestTimeout)

        var options = HTTPServerOptions()
        // Envoy binds IPv6 listeners with IPV6_V6ONLY, so `::` and `0.0.0.0` share a port.
        options.ipv6Only = true
        options.closesWhenResponseSaysClose = true
        options.onConnectionOpened = { listenerStats.connectionOpened() }
        options.onConnectionClosed = { listenerStats.connectionClosed() }

        var servers: [HTTPServer] = []
        var bound: [Endpoint] = []
        for address in listener.addresses {
            do {
                let server = try await HTTPServer.start(
                    host: address.address.description, port: Int(address.port), group: group, options: options,
                    handler: { request in await router.handle(request) })
                servers.append(server)
                bound.append(Endpoint(address.address, UInt16(server.port)))
            } catch {
                for server in servers { await server.close() }
                throw error
            }
        }
        return HTTPRouteListener(name: listener.name, table: table, boundAddresses: bound, servers: servers, router: router)
    }

    /// For `/listeners`.
    public var status: ListenerStatus { ListenerStatus(name: name, addresses: boundAddresses) }

    /// The hosts this listener sent requests to, with Envoy's per-host counters, by cluster name
    /// (to merge into `/clusters`).
    public func hostStatuses() -> [String: HostStatus] {
        var result: [String: HostStatus] = [:]
        for (cluster, upstream) in table.upstreams {
            guard let endpoint = upstream.endpoint, let stats = router.clusterStats[cluster] else { continue }
            result[cluster] = HostStatus(address: .socket(endpoint), stats: stats.host.snapshot)
        }
        return result
    }

    /// A drain: stop accepting; open connections carry on (and close after their next response while
    /// `isDraining` says so).
    public func stopAccepting() {
        for server in servers { server.stopAccepting() }
    }

    /// True while any of its addresses still accepts connections.
    public var isAccepting: Bool { servers.contains { $0.isAccepting } }

    /// Stops accepting and closes every connection.
    public func close() async {
        for server in servers { await server.close() }
    }
}

/// One request through the route table to the upstream, and back.
final class HTTPRouter: Sendable {
    let table: HTTPRouteTable
    let listenerStats: HTTPListenerStats
    let clusterStats: [String: UpstreamClusterStats]
    let group: any EventLoopGroup
    let isDraining: @Sendable () -> Bool
    let requestTimeout: Duration

    init(
        table: HTTPRouteTable, listenerStats: HTTPListenerStats, clusterStats: [String: UpstreamClusterStats],
        group: any EventLoopGroup, isDraining: @escaping @Sendable () -> Bool, requestTimeout: Duration
    ) {
        self.table = table
        self.listenerStats = listenerStats
        self.clusterStats = clusterStats
        self.group = group
        self.isDraining = isDraining
        self.requestTimeout = requestTimeout
    }

    /// Hop-by-hop fields (RFC 9110 §7.6.1) and Envoy's other connection-specific ones: never forwarded.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
    ]

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        listenerStats.requestStarted()
        var response = await forward(request)
        finish(&response)
        listenerStats.requestFinished(status: response.status)
        return response
    }

    private func forward(_ request: HTTPRequest) async -> HTTPResponse {
        guard let cluster = table.cluster(host: request.headers["Host"], target: request.target) else {
            listenerStats.noRoute.increment()
            return Self.localReply(404, "")
        }
        listenerStats.routedRequests.increment()
        guard let upstream = table.upstreams[cluster], let stats = clusterStats[cluster] else {
            return Self.localReply(503, "")
        }
        guard let endpoint = upstream.endpoint else {
            stats.noneHealthy.increment()
            return Self.localReply(503, "no healthy upstream")
        }

        let outgoing = HTTPClientRequest(
            host: endpoint.address.description, port: Int(endpoint.port), method: request.method,
            target: request.target, headers: upstreamHeaders(request), body: request.body,
            localAddress: upstream.sourceAddress?.description, timeout: requestTimeout,
            maximumResponseBodyBytes: HTTPRouteListener.maximumResponseBodyBytes)

        stats.connectionsTotal.increment()
        stats.connectionsActive.increment()
        stats.host.connectionsTotal.increment()
        stats.host.connectionsActive.increment()
        defer {
            stats.connectionsActive.decrement()
            stats.connectionsDestroyed.increment()
            stats.host.connectionsActive.decrement()
        }
        let started = ContinuousClock.now
        do {
            let response = try await HTTPClient.send(outgoing, group: group)
            countRequest(stats)
            stats.requestsActive.decrement()
            stats.host.requestsActive.decrement()
            stats.countResponse(status: response.status)
            if response.status >= 500 { stats.host.requestsError.increment() } else { stats.host.requestsSuccess.increment() }
            return downstreamResponse(response, serviceTime: ContinuousClock.now - started)
        } catch {
            return failureReply(error, stats: stats)
        }
    }

    /// Envoy counts a request to the cluster once a connection carries it (`onPoolReady`).
    private func countRequest(_ stats: UpstreamClusterStats) {
        stats.requestsTotal.increment()
        stats.requestsActive.increment()
        stats.host.requestsTotal.increment()
        stats.host.requestsActive.increment()
    }

    /// Envoy's router local replies for upstream failures.
    private func failureReply(_ error: HTTPClientError, stats: UpstreamClusterStats) -> HTTPResponse {
        let prefix = "upstream connect error or disconnect/reset before headers. reset reason: "
        switch error {
        case .connectionRefused:
            countConnectFailure(stats)
            return Self.localReply(
                503, prefix + "remote connection failure, transport failure reason: delayed connect error: Connection refused")
        case .connectFailed(_, let detail):
            countConnectFailure(stats)
            return Self.localReply(503, prefix + "remote connection failure, transport failure reason: \(detail)")
        case .sourceAddressUnavailable(let source, _):
            countConnectFailure(stats)
            return Self.localReply(503, prefix + "local connection failure, transport failure reason: cannot bind \(source)")
        case .timedOut:
            // The route timeout: the request was sent (HTTPClient cannot tell a slow connect apart).
            countRequest(stats)
            stats.requestsActive.decrement()
            stats.host.requestsActive.decrement()
            stats.requestsTimedOut.increment()
            stats.host.requestsTimedOut.increment()
            return Self.localReply(504, "upstream request timeout")
        case .protocolError:
            countRequest(stats)
            stats.requestsActive.decrement()
            stats.host.requestsActive.decrement()
            stats.host.requestsError.increment()
            return Self.localReply(503, prefix + "connection termination")
        case .responseTooLarge(_, let limit):
            countRequest(stats)
            stats.requestsActive.decrement()
            stats.host.requestsActive.decrement()
            stats.host.requestsError.increment()
            return Self.localReply(503, "upstream response larger than \(limit) bytes")
        }
    }

    private func countConnectFailure(_ stats: UpstreamClusterStats) {
        stats.connectFailures.increment()
        stats.host.connectFailures.increment()
    }

    /// What Envoy's connection manager and router add on the way up: `x-forwarded-proto`, an
    /// `x-request-id`, and the route timeout the upstream may assume.
    private func upstreamHeaders(_ request: HTTPRequest) -> HTTPFields {
        var named = Self.hopByHop
        for value in request.headers.values(for: "connection") {
            for token in value.split(separator: ",") { named.insert(token.trimmingCharacters(" ").lowercased()) }
        }
        var headers = HTTPFields()
        for field in request.headers where !named.contains(field.name.lowercased()) {
            headers.append(name: field.name, value: field.value)
        }
        if headers["x-forwarded-proto"] == nil { headers["x-forwarded-proto"] = "http" }
        if headers["x-request-id"] == nil { headers["x-request-id"] = Self.randomUUID() }
        let (seconds, attoseconds) = requestTimeout.components
        headers["x-envoy-expected-rq-timeout-ms"] = String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        return headers
    }

    private func downstreamResponse(_ upstream: HTTPResponse, serviceTime: Duration) -> HTTPResponse {
        var named = Self.hopByHop
        for value in upstream.headers.values(for: "connection") {
            for token in value.split(separator: ",") { named.insert(token.trimmingCharacters(" ").lowercased()) }
        }
        var headers = HTTPFields()
        for field in upstream.headers where !named.contains(field.name.lowercased()) {
            headers.append(name: field.name, value: field.value)
        }
        let (seconds, attoseconds) = serviceTime.components
        headers["x-envoy-upstream-service-time"] = String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        return HTTPResponse(status: upstream.status, headers: headers, body: upstream.body)
    }

    /// Envoy's connection manager overwrites `date` and `server` on every response (the default
    /// `server_header_transformation` is OVERWRITE), and asks clients to close while draining.
    private func finish(_ response: inout HTTPResponse) {
        response.headers["date"] = WallClockTime.now().httpDate
        response.headers["server"] = "envoy"
        if isDraining() { response.headers["connection"] = "close" }
    }

    static func localReply(_ status: Int, _ body: String) -> HTTPResponse {
        var headers = HTTPFields()
        if !body.isEmpty { headers["content-type"] = "text/plain" }
        return HTTPResponse(status: status, headers: headers, body: Array(body.utf8))
    }

    /// A version 4 UUID, as Envoy's request id extension generates.
    static func randomUUID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-"
            + hex[8..<10].joined() + "-" + hex[10..<16].joined()
    }
}
