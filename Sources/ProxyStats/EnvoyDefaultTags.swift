extension TagExtractor {
    /// Envoy's default tag extractors (`source/common/config/well_known_names.cc`) for the stats
    /// sluice-proxy has: HTTP response codes, the HTTP connection manager, virtual hosts and routes,
    /// listeners and their workers, tcp_proxy and clusters. Envoy adds these when
    /// `stats_config.use_all_default_tags` is unset or true, before the bootstrap's `stats_tags`,
    /// regex extractors first and token extractors second, as here. Extractors for filters
    /// sluice-proxy does not have (Mongo, DynamoDB, gRPC bridge, TLS, rate limits, …) are left out:
    /// they could never match.
    public static let envoyDefaults: [TagExtractor] = [
        // *_rq(_<response_code>)
        TagExtractor(builtIn: "envoy.response_code", regex: #"_rq(_(\d{3}))$"#),
        // *_rq_(<response_code_class>)xx
        TagExtractor(builtIn: "envoy.response_code_class", regex: #"_rq_((\d))xx$"#),
        // listener.[<address>.]http.(<stat_prefix>.)*
        TagExtractor(builtIn: "envoy.http_conn_manager_prefix", regex: #"^listener\..*?\.http\.(("# + tagValue + #")\.)"#),
        // listener.<address|stat_prefix>.(worker_<id>.)*, listener_manager.(worker_<id>.)*, server.(worker_<id>.)*
        TagExtractor(builtIn: "envoy.worker_id",
                     regex: #"^(?:listener\.(?:"# + listenerAddress + "|" + tagValue
                         + #")\.|server\.|listener_manager\.)worker_((\d+)\.)"#),
        // listener.(<address|stat_prefix>.)*, except the admin listener
        TagExtractor(builtIn: "envoy.listener_address",
                     regex: #"^listener\.(("# + listenerAddress + "|" + tagValue + #")\.)"#, negativeMatch: "admin"),
        // http.[<stat_prefix>.]rds.(<route_config_name>.)<base_stat>; route config names may hold dots
        TagExtractor(builtIn: "envoy.rds_route_config",
                     regex: #"^http\."# + tagValue + #"\.rds\.(([\w-\.]+)\.)\w+?$"#),

        // vhost.[<virtual host name>.]vcluster.(<virtual_cluster_name>.)*
        TagExtractor(builtIn: "envoy.virtual_cluster", tokens: "vhost.*.vcluster.$.**"),
        // tcp.(<stat_prefix>.)*
        TagExtractor(builtIn: "envoy.tcp_prefix", tokens: "tcp.$.**"),
        // cluster.(<cluster_name>.)*
        TagExtractor(builtIn: "envoy.cluster_name", tokens: "cluster.$.**"),
        // http.(<stat_prefix>.)*
        TagExtractor(builtIn: "envoy.http_conn_manager_prefix", tokens: "http.$.**"),
        // vhost.(<virtual host name>.)*
        TagExtractor(builtIn: "envoy.virtual_host", tokens: "vhost.$.**"),
        // vhost.[<virtual host name>.]route.(<route_stat_prefix>.)*
        TagExtractor(builtIn: "envoy.route", tokens: "vhost.*.route.$.**"),
    ]
}

/// Envoy's `<TAG_VALUE>`: any characters but a dot.
private let tagValue = #"[^\.]+"#

/// Envoy's `<ADDRESS>`: an IPv4 or bracketed IPv6 address (colons spelled `_`) and a port, as
/// listener stat names spell them: `0.0.0.0_15001`, `[__]_15006`.
private let listenerAddress = #"(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+)"#

extension TagExtractor {
    /// A `stats_tags` entry with neither `regex` nor `fixed_value` names one of Envoy's defaults;
    /// Envoy adds every default extractor of that name (two for `envoy.http_conn_manager_prefix`).
    public static func envoyDefaults(named name: String) throws(StatsError) -> [TagExtractor] {
        let matching = envoyDefaults.filter { $0.name == name }
        guard !matching.isEmpty else {
            let known = Array(Set(envoyDefaults.map(\.name))).sorted().joined(separator: ", ")
            throw StatsError("No regex specified for tag specifier and no default regex for name: '\(name)'; "
                + "give the tag a regex or fixed_value, or use one of \(known)")
        }
        return matching
    }
}
