import Capture
import DataPlaneConfig

/// The route configuration of one HTTP listener, checked against the bootstrap's clusters: which
/// virtual host a `Host` selects, which route a path selects, and where that route's cluster sends
/// requests. Pure, so `--mode validate` can build it without binding anything.
public struct HTTPRouteTable: Sendable {
    /// Where one cluster sends requests: its first static socket endpoint (nil: no endpoints, which
    /// Envoy answers with 503 "no healthy upstream").
    public struct Upstream: Sendable, Equatable {
        public var cluster: String
        /// `cluster.<statName>.` prefixes the cluster's stats.
        public var statName: String
        public var endpoint: Endpoint?
        public var connectTimeout: Duration
        public var sourceAddress: IPAddress?
    }

    struct VirtualHostEntry: Sendable {
        var name: String
        var routes: [Route]
    }

    public let listenerName: String
    /// `http.<statPrefix>.` prefixes the connection manager's stats.
    public let statPrefix: String
    /// By cluster name, for every cluster a route names.
    public let upstreams: [String: Upstream]
    private let virtualHosts: [VirtualHostEntry]
    private let exactDomains: [String: Int]
    /// `*.example.com` and `*-bar.example.com`: the part after `*`, longest first.
    private let suffixDomains: [(suffix: String, host: Int)]
    /// `example.*`: the part before `*`, longest first.
    private let prefixDomains: [(prefix: String, host: Int)]
    private let defaultHost: Int?

    /// - Throws: a `ConfigError` naming the listener and route when the listener is not an HTTP
    ///   connection manager, a route names an unknown cluster, or a cluster cannot carry HTTP
    ///   (ORIGINAL_DST, or a pipe endpoint), or when two virtual hosts claim one domain.
    public init(listener: ListenerConfig, bootstrap: ProxyBootstrap) throws(ConfigError) {
        let listenerIndex = bootstrap.listeners.firstIndex { $0.name == listener.name } ?? 0
        let listenerPath = "static_resources.listeners[\(listenerIndex)] (\(listener.name))"
        guard case .httpConnectionManager(let manager) = listener.filter else {
            throw makeConfigError(
                "\(listenerPath): not an HTTP connection manager listener; HTTPRouteListener serves only "
                    + "envoy.filters.network.http_connection_manager listeners")
        }
        listenerName = listener.name
        statPrefix = manager.statPrefix

        var upstreams: [String: Upstream] = [:]
        var entries: [VirtualHostEntry] = []
        var exact: [String: Int] = [:]
        var suffixes: [(String, Int)] = []
        var prefixes: [(String, Int)] = []
        var fallback: Int?
        for (hostIndex, virtualHost) in manager.virtualHosts.enumerated() {
            let hostPath = "\(listenerPath) virtual_hosts[\(hostIndex)] (\(virtualHost.name))"
            for (routeIndex, route) in virtualHost.routes.enumerated() {
                let routePath = "\(hostPath) routes[\(routeIndex)] (\(Self.describe(route.match)))"
                if upstreams[route.cluster] == nil {
                    upstreams[route.cluster] = try Self.upstream(for: route.cluster, routePath: routePath, bootstrap: bootstrap)
                }
            }
            for domain in virtualHost.domains {
                let key = domain.lowercased()
                func duplicate() -> ConfigError {
                    makeConfigError(
                        "\(hostPath): domain '\(domain)' is already claimed by another virtual host; "
                            + "Envoy permits each domain once per route configuration")
                }
                if key == "*" {
                    guard fallback == nil else { throw duplicate() }
                    fallback = hostIndex
                } else if key.hasPrefix("*") {
                    let suffix = String(key.dropFirst())
                    guard !suffixes.contains(where: { $0.0 == suffix }) else { throw duplicate() }
                    suffixes.append((suffix, hostIndex))
                } else if key.hasSuffix("*") {
                    let prefix = String(key.dropLast())
                    guard !prefixes.contains(where: { $0.0 == prefix }) else { throw duplicate() }
                    prefixes.append((prefix, hostIndex))
                } else {
                    guard exact[key] == nil else { throw duplicate() }
                    exact[key] = hostIndex
                }
            }
            entries.append(VirtualHostEntry(name: virtualHost.name, routes: virtualHost.routes))
        }
        self.upstreams = upstreams
        virtualHosts = entries
        exactDomains = exact
        // Envoy prefers the longest wildcard match.
        suffixDomains = suffixes.sorted { $0.0.count > $1.0.count }.map { (suffix: $0.0, host: $0.1) }
        prefixDomains = prefixes.sorted { $0.0.count > $1.0.count }.map { (prefix: $0.0, host: $0.1) }
        defaultHost = fallback
    }

    /// The cluster for a request, or nil when no virtual host or route matches (Envoy's 404).
    public func cluster(host: String?, target: String) -> String? {
        guard let hostIndex = virtualHostIndex(for: host) else { return nil }
        let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
        for route in virtualHosts[hostIndex].routes {
            switch route.match {
            case .prefix(let prefix):
                if target.hasPrefix(prefix) { return route.cluster }
            case .path(let exactPath):
                if path == exactPath { return route.cluster }
            }
        }
        return nil
    }

    /// Envoy's virtual host selection: exact domain, then the longest suffix wildcard, then the
    /// longest prefix wildcard, then `*`. A `Host` with a port that matches nothing is tried again
    /// without it (Envoy does this when `ignore_port_in_host_matching` is set; Istio's own route
    /// configurations list both spellings, so either way the same host is chosen).
    func virtualHostIndex(for host: String?) -> Int? {
        let name = (host ?? "").lowercased()
        if let index = match(name) { return index }
        if let stripped = Self.strippingPort(name), let index = match(stripped) { return index }
        return defaultHost
    }

    private func match(_ host: String) -> Int? {
        if let index = exactDomains[host] { return index }
        // A wildcard stands for at least one character.
        if let entry = suffixDomains.first(where: { host.count > $0.suffix.count && host.hasSuffix($0.suffix) }) {
            return entry.host
        }
        if let entry = prefixDomains.first(where: { host.count > $0.prefix.count && host.hasPrefix($0.prefix) }) {
            return entry.host
        }
        return nil
    }

    /// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`; nil when there is no port.
    static func strippingPort(_ host: String) -> String? {
        guard let colon = host.lastIndex(of: ":") else { return nil }
        let port = host[host.index(after: colon)...]
        guard !port.isEmpty, port.allSatisfy(\.isNumber) else { return nil }
        let name = host[..<colon]
        // A bare IPv6 literal (`::1`) has colons but no port.
        if name.contains(":"), !(name.hasPrefix("[") && name.hasSuffix("]")) { return nil }
        return String(name)
    }

    static func describe(_ match: Route.Match) -> String {
        switch match {
        case .prefix(let prefix): "prefix \(prefix)"
        case .path(let path): "path \(path)"
        }
    }

    private static func upstream(for name: String, routePath: String, bootstrap: ProxyBootstrap) throws(ConfigError) -> Upstream {
        guard let cluster = bootstrap.cluster(named: name) else {
            throw makeConfigError(
                "\(routePath): route names cluster '\(name)', which static_resources.clusters does not define; "
                    + "add the cluster or correct the name")
        }
        switch cluster.discovery {
        case .originalDestination:
            throw makeConfigError(
                "\(routePath): cluster '\(name)' is ORIGINAL_DST; sluice-proxy routes HTTP only to STATIC "
                    + "clusters with socket_address endpoints")
        case .staticEndpoints(let addresses):
            var endpoint: Endpoint?
            switch addresses.first {
            case .pipe(let path):
                throw makeConfigError(
                    "\(routePath): cluster '\(name)' has a pipe (Unix socket) endpoint \(path); sluice-proxy routes "
                        + "HTTP only to socket_address endpoints")
            case .socket(let address):
                endpoint = address
            case nil:
                endpoint = nil
            }
            return Upstream(
                cluster: name, statName: cluster.statName, endpoint: endpoint,
                connectTimeout: cluster.connectTimeout, sourceAddress: cluster.sourceAddresses.first)
        }
    }
}
