/// Bootstrap fields sluice-proxy accepts and does not act on, by protobuf message, each with the
/// reason it is safe to accept. `warns` is true where a user setting the field would expect an
/// effect; the fields pilot-agent always writes are quiet, so a normal start prints nothing.
///
/// Any field that is neither read by the parser nor listed here is refused with its JSON path:
/// Envoy might honour it, and sluice-proxy would not.
struct IgnoredField: Sendable {
    let message: String
    let field: String
    let warns: Bool
    let reason: String
}

enum IgnoredFields {
    static func entry(message: String, field: String) -> IgnoredField? {
        table.first { $0.message == message && $0.field == field }
    }

    private static func quiet(_ message: String, _ field: String, _ reason: String) -> IgnoredField {
        IgnoredField(message: message, field: field, warns: false, reason: reason)
    }

    private static func warning(_ message: String, _ field: String, _ reason: String) -> IgnoredField {
        IgnoredField(message: message, field: field, warns: true, reason: reason)
    }

    static let table: [IgnoredField] = [
        // Bootstrap
        quiet("Bootstrap", "layered_runtime", "sluice-proxy has no runtime; Istio's flags tune Envoy features it lacks"),
        quiet("Bootstrap", "runtime", "sluice-proxy has no runtime"),
        quiet("Bootstrap", "stats_flush_interval", "stats are read when asked for; there are no sinks to flush to"),
        quiet("Bootstrap", "stats_flush_on_admin", "stats are read when asked for; there are no sinks to flush to"),
        quiet("Bootstrap", "deferred_stat_options", "stats are created when first used anyway"),
        quiet("Bootstrap", "watchdog", "sluice-proxy runs no watchdog"),
        quiet("Bootstrap", "watchdogs", "sluice-proxy runs no watchdog"),
        quiet("Bootstrap", "fatal_actions", "sluice-proxy runs no watchdog"),
        quiet("Bootstrap", "node_context_params", "only used in requests to a management server; there is none"),
        quiet("Bootstrap", "config_sources", "sluice-proxy has no xDS client"),
        quiet("Bootstrap", "default_config_source", "sluice-proxy has no xDS client"),
        quiet("Bootstrap", "xds_delegate_extension", "sluice-proxy has no xDS client"),
        quiet("Bootstrap", "xds_config_tracker_extension", "sluice-proxy has no xDS client"),
        quiet("Bootstrap", "grpc_async_client_manager_config", "sluice-proxy has no gRPC client"),
        quiet("Bootstrap", "use_tcp_for_dns_lookups", "sluice-proxy resolves no names"),
        quiet("Bootstrap", "dns_resolution_config", "sluice-proxy resolves no names"),
        quiet("Bootstrap", "typed_dns_resolver_config", "sluice-proxy resolves no names"),
        quiet("Bootstrap", "certificate_provider_instances", "sluice-proxy terminates no TLS"),
        quiet("Bootstrap", "default_regex_engine", "regexes are matched by sluice-proxy's own engine"),
        quiet("Bootstrap", "inline_headers", "an Envoy memory layout optimisation"),
        quiet("Bootstrap", "memory_allocator_manager", "sluice-proxy does not use tcmalloc"),
        quiet("Bootstrap", "default_socket_interface", "sluice-proxy has one socket interface"),
        quiet("Bootstrap", "stats_server_version_override", "server.version is not among sluice-proxy's stats"),
        quiet("Bootstrap", "header_prefix", "sluice-proxy adds no x-envoy headers"),
        warning("Bootstrap", "tracing", "sluice-proxy does not trace requests"),
        warning("Bootstrap", "enable_dispatcher_stats", "sluice-proxy keeps no event loop stats"),
        warning("Bootstrap", "flags_path", "sluice-proxy reads no flag files"),

        // Node: identity is reported by /server_info; the rest only matters to a management server.
        quiet("Node", "locality", "locality only matters to a management server and zone-aware EDS"),
        quiet("Node", "user_agent_name", "only sent to a management server"),
        quiet("Node", "user_agent_version", "only sent to a management server"),
        quiet("Node", "user_agent_build_version", "only sent to a management server"),
        quiet("Node", "extensions", "only sent to a management server"),
        quiet("Node", "client_features", "only sent to a management server"),
        quiet("Node", "listening_addresses", "only sent to a management server"),
        quiet("Node", "dynamic_parameters", "only sent to a management server"),

        // Admin
        quiet("Admin", "profile_path", "sluice-proxy has no CPU profiler"),
        quiet("Admin", "ignore_global_conn_limit", "the admin listener is not counted against the connection limit"),

        // Listener
        quiet("Listener", "bypass_overload_manager", "sluice-proxy runs no overload actions"),
        quiet("Listener", "metadata", "read by other filters; sluice-proxy has none that read it"),
        quiet("Listener", "enable_reuse_port", "a socket option tuning accept spreading; no change in behaviour"),
        quiet("Listener", "connection_balance_config", "the kernel spreads accepted connections over the workers"),
        quiet("Listener", "listener_filters_timeout", "sluice-proxy's listener filters read no data"),
        quiet("Listener", "continue_on_listener_filters_timeout", "sluice-proxy's listener filters read no data"),
        quiet("Listener", "max_connections_to_accept_per_socket_event", "an accept loop tuning; no change in behaviour"),
        warning("Listener", "per_connection_buffer_limit_bytes", "sluice-proxy sizes its own per-connection buffers"),
        warning("Listener", "tcp_backlog_size", "sluice-proxy sets its own listen backlog"),
        quiet("FilterChain", "name", "only names the chain; there is one"),
        quiet("FilterChain", "metadata", "read by other filters; sluice-proxy has none that read it"),
        quiet("FilterChain", "transport_socket_connect_timeout", "there is no transport socket to wait for"),

        // Clusters
        quiet("Cluster", "metadata", "read by other filters; sluice-proxy has none that read it"),
        quiet("Cluster", "dns_lookup_family", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "dns_refresh_rate", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "dns_failure_refresh_rate", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "respect_dns_ttl", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "dns_resolvers", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "dns_resolution_config", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "typed_dns_resolver_config", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "use_tcp_for_dns_lookups", "STATIC and ORIGINAL_DST clusters resolve no names"),
        quiet("Cluster", "wait_for_warm_on_init", "STATIC and ORIGINAL_DST clusters are warm at once"),
        quiet("Cluster", "cleanup_interval", "sluice-proxy keeps no pool of original-destination hosts"),
        quiet("Cluster", "common_lb_config", "sluice-proxy does no health-aware load balancing"),
        quiet("Cluster", "close_connections_on_host_health_failure", "sluice-proxy does no health checking"),
        quiet("Cluster", "ignore_health_on_host_removal", "sluice-proxy does no health checking"),
        quiet("Cluster", "track_timeout_budgets", "only adds histograms, which sluice-proxy does not keep"),
        quiet("Cluster", "track_cluster_stats", "only adds histograms, which sluice-proxy does not keep"),
        quiet("Cluster", "connection_pool_per_downstream_connection", "sluice-proxy pools no upstream connections"),
        quiet("Cluster", "preconnect_policy", "sluice-proxy pools no upstream connections"),
        warning("Cluster", "per_connection_buffer_limit_bytes", "sluice-proxy sizes its own per-connection buffers"),
        warning("Cluster", "upstream_connection_options", "upstream TCP keepalive is not configured"),
        warning("Cluster", "max_requests_per_connection", "sluice-proxy reuses no upstream connection for requests"),
        warning("Cluster", "protocol_selection", "the upstream protocol is always the configured one"),
        // Istio lifts every limit on its passthrough clusters; L4 forwarding has no requests, pending
        // requests or retries to count, so only max_connections is enforced.
        quiet("Thresholds", "max_pending_requests", "forwarding counts connections, not requests"),
        quiet("Thresholds", "max_requests", "forwarding counts connections, not requests"),
        quiet("Thresholds", "max_retries", "sluice-proxy does not retry"),
        quiet("Thresholds", "track_remaining", "no remaining_* gauges are kept"),
        quiet("Thresholds", "retry_budget", "sluice-proxy does not retry"),
        quiet("Thresholds", "max_connection_pools", "sluice-proxy pools no upstream connections"),
        warning("CircuitBreakers", "per_host_thresholds", "only the cluster-wide max_connections is enforced"),
        quiet("ClusterLoadAssignment", "cluster_name", "a STATIC cluster takes its inline endpoints whatever this says"),
        quiet("ClusterLoadAssignment", "policy", "drop and overprovisioning policies only matter with EDS"),
        quiet("LocalityLbEndpoints", "locality", "sluice-proxy does no zone-aware routing"),
        quiet("LocalityLbEndpoints", "load_balancing_weight", "sluice-proxy does no locality-weighted balancing"),
        quiet("LocalityLbEndpoints", "proximity", "sluice-proxy does no zone-aware routing"),
        warning("LbEndpoint", "load_balancing_weight", "endpoints take turns, without weights"),
        quiet("LbEndpoint", "metadata", "read by subset load balancing, which sluice-proxy does not do"),
        quiet("LbEndpoint", "endpoint_name", "only names the endpoint"),
        quiet("Endpoint", "hostname", "used for health checks and host rewrites, which sluice-proxy does not do"),
        quiet("Endpoint", "health_check_config", "sluice-proxy does no health checking"),
        warning("HttpProtocolOptions", "common_http_protocol_options", "upstream HTTP timeouts and limits are not applied"),
        quiet("HttpProtocolOptions", "upstream_http_protocol_options", "only used for upstream TLS"),

        // Listener and network filters
        quiet("TcpProxy", "metadata_match", "read by subset load balancing, which sluice-proxy does not do"),
        quiet("TcpProxy", "hash_policy", "consistent hashing only matters with several endpoints"),
        warning("TcpProxy", "max_connect_attempts", "sluice-proxy makes one connection attempt"),
        quiet("RouteConfiguration", "name", "only names the route table; it is inline"),
        quiet("RouteConfiguration", "validate_clusters", "route clusters are always checked"),
        quiet("Route", "name", "only names the route"),
        quiet("Route", "metadata", "read by other filters; sluice-proxy has none that read it"),
        quiet("Route", "decorator", "only names the span; sluice-proxy does not trace"),
        quiet("HttpFilter", "is_optional", "the router is always there"),
        quiet("Router", "dynamic_stats", "no per-request timing stats are kept"),
        quiet("Router", "start_child_span", "sluice-proxy does not trace"),
        quiet("Router", "suppress_envoy_headers", "sluice-proxy adds no x-envoy headers"),

        // Stats
        quiet("StatsConfig", "histogram_bucket_settings", "sluice-proxy keeps no histograms"),
        quiet("RegexMatcher", "google_re2", "regexes are matched by sluice-proxy's own engine"),

        // Overload manager: the resource monitors only feed overload actions, which are refused.
        quiet("OverloadManager", "refresh_interval", "only paces resource monitors for overload actions"),
        quiet("OverloadManager", "buffer_factor_config", "only sizes buffers under overload actions"),
    ]
}
