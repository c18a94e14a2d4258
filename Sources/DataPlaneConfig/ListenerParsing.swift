import Capture
import ConfigFormats

extension BootstrapParser {
    mutating func listener(_ reader: MessageReader) throws(ConfigError) -> ListenerConfig {
        var reader = reader
        try reader.refuse("api_listener", "API listeners are not supported by sluice-proxy")
        try reader.refuse("internal_listener", "internal listeners are not supported by sluice-proxy")
        try reader.refuse("udp_listener_config", "UDP listeners are not supported by sluice-proxy (TCP)")
        if try reader.bool("bind_to_port") == false {
            throw ConfigError("\(reader.path(of: "bind_to_port")): sluice-proxy binds every listener it has;"
                + " listeners that only take hand-offs from another listener are not supported")
        }

        guard let addressValue = reader.value("address") else {
            throw ConfigError("\(reader.path(of: "address")): required (the address to listen on)")
        }
        var addresses = [try listenerEndpoint(addressValue, path: reader.path(of: "address"))]
        for element in try reader.list("additional_addresses") {
            var additional = try MessageReader(element.value, message: "AdditionalAddress", path: element.path)
            try additional.refuse("socket_options", "socket options are not supported by sluice-proxy")
            guard let value = additional.value("address") else {
                throw ConfigError("\(additional.path(of: "address")): required (the address to listen on)")
            }
            addresses.append(try listenerEndpoint(value, path: additional.path(of: "address")))
            try additional.finish(warnings: &warnings)
        }

        let statPrefix = try reader.string("stat_prefix")
        let statName = EnvoyStatNames.listener(statPrefix: statPrefix, address: addresses[0])
        // Envoy names a listener without a name by a random UUID; the stat name is steadier and as unique.
        let name = try reader.string("name").flatMap { $0.isEmpty ? nil : $0 } ?? statName
        let transparent = try reader.bool("transparent") ?? false
        let ignoreGlobalConnectionLimit = try reader.bool("ignore_global_conn_limit") ?? false
        let direction: ListenerConfig.Direction =
            switch try reader.enumeration("traffic_direction", values: ["UNSPECIFIED", "INBOUND", "OUTBOUND"]) {
            case "INBOUND": .inbound
            case "OUTBOUND": .outbound
            default: .unspecified
            }
        if try reader.enumeration("drain_type", values: ["DEFAULT", "MODIFY_ONLY"]) == "MODIFY_ONLY" {
            warnings.append("\(reader.path(of: "drain_type")): accepted and ignored: every listener drains with the server")
        }

        var useOriginalDestination = false
        var originalSourceMark: UInt32?
        for var filter in try reader.messages("listener_filters", type: "ListenerFilter") {
            try filter.refuse("filter_disabled", "conditional listener filters are not supported by sluice-proxy")
            switch try listenerFilter(&filter) {
            case .originalDestination: useOriginalDestination = true
            case .originalSource(let mark): originalSourceMark = mark
            case .noEffect: break
            }
            try filter.finish(warnings: &warnings)
        }

        let filter = try filterChain(&reader)
        try reader.finish(warnings: &warnings)
        return ListenerConfig(
            name: name, addresses: addresses, statName: statName, transparent: transparent,
            useOriginalDestination: useOriginalDestination, originalSourceMark: originalSourceMark,
            direction: direction, filter: filter, ignoreGlobalConnectionLimit: ignoreGlobalConnectionLimit)
    }

    private enum ListenerFilterKind {
        case originalDestination
        case originalSource(mark: UInt32)
        case noEffect
    }

    /// original_dst and original_src act. tls_inspector and http_inspector are accepted with a warning:
    /// they only find out what filter_chain_match could match on (SNI, ALPN, HTTP), and sluice-proxy
    /// has one filter chain and matches nothing, so they change nothing but add a wait for first bytes.
    private mutating func listenerFilter(_ filter: inout MessageReader) throws(ConfigError) -> ListenerFilterKind {
        let extensionConfig = try typedConfig(&filter)
        let kind = extensionConfig.type ?? extensionConfig.name
        let config = extensionConfig.config
        switch kind {
        case EnvoyTypes.originalDestination, EnvoyTypes.originalDestinationName:
            try config?.finish(warnings: &warnings)
            return .originalDestination
        case EnvoyTypes.originalSource, EnvoyTypes.originalSourceName:
            var mark: UInt32 = 0
            if var settings = config {
                if try settings.bool("bind_port") == true {
                    throw ConfigError("\(settings.path(of: "bind_port")): keeping the client's source port is not"
                        + " supported by sluice-proxy")
                }
                mark = try settings.uint32("mark") ?? 0
                try settings.finish(warnings: &warnings)
            }
            return .originalSource(mark: mark)
        case EnvoyTypes.tlsInspector, EnvoyTypes.tlsInspectorName, EnvoyTypes.httpInspector, EnvoyTypes.httpInspectorName:
            warnings.append("\(filter.path): accepted and ignored: \(extensionConfig.name.isEmpty ? kind : extensionConfig.name)"
                + " only serves filter chain matches, and sluice-proxy has none")
            return .noEffect
        default:
            throw ConfigError("\(filter.path): listener filter '\(kind)' is not supported by sluice-proxy"
                + " (original_dst, original_src; tls_inspector and http_inspector are accepted without effect)")
        }
    }

    // MARK: - The filter chain

    /// One filter chain (in `filter_chains` or as `default_filter_chain`), matching everything, with
    /// one network filter: tcp_proxy or http_connection_manager.
    private mutating func filterChain(_ listener: inout MessageReader) throws(ConfigError) -> ListenerConfig.Filter {
        var chains = try listener.messages("filter_chains", type: "FilterChain")
        if let defaultChain = try listener.message("default_filter_chain", type: "FilterChain") {
            chains.append(defaultChain)
        }
        guard chains.count == 1, var chain = chains.first else {
            let problem = chains.isEmpty ? "the listener has no filter chain" : "the listener has \(chains.count) filter chains"
            throw ConfigError("\(listener.path(of: "filter_chains")): \(problem); sluice-proxy runs exactly one"
                + " per listener (it matches no filter chains)")
        }
        if let match = chain.value("filter_chain_match"), match != .object([:]) {
            throw ConfigError("\(chain.path(of: "filter_chain_match")): sluice-proxy matches no filter chains;"
                + " remove the match (one chain takes every connection)")
        }
        try chain.refuse("transport_socket", "TLS termination is not supported by sluice-proxy")
        if try chain.bool("use_proxy_proto") == true {
            throw ConfigError("\(chain.path(of: "use_proxy_proto")): the PROXY protocol is not supported by sluice-proxy")
        }
        let filters = try chain.messages("filters", type: "Filter")
        guard filters.count == 1, var filter = filters.first else {
            throw ConfigError("\(chain.path(of: "filters")): \(filters.count) network filters; sluice-proxy runs"
                + " exactly one, tcp_proxy or http_connection_manager")
        }
        let extensionConfig = try typedConfig(&filter)
        let kind = extensionConfig.type ?? extensionConfig.name
        guard var config = extensionConfig.config else {
            throw ConfigError("\(filter.path): needs a typed_config")
        }
        let result: ListenerConfig.Filter
        switch kind {
        case EnvoyTypes.tcpProxy:
            result = .tcpProxy(try tcpProxy(&config))
        case EnvoyTypes.httpConnectionManager:
            result = .httpConnectionManager(try httpConnectionManager(&config))
        default:
            throw ConfigError("\(filter.path): network filter '\(extensionConfig.name.isEmpty ? kind : extensionConfig.name)'"
                + " is not supported by sluice-proxy (tcp_proxy, http_connection_manager)")
        }
        try config.finish(warnings: &warnings)
        try filter.finish(warnings: &warnings)
        try chain.finish(warnings: &warnings)
        return result
    }

    private mutating func tcpProxy(_ config: inout MessageReader) throws(ConfigError) -> TCPProxyConfig {
        let statPrefix = try config.requiredString("stat_prefix", why: "stats live under tcp.<stat_prefix>.")
        try config.refuse("weighted_clusters", "weighted clusters are not supported by sluice-proxy; name one cluster")
        try config.refuse("tunneling_config", "tunneling is not supported by sluice-proxy")
        try config.refuse("on_demand", "on-demand clusters are not supported by sluice-proxy")
        try config.refuse("access_log", "tcp_proxy access logs are not supported by sluice-proxy")
        let cluster = try config.requiredString("cluster", why: "the cluster to forward to")
        clusterReferences.append((cluster, config.path(of: "cluster")))
        // Envoy closes a TCP proxy connection idle for an hour unless told otherwise; 0s turns that off.
        let idleTimeout = try config.duration("idle_timeout") ?? .seconds(3600)
        return TCPProxyConfig(statPrefix: statPrefix, cluster: cluster, idleTimeout: idleTimeout == .zero ? nil : idleTimeout)
    }

    // MARK: - HTTP

    private mutating func httpConnectionManager(_ config: inout MessageReader) throws(ConfigError)
        -> HTTPConnectionManagerConfig
    {
        let statPrefix = try config.requiredString("stat_prefix", why: "stats live under http.<stat_prefix>.")
        switch try config.enumeration("codec_type", values: ["AUTO", "HTTP1", "HTTP2", "HTTP3"]) {
        case "HTTP2", "HTTP3":
            throw ConfigError("\(config.path(of: "codec_type")): sluice-proxy serves HTTP/1.1 only (AUTO, HTTP1)")
        default:
            break
        }
        try config.refuse("rds", "sluice-proxy has no xDS client; give the routes inline in route_config")
        try config.refuse("scoped_routes", "scoped routes are not supported by sluice-proxy; give route_config")

        let filters = try config.messages("http_filters", type: "HttpFilter")
        guard !filters.isEmpty else {
            throw ConfigError("\(config.path(of: "http_filters")): needs the router filter (\(EnvoyTypes.routerName))")
        }
        for var filter in filters {
            try filter.refuse("disabled", "disabled HTTP filters are not supported by sluice-proxy")
            let extensionConfig = try typedConfig(&filter)
            let kind = extensionConfig.type ?? extensionConfig.name
            guard kind == EnvoyTypes.router || kind == EnvoyTypes.routerName else {
                throw ConfigError("\(filter.path): HTTP filter '\(extensionConfig.name.isEmpty ? kind : extensionConfig.name)'"
                    + " is not supported by sluice-proxy (only the router, \(EnvoyTypes.routerName))")
            }
            if let router = extensionConfig.config { try router.finish(warnings: &warnings) }
            try filter.finish(warnings: &warnings)
        }

        guard var routes = try config.message("route_config", type: "RouteConfiguration") else {
            throw ConfigError("\(config.path(of: "route_config")): required (the routes, inline)")
        }
        var virtualHosts: [VirtualHost] = []
        for host in try routes.messages("virtual_hosts", type: "VirtualHost") {
            virtualHosts.append(try virtualHost(host))
        }
        try routes.finish(warnings: &warnings)
        return HTTPConnectionManagerConfig(statPrefix: statPrefix, virtualHosts: virtualHosts)
    }

    private mutating func virtualHost(_ reader: MessageReader) throws(ConfigError) -> VirtualHost {
        var reader = reader
        let name = try reader.requiredString("name", why: "the virtual host's name")
        let domains = try reader.strings("domains")
        if domains.isEmpty {
            throw ConfigError("\(reader.path(of: "domains")): needs at least one domain (\"*\" for any)")
        }
        var routes: [Route] = []
        for route in try reader.messages("routes", type: "Route") {
            routes.append(try self.route(route))
        }
        try reader.finish(warnings: &warnings)
        return VirtualHost(name: name, domains: domains, routes: routes)
    }

    private mutating func route(_ reader: MessageReader) throws(ConfigError) -> Route {
        var reader = reader
        for action in ["redirect", "direct_response", "filter_action", "non_forwarding_action"] {
            try reader.refuse(action, "sluice-proxy only forwards routes to a cluster (route.cluster)")
        }
        try reader.refuse("typed_per_filter_config", "per-route filter configuration is not supported by sluice-proxy")
        guard var match = try reader.message("match", type: "RouteMatch") else {
            throw ConfigError("\(reader.path(of: "match")): required (prefix or path)")
        }
        let prefix = try match.string("prefix")
        let path = try match.string("path")
        for other in ["safe_regex", "path_separated_prefix", "connect_matcher", "path_match_policy"] {
            try match.refuse(other, "sluice-proxy matches routes by prefix or path only")
        }
        if try match.bool("case_sensitive") == false {
            throw ConfigError("\(match.path(of: "case_sensitive")): sluice-proxy matches paths case-sensitively only")
        }
        let routeMatch: Route.Match
        switch (prefix, path) {
        case (let prefix?, nil): routeMatch = .prefix(prefix)
        case (nil, let path?): routeMatch = .path(path)
        case (nil, nil): throw ConfigError("\(match.path): needs a prefix or a path")
        case (.some, .some): throw ConfigError("\(match.path): prefix and path are alternatives; keep one")
        }
        try match.finish(warnings: &warnings)

        guard var action = try reader.message("route", type: "RouteAction") else {
            throw ConfigError("\(reader.path(of: "route")): required; sluice-proxy only forwards routes to a cluster")
        }
        for other in ["weighted_clusters", "cluster_header", "cluster_specifier_plugin", "inline_cluster_specifier_plugin"] {
            try action.refuse(other, "sluice-proxy routes to one named cluster only (route.cluster)")
        }
        let cluster = try action.requiredString("cluster", why: "the cluster to forward to")
        clusterReferences.append((cluster, action.path(of: "cluster")))
        try action.finish(warnings: &warnings)
        try reader.finish(warnings: &warnings)
        return Route(match: routeMatch, cluster: cluster)
    }
}
