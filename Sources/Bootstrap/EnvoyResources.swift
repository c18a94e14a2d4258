import ConfigFormats

/// `@type` URLs and extension names, each checked against Envoy's v3 protos (the package and message
/// name of the proto, and the `[#extension: …]` name it declares).
enum EnvoyTypes {
    static let fileAccessLog = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
    static let httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    static let httpProtocolOptions = "type.googleapis.com/" + httpProtocolOptionsKey
    static let httpConnectionManager =
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    static let router = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    static let tcpProxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    static let originalDestination = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
    static let originalSource = "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
    static let typedStruct = "type.googleapis.com/udpa.type.v1.TypedStruct"
    static let internalListener = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
    static let downstreamConnections =
        "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"

    static let httpConnectionManagerName = "envoy.filters.network.http_connection_manager"
    static let routerName = "envoy.filters.http.router"
    static let tcpProxyName = "envoy.filters.network.tcp_proxy"
    static let originalDestinationName = "envoy.filters.listener.original_dst"
    static let originalSourceName = "envoy.filters.listener.original_src"
    static let globalDownstreamMaxConnections = "envoy.resource_monitors.global_downstream_max_connections"
}

/// Small builders for the pieces of Envoy configuration the bootstrap repeats.
enum EnvoyResources {
    static func socketAddress(_ address: String, port: Int) -> JSONValue {
        ["socket_address": ["protocol": "TCP", "address": .string(address), "port_value": .integer(Int64(port))]]
    }

    /// A listener address plus, for dual-stack pods, the other family's address on the same port.
    static func listenerAddresses(primary: String, additional: String?, port: Int) -> JSONObject {
        var fields: JSONObject = ["address": socketAddress(primary, port: port)]
        if let additional {
            fields["additional_addresses"] = [["address": socketAddress(additional, port: port)]]
        }
        return fields
    }

    /// A STATIC cluster with a single endpoint. `alt_stat_name` ends in ";" because Istio's stats
    /// tag regexes (`^cluster(\.(.+);)`) find the cluster name by that delimiter.
    static func staticCluster(
        name: String,
        connectTimeout: String,
        endpoint: JSONValue,
        http2: Bool = false
    ) -> JSONValue {
        var cluster: JSONObject = [
            "name": .string(name),
            "alt_stat_name": .string(name + ";"),
            "type": "STATIC",
            "connect_timeout": .string(connectTimeout),
            "lb_policy": "ROUND_ROBIN",
        ]
        if http2 {
            // gRPC (SDS) needs HTTP/2 upstream; the v3 way to say so is the typed protocol options.
            cluster["typed_extension_protocol_options"] = [
                EnvoyTypes.httpProtocolOptionsKey: [
                    "@type": .string(EnvoyTypes.httpProtocolOptions),
                    "explicit_http_config": ["http2_protocol_options": [:]],
                ]
            ]
        }
        cluster["load_assignment"] = [
            "cluster_name": .string(name),
            "endpoints": [["lb_endpoints": [["endpoint": ["address": endpoint]]]]],
        ]
        return .object(cluster)
    }

    /// Envoy's default circuit breakers cap a cluster at 1024 connections; Istio lifts every limit
    /// on its passthrough clusters so that unknown destinations are never throttled by Envoy.
    static let unlimitedCircuitBreakers: JSONValue = [
        "thresholds": [[
            "max_connections": 4_294_967_295,
            "max_pending_requests": 4_294_967_295,
            "max_requests": 4_294_967_295,
            "max_retries": 4_294_967_295,
            "track_remaining": true,
        ]]
    ]

    /// An HTTP listener with one route prefix forwarded to one cluster (the 15090 and 15021 listeners).
    static func httpConnectionManager(statPrefix: String, routePrefix: String, cluster: String) -> JSONValue {
        [
            "name": .string(EnvoyTypes.httpConnectionManagerName),
            "typed_config": [
                "@type": .string(EnvoyTypes.httpConnectionManager),
                "codec_type": "AUTO",
                "stat_prefix": .string(statPrefix),
                "route_config": [
                    "virtual_hosts": [[
                        "name": "backend",
                        "domains": ["*"],
                        "routes": [[
                            "match": ["prefix": .string(routePrefix)],
                            "route": ["cluster": .string(cluster)],
                        ]],
                    ]]
                ],
                "http_filters": [[
                    "name": .string(EnvoyTypes.routerName),
                    "typed_config": ["@type": .string(EnvoyTypes.router)],
                ]],
            ],
        ]
    }

    static func tcpProxy(statPrefix: String, cluster: String) -> JSONValue {
        [
            "name": .string(EnvoyTypes.tcpProxyName),
            "typed_config": [
                "@type": .string(EnvoyTypes.tcpProxy),
                "stat_prefix": .string(statPrefix),
                "cluster": .string(cluster),
            ],
        ]
    }

    static let originalDestinationFilter: JSONValue = [
        "name": .string(EnvoyTypes.originalDestinationName),
        "typed_config": ["@type": .string(EnvoyTypes.originalDestination)],
    ]

    /// Under TPROXY Envoy connects to the application from the client's own address; the mark (1337)
    /// routes the replies back to Envoy instead of out of the pod (Istio's `xdsfilters.OriginalSrc`).
    static let originalSourceFilter: JSONValue = [
        "name": .string(EnvoyTypes.originalSourceName),
        "typed_config": ["@type": .string(EnvoyTypes.originalSource), "mark": 1337],
    ]
}
