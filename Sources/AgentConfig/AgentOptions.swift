import Capture
/// Everything else the agent reads from its environment and flags, typed, with Istio's defaults
/// (`pilot/cmd/pilot-agent/options/*.go`, `pkg/istio-agent`).
public struct AgentOptions: Sendable, Equatable {
    /// `ISTIO_META_DNS_CAPTURE`: DNS proxy on (sidecars), and sluice-init redirects :53 to it.
    public var dnsCapture: Bool = false
    /// `ISTIO_META_ENABLE_DNS_SERVER`: DNS proxy on for any proxy type, without capture.
    public var enableDNSServer: Bool = false
    /// `(dnsCapture && sidecar) || enableDNSServer`: whether the agent runs its DNS server.
    public var dnsServerEnabled: Bool = false
    /// `DNS_PROXY_ADDR`.
    public var dnsProxyAddress: String = "localhost:15053"
    /// `DNS_FORWARD_PARALLEL`.
    public var dnsForwardParallel: Bool = false
    /// `DNS_FORWARD_TIMEOUT`: how long each upstream nameserver gets to answer.
    public var dnsForwardTimeout: Duration = .seconds(5)
    /// `SLUICE_NAME_TABLE`: the name table file the DNS proxy answers from (Istio form, under the root),
    /// standing in for istiod's NDS pushes.
    public var nameTablePath: String = AgentPaths.defaultNameTable
    /// `SLUICE_RESOLV_CONF`: the resolver file whose nameservers the DNS proxy forwards to (as sluice-init's).
    public var resolvConfPath: String = "/etc/resolv.conf"
    /// `EXIT_ON_ZERO_ACTIVE_CONNECTIONS`.
    public var exitOnZeroActiveConnections: Bool = false
    /// `MINIMUM_DRAIN_DURATION`.
    public var minimumDrainDuration: Duration = .seconds(5)
    /// `ENVOY_STATUS_PORT`: the data plane's readiness listener.
    public var envoyStatusPort: Int = 15021
    /// `ENVOY_PROMETHEUS_PORT`.
    public var envoyPrometheusPort: Int = 15090
    /// `ISTIO_BOOTSTRAP`: replaces the bootstrap template path.
    public var bootstrapTemplateOverride: String?
    /// `ISTIO_BOOTSTRAP_OVERRIDE`: a JSON/YAML file merged over the bootstrap (`--config-yaml`).
    public var bootstrapOverridePath: String?
    /// `ISTIO_DUAL_STACK`.
    public var dualStack: Bool = false
    /// `ISTIO_DELTA_XDS`: ADS as DELTA_GRPC (default since 1.22) or GRPC.
    public var deltaXDS: Bool = true
    /// `METRICS_LOCALHOST_ACCESS_ONLY`.
    public var metricsLocalhostAccessOnly: Bool = false
    /// `PILOT_AGENT_MERGE_ENVOY_STATS`.
    public var mergeEnvoyStats: Bool = true
    /// `REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION`: probe `localhost` instead of the pod IP.
    public var rewriteProbeLegacyLocalhostDestination: Bool = false
    /// `ISTIO_ENABLE_HTTP2_PROBING`.
    public var enableHTTP2Probing: Bool = true
    /// `ENABLE_PROBE_KEEPALIVE_CONNECTIONS`.
    public var enableProbeKeepaliveConnections: Bool = false
    /// `ENVOY_SKIP_DEPRECATED_LOGS`: `--skip-deprecated-logs`.
    public var skipDeprecatedLogs: Bool = true
    /// `ISTIO_ENVOY_ENABLE_CORE_DUMP`: `--enable-core-dump`.
    public var enableCoreDump: Bool = false
    /// `DISABLE_ENVOY`: proxyless mode.
    public var disableEnvoy: Bool = false
    /// `WORKLOAD_IDENTITY_SOCKET_FILE`.
    public var workloadIdentitySocketFile: String = AgentPaths.defaultWorkloadSocketFileName
    /// `GRPC_XDS_BOOTSTRAP` (Istio form).
    public var grpcBootstrapPath: String = AgentPaths.defaultGRPCBootstrap
    /// `HOST_IP`: substituted for `$(HOST_IP)` in a bootstrap override.
    public var hostIP: String = ""
    /// `XDS_HEADER_<K>`: extra headers on the istiod XDS stream.
    public var xdsHeaders: [String: String] = [:]
    /// `CA_HEADER_<K>`: extra headers on CSR calls.
    public var caHeaders: [String: String] = [:]
    /// CA_PROVIDER, CA_ADDR, SECRET_TTL and the other certificate settings.
    public var certificates = CertificateSettings()
    /// The data plane's `-l` (from `--proxyLogLevel`); nil when empty.
    public var proxyLogLevel: String? = "warning"
    /// The data plane's `--component-log-level`: the `component:level` parts of `--proxyLogLevel`, else
    /// `--proxyComponentLogLevel`; nil when neither has any.
    public var proxyComponentLogLevel: String?
    /// Resolved worker threads (`--concurrency` ← ProxyConfig ← `ISTIO_CPU_LIMIT`); nil: data plane default.
    public var concurrency: Int?
    /// `--templateFile`; nil when not given.
    public var templateFile: String?
    /// `--outlierLogPath`; nil when not given.
    public var outlierLogPath: String?
    /// `--profiling`.
    public var profiling: Bool = true
    /// `--stsPort`; 0: no STS server.
    public var stsPort: Int = 0
    public var tokenManagerPlugin: String = "GoogleTokenExchange"
    /// `--restart-proxy`.
    public var restartProxy: Bool = false
    /// `--allow-root`.
    public var allowRoot: Bool = false
    public var logLevels: LogLevels = LogLevels()
    public var logAsJSON: Bool = false
    public var logTargets: [String] = ["stdout"]

    public init() {}

    /// `-l <level> [--component-log-level <levels>]` for the data plane's command line (`pkg/envoy/proxy.go`).
    public var dataPlaneLogArguments: [String] {
        var arguments: [String] = []
        if let proxyLogLevel { arguments += ["-l", proxyLogLevel] }
        if let proxyComponentLogLevel { arguments += ["--component-log-level", proxyComponentLogLevel] }
        return arguments
    }

    /// Envoy's log level names (spdlog's, `warn` being Envoy's alias of `warning`).
    public static let dataPlaneLogLevels: Set<String> = ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"]

    /// Istio's `splitComponentLog`: `warning,misc:error,upstream:debug` → `-l warning` and
    /// `--component-log-level misc:error,upstream:debug`; the components win over `--proxyComponentLogLevel`.
    static func splitProxyLogLevel(
        _ level: String, componentLevel: String, warnings: inout [String]
    ) throws(AgentConfigError) -> (level: String?, components: String?) {
        var baseLevel: String?
        var components: [String] = []
        for item in level.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            switch parts.count {
            case 1:
                let name = String(parts[0])
                if name.isEmpty { continue }
                guard dataPlaneLogLevels.contains(name) else {
                    throw AgentConfigError("--proxyLogLevel: \(goQuoted(name)) is not a log level: use one of"
                        + " trace, debug, info, warning, error, critical, off")
                }
                baseLevel = name
            case 2:
                guard dataPlaneLogLevels.contains(String(parts[1])) else {
                    throw AgentConfigError("--proxyLogLevel: \(goQuoted(String(item))) has no valid level: use component:level"
                        + " with one of trace, debug, info, warning, error, critical, off")
                }
                components.append(String(item))
            default:
                warnings.append("--proxyLogLevel: dropping invalid log level \(goQuoted(String(item)))")
            }
        }
        if !components.isEmpty { return (baseLevel, components.joined(separator: ",")) }
        return (baseLevel, componentLevel.isEmpty ? nil : componentLevel)
    }
}
