import Capture
import ConfigFormats

/// Where something listens or is reached: an IP socket or a Unix socket (`pipe`).
public enum ProxyAddress: Sendable, Hashable, CustomStringConvertible {
    case socket(Endpoint)
    case pipe(path: String)

    public var description: String {
        switch self {
        case .socket(let endpoint): endpoint.description
        case .pipe(let path): path
        }
    }
}

/// The part of an Envoy v3 bootstrap that sluice-proxy honours, read and checked. Everything else
/// in the document either has no effect here (see `IgnoredFields`) or was refused with a
/// `ConfigError` naming its JSON path.
public struct ProxyBootstrap: Sendable {
    public var node: NodeConfig
    public var admin: AdminConfig?
    public var clusters: [ClusterConfig]
    public var listeners: [ListenerConfig]
    public var stats: StatsSettings
    /// `application_log_config.log_format.text_format`.
    public var applicationLogFormat: String?
    /// `application_log_config.log_format.json_format` (the agent writes it with `--log_as_json`).
    public var applicationLogJSONFormat: JSONObject?
    /// The `envoy.resource_monitors.global_downstream_max_connections` resource monitor.
    public var maxActiveDownstreamConnections: Int?
    /// The merged document as read, for /config_dump.
    public var source: JSONValue
    /// Accepted fields that have no effect in sluice-proxy although the user would expect one,
    /// each starting with its JSON path.
    public var warnings: [String]

    public init(
        node: NodeConfig = NodeConfig(), admin: AdminConfig? = nil, clusters: [ClusterConfig] = [],
        listeners: [ListenerConfig] = [], stats: StatsSettings = StatsSettings(), applicationLogFormat: String? = nil,
        applicationLogJSONFormat: JSONObject? = nil, maxActiveDownstreamConnections: Int? = nil,
        source: JSONValue = .object([:]), warnings: [String] = []
    ) {
        self.node = node
        self.admin = admin
        self.clusters = clusters
        self.listeners = listeners
        self.stats = stats
        self.applicationLogFormat = applicationLogFormat
        self.applicationLogJSONFormat = applicationLogJSONFormat
        self.maxActiveDownstreamConnections = maxActiveDownstreamConnections
        self.source = source
        self.warnings = warnings
    }

    public static func parse(_ document: JSONValue) throws(ConfigError) -> ProxyBootstrap {
        try BootstrapParser.parse(document)
    }

    public func cluster(named name: String) -> ClusterConfig? {
        clusters.first { $0.name == name }
    }
}

public struct NodeConfig: Sendable {
    public var id: String
    public var cluster: String
    /// `node.metadata`, an object (empty when absent).
    public var metadata: JSONValue

    public init(id: String = "", cluster: String = "", metadata: JSONValue = .object([:])) {
        self.id = id
        self.cluster = cluster
        self.metadata = metadata
    }
}

public struct AdminConfig: Sendable {
    public var address: ProxyAddress
    /// File access logs of the admin listener (`access_log` of the file logger, or `access_log_path`).
    public var accessLogPaths: [String]

    public init(address: ProxyAddress, accessLogPaths: [String] = []) {
        self.address = address
        self.accessLogPaths = accessLogPaths
    }
}

public struct ClusterConfig: Sendable {
    public enum Discovery: Sendable, Equatable {
        /// STATIC: these endpoints, in order.
        case staticEndpoints([ProxyAddress])
        /// ORIGINAL_DST: wherever the downstream connection was originally going.
        case originalDestination
    }

    public var name: String
    /// Stats live under `cluster.<statName>.`: alt_stat_name when set, else name, with `:` made `_` as Envoy does.
    public var statName: String
    public var discovery: Discovery
    /// `connect_timeout`, default 5 s.
    public var connectTimeout: Duration
    /// `upstream_bind_config.source_address`, then `extra_source_addresses`: at most one per family;
    /// an upstream connection binds the one of its destination's family.
    public var sourceAddresses: [IPAddress]
    /// `circuit_breakers`, the DEFAULT priority's `max_connections` (nil: Envoy's default of 1024 applies).
    public var maxConnections: Int?
    /// `typed_extension_protocol_options` … `explicit_http_config.http2_protocol_options`.
    public var http2: Bool

    public init(
        name: String, statName: String? = nil, discovery: Discovery, connectTimeout: Duration = .seconds(5),
        sourceAddresses: [IPAddress] = [], maxConnections: Int? = nil, http2: Bool = false
    ) {
        self.name = name
        self.statName = statName ?? EnvoyStatNames.cluster(name: name, altStatName: nil)
        self.discovery = discovery
        self.connectTimeout = connectTimeout
        self.sourceAddresses = sourceAddresses
        self.maxConnections = maxConnections
        self.http2 = http2
    }
}

public struct ListenerConfig: Sendable {
    public enum Direction: Sendable, Equatable { case unspecified, inbound, outbound }
    public enum Filter: Sendable {
        case tcpProxy(TCPProxyConfig)
        case httpConnectionManager(HTTPConnectionManagerConfig)
    }

    public var name: String
    /// `address`, then `additional_addresses`.
    public var addresses: [Endpoint]
    /// Stats live under `listener.<statName>.`: stat_prefix, else the first address as Envoy spells it
    /// in stat names, `:` made `_`: `0.0.0.0_15001`, `[__]_15001`.
    public var statName: String
    /// `transparent`: the socket accepts connections for addresses that are not local (TPROXY).
    public var transparent: Bool
    /// The `envoy.filters.listener.original_dst` listener filter.
    public var useOriginalDestination: Bool
    /// The `envoy.filters.listener.original_src` listener filter's mark (0 when the filter sets none).
    public var originalSourceMark: UInt32?
    public var direction: Direction
    public var filter: Filter
    public var ignoreGlobalConnectionLimit: Bool

    public init(
        name: String, addresses: [Endpoint], statName: String? = nil, transparent: Bool = false,
        useOriginalDestination: Bool = false, originalSourceMark: UInt32? = nil, direction: Direction = .unspecified,
        filter: Filter, ignoreGlobalConnectionLimit: Bool = false
    ) {
        self.name = name
        self.addresses = addresses
        self.statName = statName ?? addresses.first.map { EnvoyStatNames.sanitize($0.description) } ?? name
        self.transparent = transparent
        self.useOriginalDestination = useOriginalDestination
        self.originalSourceMark = originalSourceMark
        self.direction = direction
        self.filter = filter
        self.ignoreGlobalConnectionLimit = ignoreGlobalConnectionLimit
    }
}

public struct TCPProxyConfig: Sendable {
    /// Stats live under `tcp.<statPrefix>.`.
    public var statPrefix: String
    public var cluster: String
    /// `idle_timeout`; absent means Envoy's default of one hour, and `0s` (nil here) means none.
    public var idleTimeout: Duration?

    public init(statPrefix: String, cluster: String, idleTimeout: Duration? = .seconds(3600)) {
        self.statPrefix = statPrefix
        self.cluster = cluster
        self.idleTimeout = idleTimeout
    }
}

public struct HTTPConnectionManagerConfig: Sendable {
    /// Stats live under `http.<statPrefix>.`.
    public var statPrefix: String
    public var virtualHosts: [VirtualHost]

    public init(statPrefix: String, virtualHosts: [VirtualHost]) {
        self.statPrefix = statPrefix
        self.virtualHosts = virtualHosts
    }
}

public struct VirtualHost: Sendable {
    public var name: String
    public var domains: [String]
    public var routes: [Route]

    public init(name: String, domains: [String] = ["*"], routes: [Route]) {
        self.name = name
        self.domains = domains
        self.routes = routes
    }
}

public struct Route: Sendable {
    public enum Match: Sendable, Equatable {
        case prefix(String)
        case path(String)
    }

    public var match: Match
    public var cluster: String

    public init(match: Match, cluster: String) {
        self.match = match
        self.cluster = cluster
    }
}

public struct StatsSettings: Sendable {
    /// `use_all_default_tags`, default true as in Envoy.
    public var useAllDefaultTags: Bool
    public var tags: [TagSpec]
    /// `.acceptAll` when `stats_matcher` is absent.
    public var matcher: MatcherSpec

    public init(useAllDefaultTags: Bool = true, tags: [TagSpec] = [], matcher: MatcherSpec = .acceptAll) {
        self.useAllDefaultTags = useAllDefaultTags
        self.tags = tags
        self.matcher = matcher
    }
}

/// One `stats_config.stats_tags` entry: a regex extractor or a fixed value.
public struct TagSpec: Sendable, Equatable {
    public var name: String
    public var regex: String?
    public var fixedValue: String?
    /// JSON path of the entry, for errors found later (a regex that does not compile).
    public var path: String

    public init(name: String, regex: String? = nil, fixedValue: String? = nil, path: String = "") {
        self.name = name
        self.regex = regex
        self.fixedValue = fixedValue
        self.path = path
    }
}

public enum MatcherSpec: Sendable, Equatable {
    case acceptAll
    case rejectAll
    case inclusion([PatternSpec])
    case exclusion([PatternSpec])
}

/// One string matcher of `stats_matcher`.
public struct PatternSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case exact, prefix, suffix, contains, regex }
    public var kind: Kind
    public var value: String
    public var ignoreCase: Bool
    /// JSON path of the value, for errors found later (a regex that does not compile).
    public var path: String

    public init(kind: Kind, value: String, ignoreCase: Bool = false, path: String = "") {
        self.kind = kind
        self.value = value
        self.ignoreCase = ignoreCase
        self.path = path
    }
}
