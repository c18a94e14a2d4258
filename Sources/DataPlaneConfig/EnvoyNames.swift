import Capture

/// Envoy's names for the extensions the bootstrap subset uses: the proto message behind each
/// `typed_config` `@type` (Envoy finds an extension by that type, whatever its `name` says), and the
/// extension names for configurations written without a `typed_config`.
enum EnvoyTypes {
    static let tcpProxy = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    static let httpConnectionManager = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    static let router = "envoy.extensions.filters.http.router.v3.Router"
    static let originalDestination = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
    static let originalSource = "envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
    static let tlsInspector = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
    static let httpInspector = "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
    static let httpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    static let downstreamConnections = "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
    static let fileAccessLog = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
    static let stdoutAccessLog = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    static let stderrAccessLog = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
    static let internalListener = "envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
    static let typedStruct = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]

    static let tcpProxyName = "envoy.filters.network.tcp_proxy"
    static let httpConnectionManagerName = "envoy.filters.network.http_connection_manager"
    static let routerName = "envoy.filters.http.router"
    static let originalDestinationName = "envoy.filters.listener.original_dst"
    static let originalSourceName = "envoy.filters.listener.original_src"
    static let tlsInspectorName = "envoy.filters.listener.tls_inspector"
    static let httpInspectorName = "envoy.filters.listener.http_inspector"
    static let globalDownstreamMaxConnectionsName = "envoy.resource_monitors.global_downstream_max_connections"
    static let internalListenerName = "envoy.bootstrap.internal_listener"

    /// `type.googleapis.com/envoy.….TcpProxy` → `envoy.….TcpProxy`: the part after the last `/`, as
    /// protobuf resolves an `Any`.
    static func messageName(ofTypeURL url: String) -> String {
        guard let slash = url.lastIndex(of: "/") else { return url }
        return String(url[url.index(after: slash)...])
    }
}

/// Stat names as Envoy builds them.
enum EnvoyStatNames {
    /// Envoy's `Stats::Utility::sanitizeStatsName`, which every scope name passes through: `:` (and
    /// `://`, `:/`) become `_`, so a listener on `[::]:15001` has stats under `listener.[__]_15001.`.
    static func sanitize(_ name: String) -> String {
        var result = ""
        var characters = Substring(name)
        while let first = characters.first {
            if characters.hasPrefix("://") {
                result += "_"
                characters = characters.dropFirst(3)
            } else if characters.hasPrefix(":/") {
                result += "_"
                characters = characters.dropFirst(2)
            } else {
                result.append(first == ":" || first == "\0" ? "_" : first)
                characters = characters.dropFirst()
            }
        }
        return result
    }

    /// The listener's scope without `listener.` and the trailing dot (Envoy's `listenerStatsScope`):
    /// stat_prefix when set, else the first address as `Address::asString()` spells it
    /// (`0.0.0.0:15001`, `[::]:15001`), sanitized.
    static func listener(statPrefix: String?, address: Endpoint) -> String {
        if let statPrefix, !statPrefix.isEmpty { return sanitize(statPrefix) }
        return sanitize(address.description)
    }

    /// The cluster's scope without `cluster.` and the trailing dot: alt_stat_name when set, else name.
    static func cluster(name: String, altStatName: String?) -> String {
        if let altStatName, !altStatName.isEmpty { return sanitize(altStatName) }
        return sanitize(name)
    }
}
