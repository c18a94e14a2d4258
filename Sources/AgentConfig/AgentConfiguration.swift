import Capture
import ConfigFormats

/// Reads the few files configuration comes from. Injected so that resolution stays pure and testable.
public protocol AgentFileReader {
    /// The file's text, or nil when it does not exist. Any other failure throws.
    func contents(ofFile absolutePath: String) throws -> String?
}

/// Where the data plane's bootstrap comes from (AGENT.md §4).
public enum BootstrapSource: Sendable, Equatable {
    /// ProxyConfig.customConfigFile: used as the bootstrap as it is, not rendered.
    case customConfigFile(String)
    /// A template to render: `ISTIO_BOOTSTRAP`, else ProxyConfig.proxyBootstrapTemplatePath (`--templateFile`),
    /// else Istio's default template path.
    case template(String)
}

/// Everything `pilot-agent proxy` needs, resolved from argv, environment and files, and validated.
public struct AgentConfiguration: Sendable, Equatable {
    public var paths: AgentPaths
    public var proxyConfig: ProxyConfig
    public var identity: NodeIdentity
    /// The data plane's `node.metadata`, keys sorted (as Istio's Go maps render).
    public var metadata: JSONObject
    public var options: AgentOptions
    /// From `ISTIO_KUBE_APP_PROBERS`, by path (`/app-health/<container>/readyz`).
    public var appProbers: [String: AppProbe]
    /// From `ISTIO_PROMETHEUS_ANNOTATIONS`; nil when unset or not a sidecar.
    public var prometheusScrape: PrometheusScrapeConfig?
    public var bootstrapSource: BootstrapSource
    /// The environment as the agent sees it: ProxyConfig.proxyMetadata entries under the real environment.
    /// Also the data plane's environment (Istio passes its own environment on).
    public var environment: [String: String]
    public var warnings: [String]

    /// The Istio version the agent reports (node metadata `ISTIO_VERSION`): the Istio release whose
    /// behaviour Sluice follows.
    public static let istioVersion = "1.31.0-sluice"

    /// The pod annotation carrying a per-pod ProxyConfig overlay.
    public static let proxyConfigAnnotation = "proxy.istio.io/config"
    public static let statusPortAnnotation = "status.sidecar.istio.io/port"
    public static let discoveryAddressAnnotation = "sidecar.istio.io/discoveryAddress"

    /// Resolves `pilot-agent proxy`'s configuration. `hostAddresses` are the pod's own private addresses
    /// (Istio's `GetPrivateIPs`: up, non-loopback, non-link-local), which the caller collects.
    ///
    /// ProxyConfig.proxyMetadata entries act as environment variables that the real environment
    /// overrides. Istio's injector copies proxyMetadata into the container's environment, where an explicit
    /// variable of the same name wins, and `GetNodeMetaData` lets `ISTIO_META_*` variables override
    /// proxyMetadata; applying them here gives the same result in Kubernetes and lets mesh-config
    /// proxyMetadata work where no injector ran (VMs, tests).
    public static func resolve(
        invocation: AgentInvocation,
        environment: [String: String],
        files: some AgentFileReader,
        hostAddresses: [String]
    ) throws(AgentConfigError) -> AgentConfiguration {
        guard case .proxy(let arguments) = invocation.command else {
            throw AgentConfigError("only `pilot-agent proxy` has an agent configuration to resolve")
        }
        var warnings = invocation.warnings

        // Root directory.
        let rootSource: String
        let rootText: String
        if let root = invocation.common.root {
            (rootSource, rootText) = ("--root", root)
        } else if let root = environment["SLUICE_ROOT"], !root.isEmpty {
            (rootSource, rootText) = ("SLUICE_ROOT", root)
        } else {
            (rootSource, rootText) = ("root", "/")
        }
        guard rootText.hasPrefix("/") else {
            throw AgentConfigError("\(rootSource) \(goQuoted(rootText)) must be an absolute path")
        }
        var paths = AgentPaths(root: rootText, meshConfig: arguments.meshConfigPath)

        func read(_ istioPath: String, _ what: String) throws(AgentConfigError) -> (text: String, path: String)? {
            let path = paths.filesystemPath(istioPath)
            do {
                return try files.contents(ofFile: path).map { ($0, path) }
            } catch {
                throw AgentConfigError("cannot read \(what) \(path): \(error)")
            }
        }

        // Downward API files.
        let annotations = try read(AgentPaths.podAnnotations, "pod annotations").map { file throws(AgentConfigError) in
            try DownwardAPIFile.parse(file.text, fileName: file.path)
        } ?? DownwardAPIFile()
        var podLabels = try read(AgentPaths.podLabels, "pod labels").map { file throws(AgentConfigError) in
            try DownwardAPIFile.parse(file.text, fileName: file.path)
        }
        // Deployments add pod-template-hash to every pod; Istio drops it so it never becomes a workload label.
        podLabels?["pod-template-hash"] = nil

        // ProxyConfig: defaults ← mesh config defaultConfig ← PROXY_CONFIG ← annotation.
        var layers = ProxyConfigLayers()
        if let mesh = try read(arguments.meshConfigPath, "mesh config"), !mesh.text.isEmpty {
            let source = "mesh config \(mesh.path)"
            let document: JSONValue
            do {
                document = try JSONValue.parse(yamlOrJSON: mesh.text)
            } catch {
                throw AgentConfigError("\(source): not valid YAML: \(error.message)")
            }
            if case .null = document {
            } else if let meshConfig = document.objectValue {
                if let defaultConfig = meshConfig["defaultConfig"] ?? meshConfig["default_config"] {
                    try layers.apply(defaultConfig, source: "\(source) defaultConfig")
                }
            } else {
                throw AgentConfigError("\(source): want a MeshConfig object, got \(document.kindDescription)")
            }
        }
        if let proxyConfigText = environment["PROXY_CONFIG"], !proxyConfigText.isEmpty {
            try layers.apply(text: proxyConfigText, source: "PROXY_CONFIG")
        }
        if let annotation = annotations[proxyConfigAnnotation], !annotation.isEmpty {
            try layers.apply(text: annotation, source: "annotation \(proxyConfigAnnotation)")
        }
        warnings += layers.warnings

        // Deprecated flags fill in what ProxyConfig leaves empty (`ConstructProxyConfig`, proxy RunE).
        if layers.merged["tracingServiceName"] == nil, (layers.merged["serviceCluster"]?.stringValue ?? "").isEmpty {
            guard !arguments.serviceCluster.isEmpty else {
                throw AgentConfigError("ProxyConfig serviceCluster is empty and so is --serviceCluster: set either"
                    + " (or tracingServiceName)")
            }
            layers.set("serviceCluster", .string(arguments.serviceCluster))
        }
        if !arguments.templateFile.isEmpty, (layers.merged["customConfigFile"]?.stringValue ?? "").isEmpty {
            layers.set("proxyBootstrapTemplatePath", .string(arguments.templateFile))
        }
        if layers.merged["controlPlaneAuthPolicy"]?.stringValue == ControlPlaneAuthPolicy.inherit.rawValue {
            throw AgentConfigError("ProxyConfig controlPlaneAuthPolicy INHERIT is only for mesh-wide policy: use MUTUAL_TLS or NONE")
        }

        // The environment as the agent sees it.
        var effectiveEnvironment = environment
        for (name, value) in layers.merged["proxyMetadata"]?.objectValue ?? [:] where effectiveEnvironment[name] == nil {
            effectiveEnvironment[name] = value.stringValue ?? ""
        }
        let env = EnvironmentReader(values: effectiveEnvironment)

        // Concurrency: --concurrency ← ProxyConfig ← ISTIO_CPU_LIMIT.
        if arguments.concurrency != 0 {
            warnings.append("--concurrency is deprecated: set concurrency in ProxyConfig (annotation \(proxyConfigAnnotation));"
                + " using \(arguments.concurrency)")
            layers.set("concurrency", .integer(Int64(arguments.concurrency)))
        } else if layers.merged["concurrency"] == nil {
            let cpuLimit = try env.integer("ISTIO_CPU_LIMIT", default: 0, in: 0...Int(Int32.max),
                                           want: "a whole number of CPUs, 0 or more")
            if cpuLimit > 0 { layers.set("concurrency", .integer(Int64(cpuLimit))) }
        }
        if layers.merged["concurrency"]?.intValue == 0 {
            warnings.append("concurrency is 0: the data plane starts one worker thread per host core")
        }

        // Per-pod annotations applied after validation, as Istio's `applyAnnotations` does.
        if let address = annotations[discoveryAddressAnnotation] {
            guard ProxyConfigField.isHostPort(address) else {
                throw AgentConfigError("annotation \(discoveryAddressAnnotation)=\(goQuoted(address)) is not a host:port address")
            }
            layers.set("discoveryAddress", .string(address))
        }
        if let portText = annotations[statusPortAnnotation] {
            guard let port = Int(portText), (0...65535).contains(port) else {
                throw AgentConfigError("annotation \(statusPortAnnotation)=\(goQuoted(portText)) is not a port number:"
                    + " use 0-65535 (0 turns the status server off)")
            }
            layers.set("statusPort", .integer(Int64(port)))
        }
        let proxyConfig = ProxyConfig(normalizedJSON: layers.merged)
        paths.configDirectory = proxyConfig.configPath

        // Options.
        var options = AgentOptions()
        options.dnsCapture = try env.bool("ISTIO_META_DNS_CAPTURE", default: false)
        options.enableDNSServer = try env.bool("ISTIO_META_ENABLE_DNS_SERVER", default: false)
        options.dnsServerEnabled = (options.dnsCapture && arguments.proxyType == .sidecar) || options.enableDNSServer
        options.dnsProxyAddress = env.string("DNS_PROXY_ADDR", default: "localhost:15053")
        options.dnsForwardParallel = try env.bool("DNS_FORWARD_PARALLEL", default: false)
        options.dnsForwardTimeout = try env.duration("DNS_FORWARD_TIMEOUT", default: .seconds(5))
        guard options.dnsForwardTimeout > .zero else {
            throw AgentConfigError("DNS_FORWARD_TIMEOUT must be longer than 0s: use a duration such as 5s")
        }
        options.nameTablePath = env.string("SLUICE_NAME_TABLE", default: AgentPaths.defaultNameTable)
        options.resolvConfPath = env.string("SLUICE_RESOLV_CONF", default: "/etc/resolv.conf")
        options.exitOnZeroActiveConnections = try env.bool("EXIT_ON_ZERO_ACTIVE_CONNECTIONS", default: false)
        options.minimumDrainDuration = try env.duration("MINIMUM_DRAIN_DURATION", default: .seconds(5))
        options.envoyStatusPort = try env.port("ENVOY_STATUS_PORT", default: 15021)
        options.envoyPrometheusPort = try env.port("ENVOY_PROMETHEUS_PORT", default: 15090)
        options.bootstrapTemplateOverride = env.string("ISTIO_BOOTSTRAP")
        options.bootstrapOverridePath = env.string("ISTIO_BOOTSTRAP_OVERRIDE")
        options.dualStack = try env.bool("ISTIO_DUAL_STACK", default: false)
        options.deltaXDS = try env.bool("ISTIO_DELTA_XDS", default: true)
        options.metricsLocalhostAccessOnly = try env.bool("METRICS_LOCALHOST_ACCESS_ONLY", default: false)
        options.mergeEnvoyStats = try env.bool("PILOT_AGENT_MERGE_ENVOY_STATS", default: true)
        options.rewriteProbeLegacyLocalhostDestination = try env.bool("REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION", default: false)
        options.enableHTTP2Probing = try env.bool("ISTIO_ENABLE_HTTP2_PROBING", default: true)
        options.enableProbeKeepaliveConnections = try env.bool("ENABLE_PROBE_KEEPALIVE_CONNECTIONS", default: false)
        options.skipDeprecatedLogs = try env.bool("ENVOY_SKIP_DEPRECATED_LOGS", default: true)
        options.enableCoreDump = try env.bool("ISTIO_ENVOY_ENABLE_CORE_DUMP", default: false)
        options.disableEnvoy = try env.bool("DISABLE_ENVOY", default: false)
        options.workloadIdentitySocketFile = env.string("WORKLOAD_IDENTITY_SOCKET_FILE", default: AgentPaths.defaultWorkloadSocketFileName)
        guard !options.workloadIdentitySocketFile.contains("/") else {
            throw AgentConfigError("WORKLOAD_IDENTITY_SOCKET_FILE=\(goQuoted(options.workloadIdentitySocketFile)) must be a file name,"
                + " not a path: the socket lives in \(AgentPaths.workloadSocketDirectory)")
        }
        paths.workloadSocket = AgentPaths.join(AgentPaths.workloadSocketDirectory, options.workloadIdentitySocketFile)
        options.grpcBootstrapPath = env.string("GRPC_XDS_BOOTSTRAP", default: AgentPaths.defaultGRPCBootstrap)
        options.hostIP = env.string("HOST_IP", default: "")
        options.xdsHeaders = Dictionary(env.withPrefix("XDS_HEADER_").map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        options.caHeaders = Dictionary(env.withPrefix("CA_HEADER_").map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        options.certificates = try CertificateSettings.read(env, discoveryAddress: proxyConfig.discoveryAddress)
        (options.proxyLogLevel, options.proxyComponentLogLevel) = try AgentOptions.splitProxyLogLevel(
            arguments.proxyLogLevel, componentLevel: arguments.proxyComponentLogLevel, warnings: &warnings)
        options.concurrency = proxyConfig.concurrency
        options.templateFile = arguments.templateFile.isEmpty ? nil : arguments.templateFile
        options.outlierLogPath = arguments.outlierLogPath.isEmpty ? nil : arguments.outlierLogPath
        options.profiling = arguments.profiling
        options.stsPort = arguments.stsPort
        options.tokenManagerPlugin = arguments.tokenManagerPlugin
        options.restartProxy = invocation.common.restartProxy
        options.allowRoot = invocation.common.allowRoot
        options.logLevels = invocation.common.logLevels
        options.logAsJSON = invocation.common.logAsJSON
        options.logTargets = invocation.common.logTargets

        // Identity.
        let podName = env.string("POD_NAME", default: "")
        let podNamespace = env.string("POD_NAMESPACE", default: "")
        if podName.isEmpty { warnings.append("POD_NAME is not set: the node id will be \".\(podNamespace)\"") }
        if podNamespace.isEmpty { warnings.append("POD_NAMESPACE is not set: the node id and DNS domain have no namespace") }
        var instanceIP: String?
        if let text = env.string("INSTANCE_IP") {
            if let address = IPAddress(text) {
                instanceIP = address.description
            } else {
                warnings.append("INSTANCE_IP=\(goQuoted(text)) is not an IP address; ignored")
            }
        }
        for address in hostAddresses where IPAddress(address) == nil {
            warnings.append("host address \(goQuoted(address)) is not an IP address; ignored")
        }
        let ipAddresses = NodeIdentity.addresses(instanceIP: instanceIP, hostAddresses: hostAddresses)
        let interceptionMode: InterceptionMode
        if let text = env.string("ISTIO_META_INTERCEPTION_MODE") {
            guard let mode = InterceptionMode(rawValue: text) else {
                throw AgentConfigError("ISTIO_META_INTERCEPTION_MODE=\(goQuoted(text)) is not REDIRECT, TPROXY or NONE")
            }
            interceptionMode = mode
        } else {
            interceptionMode = proxyConfig.interceptionMode
        }

        var metadataBuilder = NodeMetadataBuilder(environment: env)
        try metadataBuilder.collectEnvironment()
        var labels = metadataBuilder.staticLabels
        for (key, value) in podLabels?.entries ?? [] { labels[key] = value }
        let workloadName = env.string("ISTIO_META_WORKLOAD_NAME", default: "")
        let domain = arguments.domain.isEmpty ? "\(podNamespace).svc.cluster.local" : arguments.domain
        let id = "\(podName).\(podNamespace)"
        let identity = NodeIdentity(
            proxyType: arguments.proxyType,
            ipAddresses: ipAddresses,
            ipMode: IPMode(addresses: ipAddresses),
            podName: podName,
            podNamespace: podNamespace,
            id: id,
            domain: domain,
            serviceNode: [arguments.proxyType.rawValue, ipAddresses[0], id, domain].joined(separator: "~"),
            cluster: NodeIdentity.cluster(
                serviceCluster: proxyConfig.serviceCluster, tracingServiceName: proxyConfig.tracingServiceName,
                labels: labels, workloadName: workloadName, namespace: podNamespace),
            trustDomain: env.string("TRUST_DOMAIN", default: "cluster.local"),
            serviceAccount: env.string("SERVICE_ACCOUNT", default: ""),
            clusterID: env.string("ISTIO_META_CLUSTER_ID", default: ""),
            interceptionMode: interceptionMode,
            workloadName: workloadName,
            labels: labels,
            annotations: annotations.dictionary)

        let metadata = metadataBuilder.build(
            identity: identity, proxyConfig: proxyConfig, options: options)

        // Status server inputs.
        var appProbers: [String: AppProbe] = [:]
        if let text = env.string("ISTIO_KUBE_APP_PROBERS") {
            appProbers = try AppProbe.parseProbers(text)
        }
        var prometheusScrape: PrometheusScrapeConfig?
        if let text = env.string("ISTIO_PROMETHEUS_ANNOTATIONS") {
            if arguments.proxyType == .sidecar {
                prometheusScrape = try PrometheusScrapeConfig.parse(text, statusPort: proxyConfig.statusPort)
            } else {
                warnings.append("ISTIO_PROMETHEUS_ANNOTATIONS is used only by sidecars; ignored for \(arguments.proxyType.rawValue)")
            }
        }

        let bootstrapSource: BootstrapSource
        if !proxyConfig.customConfigFile.isEmpty {
            bootstrapSource = .customConfigFile(proxyConfig.customConfigFile)
        } else if let override = options.bootstrapTemplateOverride {
            bootstrapSource = .template(override)
        } else if !proxyConfig.proxyBootstrapTemplatePath.isEmpty {
            bootstrapSource = .template(proxyConfig.proxyBootstrapTemplatePath)
        } else {
            bootstrapSource = .template(AgentPaths.defaultBootstrapTemplate)
        }

        return AgentConfiguration(
            paths: paths, proxyConfig: proxyConfig, identity: identity, metadata: metadata, options: options,
            appProbers: appProbers, prometheusScrape: prometheusScrape, bootstrapSource: bootstrapSource,
            environment: effectiveEnvironment, warnings: warnings)
    }
}
