import ConfigFormats

/// Istio's `stats_config`: which Envoy stats exist at all, and how tags are cut out of their names.
enum StatsConfiguration {
    /// Prefixes the readiness and drain logic read (`cluster_manager.cds.*`, `listener_manager.*`,
    /// `server.state`), plus the XDS and Wasm stats Istio keeps.
    static let requiredPrefixes = ["cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm"]
    static let rbacSuffixes = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"]
    /// EXIT_ON_ZERO_ACTIVE_CONNECTIONS sums `listener.*.downstream_cx_active` while draining.
    static let drainSuffix = "downstream_cx_active"
    /// Routes named by a VirtualService's stat prefix.
    static let requiredRegexps = [#"vhost\..*\.route\..*"#]

    /// Istio's tag extraction rules, in Istio's order. The cluster, HTTP-prefix and thread rules rely on
    /// the ";" delimiter Istio puts after those names (`alt_stat_name`), which is cheaper to match than
    /// the older service-hostname patterns.
    static let tags: [(name: String, regex: String)] = [
        ("cluster_name", #"^cluster(\.(.+);)"#),
        ("http_conn_manager_prefix", #"^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)"#),
        ("thread_name", #"^server(\.(.+))\.watchdog"#),
        ("tcp_prefix", #"^tcp\.((.*?)\.)\w+?$"#),
        ("response_code", #"_rq(_(\d{3}))$"#),
        ("response_code_class", #"_rq(_(\dxx))$"#),
        (
            "http_conn_manager_listener_prefix",
            #"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#
        ),
        ("listener_address", #"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#),
        ("mongo_prefix", #"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"#),
        ("cache", #"(cache\.(.+?)\.)"#),
        ("component", #"(component\.(.+?)\.)"#),
        ("tag", #"(tag\.(.+?);\.)"#),
        ("wasm_filter", #"(wasm_filter\.(.+?)\.)"#),
        ("authz_enforce_result", #"rbac(\.(allowed|denied))"#),
        ("authz_dry_run_action", #"(\.istio_dry_run_(allow|deny)_)"#),
        ("authz_dry_run_result", #"(\.shadow_(allowed|denied))"#),
    ]

    /// The stats of the static capture listeners and their passthrough clusters. Under istiod these
    /// listeners come over xDS and people opt into their stats (proxyStatsMatcher); standalone, the
    /// agent writes the listeners itself, and a sidecar whose captured traffic cannot be seen in
    /// `/stats` cannot be debugged.
    static let captureListenerPrefixes = [
        "listener.", "tcp.", "cluster.\(BootstrapBuilder.passthroughCluster);", "cluster.\(BootstrapBuilder.inboundPassthroughCluster);",
    ]

    static func inclusionPrefixes(_ input: BootstrapInput) -> [String] {
        input.statsInclusionPrefixes + requiredPrefixes
            + (BootstrapBuilder.writesCaptureListeners(input) ? captureListenerPrefixes : [])
    }

    static func inclusionSuffixes(_ input: BootstrapInput) -> [String] {
        input.statsInclusionSuffixes + rbacSuffixes + (input.exitOnZeroActiveConnections ? [drainSuffix] : [])
    }

    static func inclusionRegexps(_ input: BootstrapInput) -> [String] {
        input.statsInclusionRegexps + requiredRegexps
    }

    static func build(_ input: BootstrapInput) -> JSONValue {
        // "reporter=" keeps Istio's standard metrics, "component" istio_build, "istio" the rest of Istio's own.
        var patterns: [JSONValue] = [["prefix": "reporter="]]
        patterns += inclusionPrefixes(input).map { ["prefix": .string($0)] }
        patterns += inclusionSuffixes(input).map { ["suffix": .string($0)] }
        patterns += inclusionRegexps(input).map { ["safe_regex": ["regex": .string($0)]] }
        patterns += [["prefix": "component"], ["prefix": "istio"]]
        return [
            "use_all_default_tags": false,
            "stats_tags": .array(tags.map { ["tag_name": .string($0.name), "regex": .string($0.regex)] }),
            "stats_matcher": ["inclusion_list": ["patterns": .array(patterns)]],
        ]
    }
}

/// Istio's static runtime layer (`extractRuntimeFlags`), with ProxyConfig.runtimeValues applied.
enum RuntimeFlags {
    static let defaults: [String: JSONValue] = [
        // Istio's regexes (stats tags, VirtualService matches) exceed RE2's default program size of 100.
        "re2.max_program_size.error_level": "32768",
        // Istio still emits `use_original_dst` on listeners it pushes; Envoy refuses deprecated fields otherwise.
        "envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst": true,
        // Istio does not reject requests whose path carries a '#' fragment.
        "envoy.reloadable_features.http_reject_path_with_fragment": false,
        // Istio pins these two guards: heap pressure counts allocated bytes, and EDS batches rebuild
        // load balancers per priority (Envoy itself reverted the coalescing default in 1.38.1).
        "envoy.reloadable_features.fixed_heap_use_allocated": true,
        "envoy.reloadable_features.coalesce_lb_rebuilds_on_batch_update": false,
    ]

    /// Keys sorted, as Go's JSON encoder writes the map Istio builds, so the layer is stable.
    static func staticLayer(_ runtimeValues: [String: String]) -> JSONValue {
        var flags = defaults
        for (key, value) in runtimeValues {
            switch value {
            // Envoy has no "unset"; Istio uses "" to drop one of its defaults.
            case "": flags[key] = nil
            case "true": flags[key] = .bool(true)
            case "false": flags[key] = .bool(false)
            default: flags[key] = .string(value)
            }
        }
        return .object(JSONObject(flags.keys.sorted().map { ($0, flags[$0]!) }))
    }
}
