import ConfigFormats

/// Istio's `meshconfig.ProxyConfig` after merging every layer (defaults ← mesh file `defaultConfig` ←
/// `PROXY_CONFIG` ← annotation `proxy.istio.io/config`), with the fields the agent uses typed.
/// `json` is the merged document in protobuf JSON form, unknown fields included, sent verbatim as node
/// metadata `PROXY_CONFIG` so istiod sees what a real pilot-agent would send.
public struct ProxyConfig: Sendable, Equatable {
    public var configPath: String
    public var binaryPath: String
    /// nil when `tracingServiceName` was chosen instead (the two are a protobuf oneof).
    public var serviceCluster: String?
    public var tracingServiceName: TracingServiceName?
    public var drainDuration: Duration
    public var terminationDrainDuration: Duration
    public var discoveryAddress: String
    public var proxyAdminPort: Int
    public var statusPort: Int
    public var controlPlaneAuthPolicy: ControlPlaneAuthPolicy
    public var customConfigFile: String
    public var proxyBootstrapTemplatePath: String
    public var statNameLength: Int
    /// nil: not set anywhere (Envoy's default, all cores); 0: all cores, said explicitly.
    public var concurrency: Int?
    public var interceptionMode: InterceptionMode
    public var proxyMetadata: [String: String]
    public var runtimeValues: [String: String]
    public var holdApplicationUntilProxyStarts: Bool
    /// nil: Istio's default of 1 s (`--file-flush-interval-msec 1000`).
    public var fileFlushInterval: Duration?
    /// 0: not set.
    public var fileFlushMinSizeKb: Int
    public var meshId: String
    public var statsdUdpAddress: String
    public var extraStatTags: [String]
    public var proxyStatsMatcher: ProxyStatsMatcher?
    public var json: JSONObject

    /// Istio's `DefaultProxyConfig()` (`pkg/config/mesh/mesh.go`), in protojson field order.
    public static let defaultJSON: JSONObject = [
        "configPath": "./etc/istio/proxy",
        "binaryPath": "/usr/local/bin/envoy",
        "serviceCluster": "istio-proxy",
        "drainDuration": "45s",
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "proxyAdminPort": 15000,
        "controlPlaneAuthPolicy": "MUTUAL_TLS",
        "statNameLength": 189,
        "statusPort": 15020,
        "terminationDrainDuration": "5s",
    ]

    public static var defaults: ProxyConfig { ProxyConfig(normalizedJSON: defaultJSON) }

    /// istiod's name as the agent checks it in the XDS server certificate (`GetPilotSan`): the host of
    /// discoveryAddress, with `localhost` meaning istiod for local debugging.
    public var pilotSubjectAltName: String {
        let host = ProxyConfigField.host(ofAddress: discoveryAddress) ?? discoveryAddress
        return host == "localhost" ? "istiod.istio-system.svc" : host
    }

    /// Builds the typed view of a document whose known fields were already checked by `ProxyConfigLayers`.
    init(normalizedJSON json: JSONObject) {
        func string(_ key: String, _ fallback: String = "") -> String { json[key]?.stringValue ?? fallback }
        func integer(_ key: String, _ fallback: Int = 0) -> Int { json[key]?.intValue.map { Int($0) } ?? fallback }
        func duration(_ key: String) -> Duration? { json[key]?.stringValue.flatMap(DurationSyntax.parse) }
        func stringMap(_ key: String) -> [String: String] {
            var map: [String: String] = [:]
            for (name, value) in json[key]?.objectValue ?? [:] { map[name] = value.stringValue ?? "" }
            return map
        }
        func stringList(_ value: JSONValue?) -> [String] { value?.arrayValue?.compactMap(\.stringValue) ?? [] }

        configPath = string("configPath")
        binaryPath = string("binaryPath")
        serviceCluster = json["serviceCluster"]?.stringValue
        tracingServiceName = json["tracingServiceName"]?.stringValue.flatMap(TracingServiceName.init(rawValue:))
        if serviceCluster == nil && tracingServiceName == nil { serviceCluster = "" }
        drainDuration = duration("drainDuration") ?? .zero
        terminationDrainDuration = duration("terminationDrainDuration") ?? .zero
        discoveryAddress = string("discoveryAddress")
        proxyAdminPort = integer("proxyAdminPort")
        statusPort = integer("statusPort")
        controlPlaneAuthPolicy = json["controlPlaneAuthPolicy"]?.stringValue
            .flatMap(ControlPlaneAuthPolicy.init(rawValue:)) ?? .none
        customConfigFile = string("customConfigFile")
        proxyBootstrapTemplatePath = string("proxyBootstrapTemplatePath")
        statNameLength = integer("statNameLength")
        concurrency = json["concurrency"]?.intValue.map { Int($0) }
        interceptionMode = json["interceptionMode"]?.stringValue.flatMap(InterceptionMode.init(rawValue:)) ?? .redirect
        proxyMetadata = stringMap("proxyMetadata")
        runtimeValues = stringMap("runtimeValues")
        holdApplicationUntilProxyStarts = json["holdApplicationUntilProxyStarts"]?.boolValue ?? false
        fileFlushInterval = duration("fileFlushInterval")
        fileFlushMinSizeKb = integer("fileFlushMinSizeKb")
        meshId = string("meshId")
        statsdUdpAddress = string("statsdUdpAddress")
        extraStatTags = stringList(json["extraStatTags"])
        proxyStatsMatcher = json["proxyStatsMatcher"]?.objectValue.map { matcher in
            ProxyStatsMatcher(
                inclusionPrefixes: stringList(matcher["inclusionPrefixes"]),
                inclusionSuffixes: stringList(matcher["inclusionSuffixes"]),
                inclusionRegexps: stringList(matcher["inclusionRegexps"]))
        }
        self.json = json
    }
}

public enum TracingServiceName: String, Sendable, Hashable, CaseIterable {
    case appLabelAndNamespace = "APP_LABEL_AND_NAMESPACE"
    case canonicalNameOnly = "CANONICAL_NAME_ONLY"
    case canonicalNameAndNamespace = "CANONICAL_NAME_AND_NAMESPACE"
}

public enum ControlPlaneAuthPolicy: String, Sendable, Hashable, CaseIterable {
    case none = "NONE"
    case mutualTLS = "MUTUAL_TLS"
    /// Only meaningful on a per-pod override of mesh policy; Istio's validation rejects it for a proxy.
    case inherit = "INHERIT"
}

/// How inbound traffic reaches the data plane (`ProxyConfig.InboundInterceptionMode`).
public enum InterceptionMode: String, Sendable, Hashable, CaseIterable {
    case redirect = "REDIRECT"
    case tproxy = "TPROXY"
    case none = "NONE"
}

public struct ProxyStatsMatcher: Sendable, Equatable {
    public var inclusionPrefixes: [String]
    public var inclusionSuffixes: [String]
    public var inclusionRegexps: [String]

    public init(inclusionPrefixes: [String] = [], inclusionSuffixes: [String] = [], inclusionRegexps: [String] = []) {
        self.inclusionPrefixes = inclusionPrefixes
        self.inclusionSuffixes = inclusionSuffixes
        self.inclusionRegexps = inclusionRegexps
    }
}
