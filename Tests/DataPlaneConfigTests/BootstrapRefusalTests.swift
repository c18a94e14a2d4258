import Capture
import ConfigFormats
import DataPlaneConfig
import Testing

/// Edits of the agent's default bootstrap that sluice-proxy cannot honour, each refused with its JSON path.
@Suite struct BootstrapRefusalTests {
    static let outboundProxy = "static_resources.listeners[2].filter_chains[0].filters[0].typed_config"
    static let prometheusManager = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"

    struct Refusal: Sendable, CustomTestStringConvertible {
        var edit: @Sendable (JSONValue) -> JSONValue
        var message: String
        var testDescription: String { message }
    }

    static let refusals: [Refusal] = [
        Refusal(edit: { $0.setting("static_resources.clusters[2].type", to: "EDS") },
                message: "static_resources.clusters[2].type: EDS is not supported by sluice-proxy (STATIC, ORIGINAL_DST);"
                    + " sluice-proxy has no xDS client"),
        Refusal(edit: { $0.setting("static_resources.clusters[0].type", to: "STRICT_DNS") },
                message: "static_resources.clusters[0].type: STRICT_DNS is not supported by sluice-proxy (STATIC, ORIGINAL_DST);"
                    + " sluice-proxy resolves no names, so list IP endpoints in a STATIC cluster"),
        Refusal(edit: { $0.setting("static_resources.clusters[0].type", to: "MAGIC") },
                message: "static_resources.clusters[0].type: unknown value 'MAGIC';"
                    + " Envoy accepts STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST"),
        Refusal(edit: { $0.setting("dynamic_resources", to: ["ads_config": ["api_type": "GRPC"]]) },
                message: "dynamic_resources: sluice-proxy has no xDS client; put listeners and clusters in static_resources"),
        Refusal(edit: { $0.setting("stats_sinks", to: [["name": "envoy.stat_sinks.statsd"]]) },
                message: "stats_sinks: sluice-proxy pushes stats nowhere; scrape /stats/prometheus instead"),
        Refusal(edit: { $0.setting("static_resources.listeners[2].filter_chains[0].filter_chain_match",
                                   to: ["destination_port": 80]) },
                message: "static_resources.listeners[2].filter_chains[0].filter_chain_match: sluice-proxy matches no filter"
                    + " chains; remove the match (one chain takes every connection)"),
        Refusal(edit: { document in
                    let chain = document.value(at: "static_resources.listeners[2].filter_chains[0]")!
                    return document.appending("static_resources.listeners[2].filter_chains", chain)
                },
                message: "static_resources.listeners[2].filter_chains: the listener has 2 filter chains; sluice-proxy runs"
                    + " exactly one per listener (it matches no filter chains)"),
        Refusal(edit: { $0.setting("static_resources.listeners[2].filter_chains[0].filters[0]", to: rbacFilter) },
                message: "static_resources.listeners[2].filter_chains[0].filters[0]: network filter"
                    + " 'envoy.filters.network.rbac' is not supported by sluice-proxy (tcp_proxy, http_connection_manager)"),
        Refusal(edit: { $0.appending("static_resources.listeners[2].filter_chains[0].filters", rbacFilter) },
                message: "static_resources.listeners[2].filter_chains[0].filters: 2 network filters; sluice-proxy runs"
                    + " exactly one, tcp_proxy or http_connection_manager"),
        Refusal(edit: { document in
                    let router = document.value(at: "\(prometheusManager).http_filters[0]")!
                    return document.setting("\(prometheusManager).http_filters", to: [corsFilter, router])
                },
                message: "\(prometheusManager).http_filters[0]: HTTP filter 'envoy.filters.http.cors' is not supported by"
                    + " sluice-proxy (only the router, envoy.filters.http.router)"),
        Refusal(edit: { $0.appending("static_resources.listeners[2].listener_filters", [
                    "name": "envoy.filters.listener.proxy_protocol",
                    "typed_config": ["@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"],
                ]) },
                message: "static_resources.listeners[2].listener_filters[1]: listener filter"
                    + " 'envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol' is not supported by sluice-proxy"
                    + " (original_dst, original_src; tls_inspector and http_inspector are accepted without effect)"),
        Refusal(edit: { $0.setting("\(outboundProxy).weighted_clusters",
                                   to: ["clusters": [["name": "PassthroughCluster", "weight": 1]]]) },
                message: "\(outboundProxy).weighted_clusters: weighted clusters are not supported by sluice-proxy;"
                    + " name one cluster"),
        Refusal(edit: { $0.setting("\(outboundProxy).stat_prefix", to: nil) },
                message: "\(outboundProxy).stat_prefix: required (stats live under tcp.<stat_prefix>.)"),
        Refusal(edit: { $0.setting("\(prometheusManager).route_config.virtual_hosts[0].routes[0]",
                                   to: ["match": ["prefix": "/"], "redirect": ["path_redirect": "/stats"]]) },
                message: "\(prometheusManager).route_config.virtual_hosts[0].routes[0].redirect: sluice-proxy only"
                    + " forwards routes to a cluster (route.cluster)"),
        Refusal(edit: { $0.setting("\(prometheusManager).route_config.virtual_hosts[0].routes[0].match",
                                   to: ["safe_regex": ["regex": "/stats/.*"]]) },
                message: "\(prometheusManager).route_config.virtual_hosts[0].routes[0].match.safe_regex: sluice-proxy"
                    + " matches routes by prefix or path only"),
        Refusal(edit: { $0.setting("\(prometheusManager).route_config.virtual_hosts[0].routes[0].route",
                                   to: ["cluster_header": "x-cluster"]) },
                message: "\(prometheusManager).route_config.virtual_hosts[0].routes[0].route.cluster_header: sluice-proxy"
                    + " routes to one named cluster only (route.cluster)"),
        Refusal(edit: { $0.setting("\(prometheusManager).codec_type", to: "HTTP2") },
                message: "\(prometheusManager).codec_type: sluice-proxy serves HTTP/1.1 only (AUTO, HTTP1)"),
        Refusal(edit: { $0.setting("\(prometheusManager).route_config", to: nil)
                          .setting("\(prometheusManager).rds", to: ["route_config_name": "stats"]) },
                message: "\(prometheusManager).rds: sluice-proxy has no xDS client; give the routes inline in route_config"),
        Refusal(edit: { $0.setting("static_resources.listeners[2].address.socket_address.protocol", to: "UDP") },
                message: "static_resources.listeners[2].address.socket_address.protocol: UDP is not supported by"
                    + " sluice-proxy (TCP)"),
        Refusal(edit: { $0.setting("static_resources.listeners[2].address", to: ["pipe": ["path": "/tmp/proxy.sock"]]) },
                message: "static_resources.listeners[2].address: sluice-proxy listens on IP sockets only; a pipe listener"
                    + " is not supported"),
        Refusal(edit: { $0.setting("static_resources.listeners[2].address.socket_address.address", to: "localhost") },
                message: "static_resources.listeners[2].address.socket_address.address: 'localhost' is not an IP address;"
                    + " sluice-proxy resolves no names, give an IPv4 or IPv6 address"),
        Refusal(edit: { $0.setting("static_resources.clusters[0].connect_timeout", to: "10") },
                message: "static_resources.clusters[0].connect_timeout: '10' is not a duration; write seconds with an 's',"
                    + " e.g. \"10s\" or \"0.250s\""),
        Refusal(edit: { $0.setting("static_resources.clusters[0].connect_timeout", to: 10) },
                message: "static_resources.clusters[0].connect_timeout: 10 is not a duration; write seconds with an 's',"
                    + " e.g. \"10s\" or \"0.250s\""),
        Refusal(edit: { $0.setting("static_resources.clusters[0].connect_timeout", to: "250ms") },
                message: "static_resources.clusters[0].connect_timeout: '250ms' is not a duration; write seconds with an"
                    + " 's', e.g. \"10s\" or \"0.250s\""),
        Refusal(edit: { $0.setting("\(outboundProxy).idle_timeout", to: "-1s") },
                message: "\(outboundProxy).idle_timeout: '-1s' is not a duration; write seconds with an 's',"
                    + " e.g. \"10s\" or \"0.250s\""),
        Refusal(edit: { $0.setting("static_resources.listeners[3].name", to: "virtualOutbound") },
                message: "static_resources.listeners[3].name: 'virtualOutbound' names another listener too;"
                    + " listener names must be unique"),
        Refusal(edit: { $0.setting("static_resources.clusters[1].name", to: "prometheus_stats") },
                message: "static_resources.clusters[1].name: 'prometheus_stats' names another cluster too;"
                    + " cluster names must be unique"),
        Refusal(edit: { $0.setting("\(outboundProxy).cluster", to: "Nowhere") },
                message: "\(outboundProxy).cluster: cluster 'Nowhere' is not defined in static_resources.clusters"),
        Refusal(edit: { $0.setting("static_resources.clusters[1]", to: nil) },
                message: "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config"
                    + ".virtual_hosts[0].routes[0].route.cluster: cluster 'agent' is not defined in static_resources.clusters"),
        Refusal(edit: { $0.setting("static_resources.listeners[3].address.socket_address.port_value", to: 15001) },
                message: "static_resources.listeners[3].address: 0.0.0.0:15001 is also listener 'virtualOutbound';"
                    + " each address and port can have one listener"),
        Refusal(edit: { $0.setting("static_resources.listeners[3].additional_addresses",
                                   to: [["address": ["socket_address": ["address": "0.0.0.0", "port_value": 15006]]]]) },
                message: "static_resources.listeners[3].additional_addresses[0]: 0.0.0.0:15006 is also this listener's"
                    + " other address; each address and port can have one listener"),
        Refusal(edit: { $0.setting("static_resources.clusters[3].lb_policy", to: "ROUND_ROBIN") },
                message: "static_resources.clusters[3].lb_policy: ROUND_ROBIN is not valid for an ORIGINAL_DST cluster;"
                    + " use CLUSTER_PROVIDED"),
        Refusal(edit: { document in
                    let assignment = document.value(at: "static_resources.clusters[0].load_assignment")!
                    return document.setting("static_resources.clusters[3].load_assignment", to: assignment)
                },
                message: "static_resources.clusters[3].load_assignment: an ORIGINAL_DST cluster takes no endpoints;"
                    + " remove load_assignment"),
        Refusal(edit: { $0.setting("static_resources.clusters[0].transport_socket", to: ["name": "envoy.transport_sockets.tls"]) },
                message: "static_resources.clusters[0].transport_socket: TLS origination is not supported by sluice-proxy"),
        Refusal(edit: { $0.setting("static_resources.clusters[4].upstream_bind_config.extra_source_addresses",
                                   to: [["address": ["address": "127.0.0.7", "port_value": 0]]]) },
                message: "static_resources.clusters[4].upstream_bind_config.extra_source_addresses[0].address: a second"
                    + " IPv4 source address; give at most one per family (the one matching the destination is used)"),
        Refusal(edit: { $0.setting("static_resources.clusters[4].upstream_bind_config.source_address.port_value", to: 4000) },
                message: "static_resources.clusters[4].upstream_bind_config.source_address.port_value: binding upstream"
                    + " connections to a fixed source port is not supported by sluice-proxy; use 0"),
        Refusal(edit: { $0.appending("static_resources.listeners[3].listener_filters", [
                    "name": "envoy.filters.listener.original_src",
                    "typed_config": ["@type": "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc",
                                     "bind_port": true],
                ]) },
                message: "static_resources.listeners[3].listener_filters[1].typed_config.bind_port: keeping the client's"
                    + " source port is not supported by sluice-proxy"),
        Refusal(edit: { $0.setting("stats_config.stats_matcher.reject_all", to: true) },
                message: "stats_config.stats_matcher: reject_all, exclusion_list and inclusion_list are alternatives;"
                    + " keep one"),
        Refusal(edit: { $0.appending("stats_config.stats_tags", ["tag_name": "cluster_name", "fixed_value": "x"]) },
                message: "stats_config.stats_tags[16].tag_name: tag 'cluster_name' is specified twice; keep one"),
        Refusal(edit: { $0.setting("stats_config.stats_matcher.inclusion_list.patterns[14].ignore_case", to: true) },
                message: "stats_config.stats_matcher.inclusion_list.patterns[14].ignore_case: has no effect on safe_regex;"
                    + " write the case into the regex"),
        Refusal(edit: { $0.setting("static_resources.clusters", to: [:]) },
                message: "static_resources.clusters: expected a list, found an object"),
        Refusal(edit: { $0.setting("overload_manager.actions", to: [["name": "envoy.overload_actions.stop_accepting_requests"]]) },
                message: "overload_manager.actions: overload actions are not supported by sluice-proxy"),
        Refusal(edit: { $0.setting("admin.address.socket_address.port_value", to: 70000) },
                message: "admin.address.socket_address.port_value: 70000 is not a whole number from 0 to 65535"),
    ]

    @Test(arguments: refusals)
    func refusedWithItsPath(refusal: Refusal) throws {
        let document = refusal.edit(try AgentSnapshots.document("sidecar-ipv4"))
        let error = configError { () throws(ConfigError) in _ = try ProxyBootstrap.parse(document) }
        #expect(error?.message == refusal.message)
    }

    /// Any field sluice-proxy neither reads nor knows to be harmless is refused, at any depth.
    @Test(arguments: [
        ("static_resources.listeners[2].freebind", "Listener"),
        ("foo", "Bootstrap"),
        ("static_resources.clusters[4].upstream_bind_config.source_address.ipv6_scope", "SocketAddress"),
        ("static_resources.clusters[0].outlier_detection_typo", "Cluster"),
        ("\(outboundProxy).access_log_flush_interval", "TcpProxy"),
        ("\(prometheusManager).use_remote_address", "HttpConnectionManager"),
        ("stats_config.stats_matcher.inclusion_list.patterns[0].case", "StringMatcher"),
        ("node.region", "Node"),
    ])
    func unknownFieldsAreRefused(path: String, message: String) throws {
        let document = try AgentSnapshots.document("sidecar-ipv4").setting(path, to: true)
        let error = configError { () throws(ConfigError) in _ = try ProxyBootstrap.parse(document) }
        #expect(error?.message.hasPrefix("\(path): not supported by sluice-proxy; the \(message) fields it reads are ") == true,
                "\(error?.message ?? "no error")")
    }

    @Test func theSameFieldInBothSpellingsIsRefused() throws {
        let document = try AgentSnapshots.document("sidecar-ipv4")
            .setting("static_resources.listeners[2].address.socket_address.portValue", to: 15001)
        let error = configError { () throws(ConfigError) in _ = try ProxyBootstrap.parse(document) }
        #expect(error?.message == "static_resources.listeners[2].address.socket_address.portValue: the same field is also"
            + " given as 'port_value'; keep one")
    }

    static let rbacFilter: JSONValue = [
        "name": "envoy.filters.network.rbac",
        "typed_config": ["@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC", "stat_prefix": "x"],
    ]

    static let corsFilter: JSONValue = [
        "name": "envoy.filters.http.cors",
        "typed_config": ["@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"],
    ]
}
