import ConfigFormats

/// Builds the Envoy v3 bootstrap (`./etc/istio/proxy/envoy-rev.json`) in proto-JSON: snake_case
/// field names, durations as "0.250s", keys in a fixed order so the file is stable.
///
/// It follows Istio's default template (`tools/packaging/common/envoy_bootstrap.json`) with one
/// deliberate difference: there is no `dynamic_resources` and no `xds-grpc` cluster. Sluice runs
/// standalone, nothing serves XDS on the agent's socket, and an ADS source that never answers would
/// only keep Envoy retrying. What istiod would push for a sidecar's traffic (the passthrough
/// clusters and the two capture listeners) is therefore written here statically instead.
public enum BootstrapBuilder {
    public static func build(_ input: BootstrapInput) -> JSONValue {
        var bootstrap: JSONObject = [
            "node": node(input),
            "admin": admin(input),
            "static_resources": [
                "clusters": .array(clusters(input)),
                "listeners": .array(listeners(input)),
            ],
            "stats_config": StatsConfiguration.build(input),
            "layered_runtime": [
                "layers": [
                    ["name": "global config", "static_layer": RuntimeFlags.staticLayer(input.runtimeValues)],
                    ["name": "admin", "admin_layer": [:]],
                ]
            ],
            "bootstrap_extensions": [internalListenerExtension],
            "overload_manager": overloadManager,
        ]
        bootstrap["application_log_config"] = ["log_format": logFormat(json: input.logAsJSON)]
        return .object(bootstrap)
    }

    // MARK: - Node and admin

    static func node(_ input: BootstrapInput) -> JSONValue {
        var node: JSONObject = ["id": .string(input.nodeID), "cluster": .string(input.cluster)]
        if let locality = input.locality, !locality.isEmpty {
            var fields = JSONObject()
            if !locality.region.isEmpty { fields["region"] = .string(locality.region) }
            if !locality.zone.isEmpty { fields["zone"] = .string(locality.zone) }
            if !locality.subZone.isEmpty { fields["sub_zone"] = .string(locality.subZone) }
            node["locality"] = .object(fields)
        }
        node["metadata"] = .object(input.metadata)
        return .object(node)
    }

    static func admin(_ input: BootstrapInput) -> JSONValue {
        [
            "access_log": [[
                "name": "envoy.access_loggers.file",
                "typed_config": ["@type": .string(EnvoyTypes.fileAccessLog), "path": "/dev/null"],
            ]],
            "profile_path": "/var/lib/istio/data/envoy.prof",
            "address": ["socket_address": [
                "address": .string(input.localhostAddress),
                "port_value": .integer(Int64(input.adminPort)),
            ]],
        ]
    }

    // MARK: - Clusters

    public static let prometheusStatsCluster = "prometheus_stats"
    public static let agentCluster = "agent"
    /// Must be exactly `sds-grpc`: the TLS contexts istiod generates name this cluster for `default` and `ROOTCA`.
    public static let sdsCluster = "sds-grpc"
    public static let passthroughCluster = "PassthroughCluster"
    public static let inboundPassthroughCluster = "InboundPassthroughCluster"

    static func clusters(_ input: BootstrapInput) -> [JSONValue] {
        var clusters: [JSONValue] = [
            EnvoyResources.staticCluster(
                name: prometheusStatsCluster, connectTimeout: "0.250s",
                endpoint: EnvoyResources.socketAddress(input.localhostAddress, port: input.adminPort)),
            EnvoyResources.staticCluster(
                name: agentCluster, connectTimeout: "0.250s",
                endpoint: EnvoyResources.socketAddress(input.localhostAddress, port: input.statusPort)),
            EnvoyResources.staticCluster(
                name: sdsCluster, connectTimeout: "1s",
                endpoint: ["pipe": ["path": .string(input.sdsSocketPath)]], http2: true),
        ]
        // A gateway's traffic is whatever istiod configures; with no istiod there is nothing to pass through.
        if input.proxyType == .sidecar {
            clusters.append(outboundPassthrough())
            clusters.append(inboundPassthrough(input))
        }
        return clusters
    }

    /// Connects to wherever the captured connection was originally going (its restored local address).
    /// Istio's connect timeout is MeshConfig.connectTimeout, 10s by default.
    static func outboundPassthrough() -> JSONValue {
        [
            "name": .string(passthroughCluster),
            "alt_stat_name": .string(passthroughCluster + ";"),
            "type": "ORIGINAL_DST",
            "connect_timeout": "10s",
            "lb_policy": "CLUSTER_PROVIDED",
            "circuit_breakers": EnvoyResources.unlimitedCircuitBreakers,
        ]
    }

    /// Like the outbound passthrough, but bound to 127.0.0.6 / ::6 so the capture rules recognise
    /// Envoy's connections to the application and do not redirect them back into 15006. Under TPROXY
    /// the `original_src` listener filter rebinds to the client's address instead; Istio keeps this
    /// bind config in both modes, and so does Sluice.
    static func inboundPassthrough(_ input: BootstrapInput) -> JSONValue {
        var cluster: JSONObject = [
            "name": .string(inboundPassthroughCluster),
            "alt_stat_name": .string(inboundPassthroughCluster + ";"),
            "type": "ORIGINAL_DST",
            "connect_timeout": "10s",
            "lb_policy": "CLUSTER_PROVIDED",
            "circuit_breakers": EnvoyResources.unlimitedCircuitBreakers,
        ]
        if let source = input.inboundPassthroughSourceAddresses.first {
            var bind: JSONObject = ["source_address": ["address": .string(source), "port_value": 0]]
            let extra = input.inboundPassthroughSourceAddresses.dropFirst()
            if !extra.isEmpty {
                bind["extra_source_addresses"] = .array(extra.map { ["address": ["address": .string($0), "port_value": 0]] })
            }
            cluster["upstream_bind_config"] = .object(bind)
        }
        return .object(cluster)
    }

    // MARK: - Listeners

    public static let virtualOutboundListener = "virtualOutbound"
    public static let virtualInboundListener = "virtualInbound"

    /// With interception NONE nothing is redirected to 15001/15006, so Istio builds neither listener.
    static func writesCaptureListeners(_ input: BootstrapInput) -> Bool {
        input.proxyType == .sidecar && input.interceptionMode != .none
    }

    static func listeners(_ input: BootstrapInput) -> [JSONValue] {
        var listeners = [prometheusListener(input), readinessListener(input)]
        if writesCaptureListeners(input) {
            listeners.append(captureListener(input, direction: .outbound))
            listeners.append(captureListener(input, direction: .inbound))
        }
        return listeners
    }

    static func prometheusListener(_ input: BootstrapInput) -> JSONValue {
        let wildcards = BootstrapInput.wildcards(for: input.ipMode)
        let name: String
        let addresses: JSONObject
        if input.metricsLocalhostOnly {
            name = "\(input.localhostAddress)_\(input.prometheusPort)"
            let additional = input.ipMode == .dual ? "::1" : nil
            addresses = EnvoyResources.listenerAddresses(
                primary: input.localhostAddress, additional: additional, port: input.prometheusPort)
        } else {
            name = "0.0.0.0_\(input.prometheusPort)"
            addresses = EnvoyResources.listenerAddresses(
                primary: wildcards.primary, additional: wildcards.additional, port: input.prometheusPort)
        }
        return istioHTTPListener(
            name: name, addresses: addresses,
            manager: EnvoyResources.httpConnectionManager(
                statPrefix: "stats", routePrefix: "/stats/prometheus", cluster: prometheusStatsCluster))
    }

    /// 15021 answers the kubelet's readiness probe by asking the agent's /healthz/ready.
    static func readinessListener(_ input: BootstrapInput) -> JSONValue {
        let wildcards = BootstrapInput.wildcards(for: input.ipMode)
        return istioHTTPListener(
            name: "0.0.0.0_\(input.readinessPort)",
            addresses: EnvoyResources.listenerAddresses(
                primary: wildcards.primary, additional: wildcards.additional, port: input.readinessPort),
            manager: EnvoyResources.httpConnectionManager(
                statPrefix: "agent", routePrefix: "/healthz/ready", cluster: agentCluster))
    }

    /// Istio's own listeners stay reachable when the connection limit or overload actions kick in, so
    /// a busy pod still reports readiness and metrics.
    private static func istioHTTPListener(name: String, addresses: JSONObject, manager: JSONValue) -> JSONValue {
        var listener: JSONObject = ["name": .string(name)]
        for (key, value) in addresses { listener[key] = value }
        listener["ignore_global_conn_limit"] = true
        listener["bypass_overload_manager"] = true
        listener["filter_chains"] = [["filters": [manager]]]
        return .object(listener)
    }

    enum CaptureDirection {
        case outbound, inbound
    }

    /// The listener the capture rules redirect to. The `original_dst` listener filter restores the
    /// address the connection was really for (SO_ORIGINAL_DST under REDIRECT, the socket's own local
    /// address under TPROXY); the ORIGINAL_DST cluster then connects there.
    static func captureListener(_ input: BootstrapInput, direction: CaptureDirection) -> JSONValue {
        let wildcards = BootstrapInput.wildcards(for: input.ipMode)
        let tproxy = input.interceptionMode == .tproxy
        let (name, port, cluster, trafficDirection) =
            switch direction {
            case .outbound: (virtualOutboundListener, input.outboundCapturePort, passthroughCluster, "OUTBOUND")
            case .inbound: (virtualInboundListener, input.inboundCapturePort, inboundPassthroughCluster, "INBOUND")
            }
        var listener: JSONObject = ["name": .string(name)]
        for (key, value) in EnvoyResources.listenerAddresses(
            primary: wildcards.primary, additional: wildcards.additional, port: port)
        {
            listener[key] = value
        }
        // TPROXY delivers connections for addresses that are not local; only a transparent socket accepts them.
        if tproxy { listener["transparent"] = true }
        var filters = [EnvoyResources.originalDestinationFilter]
        if tproxy, direction == .inbound { filters.append(EnvoyResources.originalSourceFilter) }
        listener["listener_filters"] = .array(filters)
        listener["filter_chains"] = [["filters": [EnvoyResources.tcpProxy(statPrefix: cluster, cluster: cluster)]]]
        listener["traffic_direction"] = .string(trafficDirection)
        return .object(listener)
    }

    // MARK: - Extensions, overload, logs

    /// Istio always loads the internal listener extension (used by istiod's waypoint and tunnel configs).
    static let internalListenerExtension: JSONValue = [
        "name": "envoy.bootstrap.internal_listener",
        "typed_config": [
            "@type": .string(EnvoyTypes.typedStruct),
            "type_url": .string(EnvoyTypes.internalListener),
            "value": ["buffer_size_kb": 64],
        ],
    ]

    /// No practical limit (MaxInt32), but configured: Envoy warns at startup when no downstream
    /// connection limit exists, and the runtime key Istio used before is deprecated.
    static let overloadManager: JSONValue = [
        "resource_monitors": [[
            "name": .string(EnvoyTypes.globalDownstreamMaxConnections),
            "typed_config": [
                "@type": .string(EnvoyTypes.downstreamConnections),
                "max_active_downstream_connections": 2_147_483_647,
            ],
        ]]
    ]

    /// Envoy's own log lines in the agent's format, so both interleave readably on one stream.
    static func logFormat(json: Bool) -> JSONValue {
        if json {
            return ["json_format": [
                "level": "%l", "time": "%Y-%m-%dT%T.%fZ", "scope": "envoy %n", "msg": "%j",
                "caller": "%g:%#", "thread": "%t",
            ]]
        }
        return ["text_format": "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t"]
    }
}
