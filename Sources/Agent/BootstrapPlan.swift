import AgentConfig
import Bootstrap
import ConfigFormats

/// Which bootstrap the data plane gets and where, decided from the configuration (AGENT.md §4):
/// ProxyConfig.customConfigFile as it is, else a template (`ISTIO_BOOTSTRAP`, `--templateFile` /
/// proxyBootstrapTemplatePath, or Istio's default template path when a file is there), else the
/// built-in standalone bootstrap.
struct BootstrapPlan {
    struct ListenerAddress: Sendable, Hashable {
        var name: String
        var address: String
        var port: Int
        var isAdmin = false
    }

    /// The file on disk.
    var filesystemPath: String
    /// The `-c` argument: as Istio writes it (`./etc/istio/proxy/envoy-rev.json`, relative to the
    /// data plane's working directory, the root).
    var pathForDataPlane: String
    /// nil for a custom config file, which is used in place.
    var textToWrite: String?
    /// The admin address and every static listener, for the port check.
    var listenerAddresses: [ListenerAddress]

    /// What readiness waits for: every static listener (the admin API is not a listener).
    var staticListenerCount: Int { listenerAddresses.filter { !$0.isAdmin }.count }

    static func make(_ configuration: AgentConfiguration) throws(AgentStartupError) -> BootstrapPlan {
        let paths = configuration.paths
        let bootstrapFile = paths.bootstrap
        switch configuration.bootstrapSource {
        case .customConfigFile(let path):
            let fullPath = paths.filesystemPath(path)
            let document = try readDocument(fullPath, what: "ProxyConfig customConfigFile", yaml: true)
            return BootstrapPlan(filesystemPath: fullPath, pathForDataPlane: fullPath, textToWrite: nil,
                                 listenerAddresses: listeners(in: document))
        case .template(let path):
            let input = bootstrapInput(configuration)
            let fullPath = paths.filesystemPath(path)
            let templateText: String?
            do {
                templateText = try LiveFiles().contents(ofFile: fullPath)
            } catch {
                throw .configuration("bootstrap template: \(error)")
            }
            let text: String
            let document: JSONValue
            if let templateText {
                do {
                    let variables = input.templateVariables(proxyConfig: configuration.proxyConfig.json)
                    text = try BootstrapTemplate.render(template: templateText, variables: variables)
                } catch {
                    throw .configuration("bootstrap template \(fullPath): \(error)")
                }
                do {
                    // Istio writes envoy-rev.yaml for .yaml templates; Sluice always writes JSON, which Envoy reads either way.
                    let isYAML = path.hasSuffix(".yaml") || path.hasSuffix(".yaml.tmpl")
                    document = isYAML ? try JSONValue.parse(yamlOrJSON: text) : try JSONValue.parse(json: text)
                } catch {
                    throw .configuration("bootstrap template \(fullPath) rendered to something that is not a bootstrap: \(error)")
                }
            } else if path == AgentPaths.defaultBootstrapTemplate {
                // No template installed (Sluice's own image has none): the built-in bootstrap.
                document = BootstrapBuilder.build(input)
                text = ""
            } else {
                throw .configuration("bootstrap template \(fullPath) does not exist (from ISTIO_BOOTSTRAP, --templateFile or proxyBootstrapTemplatePath)")
            }
            return BootstrapPlan(filesystemPath: paths.filesystemPath(bootstrapFile),
                                 pathForDataPlane: paths.bootstrapPath(bootstrapFile),
                                 textToWrite: document.renderedJSON(),
                                 listenerAddresses: listeners(in: document))
        }
    }

    static func bootstrapInput(_ configuration: AgentConfiguration) -> BootstrapInput {
        let identity = configuration.identity
        let options = configuration.options
        let ipMode: BootstrapInput.IPMode = switch identity.ipMode {
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        case .dual: .dual
        }
        var input = BootstrapInput(nodeID: identity.serviceNode, cluster: identity.cluster, metadata: configuration.metadata,
                                   proxyType: identity.proxyType == .router ? .router : .sidecar, ipMode: ipMode)
        input.adminPort = configuration.proxyConfig.proxyAdminPort
        input.statusPort = configuration.proxyConfig.statusPort
        input.readinessPort = options.envoyStatusPort
        input.prometheusPort = options.envoyPrometheusPort
        input.metricsLocalhostOnly = options.metricsLocalhostAccessOnly
        input.sdsSocketPath = configuration.paths.bootstrapPath(configuration.paths.workloadSocket)
        input.xdsSocketPath = configuration.paths.bootstrapPath(configuration.paths.xdsSocket)
        input.interceptionMode = switch identity.interceptionMode {
        case .redirect: .redirect
        case .tproxy: .tproxy
        case .none: .none
        }
        input.exitOnZeroActiveConnections = options.exitOnZeroActiveConnections
        input.logAsJSON = options.logAsJSON
        input.runtimeValues = configuration.proxyConfig.runtimeValues
        if let matcher = configuration.proxyConfig.proxyStatsMatcher {
            let podIP = identity.ipAddresses.first ?? ""
            func substitute(_ patterns: [String]) -> [String] { patterns.map { $0.replacing("{pod_ip}", with: podIP) } }
            input.statsInclusionPrefixes = substitute(matcher.inclusionPrefixes)
            input.statsInclusionSuffixes = substitute(matcher.inclusionSuffixes)
            input.statsInclusionRegexps = substitute(matcher.inclusionRegexps)
        }
        return input
    }

    private static func readDocument(_ path: String, what: String, yaml: Bool) throws(AgentStartupError) -> JSONValue {
        let text: String?
        do {
            text = try LiveFiles().contents(ofFile: path)
        } catch {
            throw .configuration("\(what): \(error)")
        }
        guard let text else { throw .configuration("\(what) \(path) does not exist") }
        do {
            return try JSONValue.parse(yamlOrJSON: text)
        } catch {
            throw .configuration("\(what) \(path): \(error)")
        }
    }

    /// The admin address and the static listeners' socket addresses (pipes and internal listeners have none).
    static func listeners(in document: JSONValue) -> [ListenerAddress] {
        var found: [ListenerAddress] = []
        func socketAddress(_ address: JSONValue?, name: String, isAdmin: Bool = false) {
            guard let socket = address?["socket_address"] ?? address?["socketAddress"],
                  let host = socket["address"]?.stringValue,
                  let port = socket["port_value"]?.intValue ?? socket["portValue"]?.intValue else { return }
            found.append(ListenerAddress(name: name, address: host, port: Int(port), isAdmin: isAdmin))
        }
        socketAddress(document["admin"]?["address"], name: "the data plane's admin API", isAdmin: true)
        let staticResources = document["static_resources"] ?? document["staticResources"]
        for listener in staticResources?["listeners"]?.arrayValue ?? [] {
            socketAddress(listener["address"], name: "the data plane's listener \(listener["name"]?.stringValue ?? "")")
        }
        return found
    }
}
