import ConfigFormats

/// Everything the Envoy bootstrap depends on, already resolved by the agent's configuration
/// (flags, environment, ProxyConfig). Nothing here is read from the environment or the disk, so
/// the same input always yields the same file.
///
/// The bootstrap does not depend on Envoy's concurrency: that is a command-line flag
/// (`EnvoyArguments.concurrency`), as in Istio.
public struct BootstrapInput: Sendable, Hashable {
    /// `pilot-agent proxy <type>`. Gateways (`router`) get no passthrough clusters and no capture listeners.
    public enum ProxyType: String, Sendable, Hashable, CaseIterable {
        case sidecar
        case router
    }

    /// The pod's address families, derived from its IPs as Istio does (all v4, all v6, or both).
    public enum IPMode: String, Sendable, Hashable, CaseIterable {
        case ipv4
        case ipv6
        case dual
    }

    /// How inbound and outbound traffic reaches the capture ports (`ISTIO_META_INTERCEPTION_MODE`).
    public enum InterceptionMode: String, Sendable, Hashable, CaseIterable {
        case redirect = "REDIRECT"
        case tproxy = "TPROXY"
        /// Nothing is redirected, so Istio builds no capture listeners either.
        case none = "NONE"
    }

    /// Envoy's `node.locality`; empty parts are left out.
    public struct Locality: Sendable, Hashable {
        public var region: String
        public var zone: String
        public var subZone: String

        public init(region: String = "", zone: String = "", subZone: String = "") {
            self.region = region
            self.zone = zone
            self.subZone = subZone
        }

        public var isEmpty: Bool { region.isEmpty && zone.isEmpty && subZone.isEmpty }
    }

    /// `type~ip~pod.namespace~domain`, e.g. `sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local`.
    public var nodeID: String
    /// The service cluster, e.g. `reviews.default`.
    public var cluster: String
    /// `node.metadata` as istiod expects it (NAME, NAMESPACE, LABELS, PROXY_CONFIG, INSTANCE_IPS, …).
    public var metadata: JSONObject
    public var locality: Locality?
    public var proxyType: ProxyType
    public var ipMode: IPMode

    /// Where Envoy's admin API listens: 127.0.0.1, or ::1 when the pod is IPv6-only. The `agent` and
    /// `prometheus_stats` clusters reach the agent and the admin API on this address too.
    /// Follows `ipMode` unless set.
    public var localhostAddress: String {
        get { localhostOverride ?? Self.localhost(for: ipMode) }
        set { localhostOverride = newValue }
    }
    private var localhostOverride: String?
    /// ProxyConfig.proxyAdminPort.
    public var adminPort: Int = 15000
    /// The agent's status server (ProxyConfig.statusPort); 15021 forwards readiness to it.
    public var statusPort: Int = 15020
    /// `ENVOY_STATUS_PORT`: Envoy's own readiness listener, probed by the kubelet.
    public var readinessPort: Int = 15021
    /// `ENVOY_PROMETHEUS_PORT`: Envoy's metrics listener.
    public var prometheusPort: Int = 15090
    /// `METRICS_LOCALHOST_ACCESS_ONLY`: the metrics listener binds to localhost only.
    public var metricsLocalhostOnly: Bool = false

    /// The workload SDS socket, as written into the file (relative to the working directory `/`).
    public var sdsSocketPath: String = "./var/run/secrets/workload-spiffe-uds/socket"
    /// The agent's XDS socket path. Standalone Sluice serves no XDS, so the built-in bootstrap does not
    /// use it; custom templates see it through `config.ConfigPath` (its directory).
    public var xdsSocketPath: String = "./etc/istio/proxy/XDS"

    /// Where the capture rules send outbound (15001) and inbound (15006) TCP.
    public var outboundCapturePort: Int = 15001
    public var inboundCapturePort: Int = 15006
    public var interceptionMode: InterceptionMode = .redirect
    /// Source addresses for connections Envoy makes to the application, which the capture rules let
    /// through instead of looping them back into Envoy: the first is the bind address, the rest are
    /// Envoy's `extra_source_addresses` (it picks the one of the destination's family).
    /// Follows `ipMode` unless set.
    public var inboundPassthroughSourceAddresses: [String] {
        get { inboundPassthroughOverride ?? Self.inboundPassthroughSources(for: ipMode) }
        set { inboundPassthroughOverride = newValue }
    }
    private var inboundPassthroughOverride: [String]?

    /// `EXIT_ON_ZERO_ACTIVE_CONNECTIONS`: the drain logic polls `downstream_cx_active`, so Envoy must keep it.
    public var exitOnZeroActiveConnections: Bool = false
    /// `--log_as_json`: Envoy's own logs in JSON as well.
    public var logAsJSON: Bool = false
    /// ProxyConfig.runtimeValues, merged over Istio's static runtime layer. "" removes a default;
    /// "true" and "false" become booleans (Envoy stopped accepting them as strings).
    public var runtimeValues: [String: String] = [:]
    /// Extra stats inclusion patterns (ProxyConfig.proxyStatsMatcher or the `sidecar.istio.io/stats*`
    /// annotations), with `{pod_ip}` already substituted. They come before Istio's required ones.
    public var statsInclusionPrefixes: [String] = []
    public var statsInclusionSuffixes: [String] = []
    public var statsInclusionRegexps: [String] = []

    public init(
        nodeID: String,
        cluster: String,
        metadata: JSONObject,
        proxyType: ProxyType = .sidecar,
        ipMode: IPMode = .ipv4
    ) {
        self.nodeID = nodeID
        self.cluster = cluster
        self.metadata = metadata
        self.proxyType = proxyType
        self.ipMode = ipMode
    }

    /// Istio's `localhost` template value: ::1 only when every pod address is IPv6.
    public static func localhost(for ipMode: IPMode) -> String {
        ipMode == .ipv6 ? "::1" : "127.0.0.1"
    }

    /// The wildcard Envoy listeners bind to, and the extra one dual-stack pods add as an additional address.
    public static func wildcards(for ipMode: IPMode) -> (primary: String, additional: String?) {
        switch ipMode {
        case .ipv4: ("0.0.0.0", nil)
        case .ipv6: ("::", nil)
        case .dual: ("0.0.0.0", "::")
        }
    }

    /// 127.0.0.6 and ::6: "6 is the magical number for inbound" (15006), matched by the capture rules.
    public static func inboundPassthroughSources(for ipMode: IPMode) -> [String] {
        switch ipMode {
        case .ipv4: ["127.0.0.6"]
        case .ipv6: ["::6"]
        case .dual: ["127.0.0.6", "::6"]
        }
    }
}
