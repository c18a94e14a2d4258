import Capture
import ConfigFormats

/// Builds the data plane's `node.metadata` as Istio's `GetNodeMetaData` does: every `ISTIO_META_X=v`
/// becomes `X: "v"`, every `ISTIO_METAJSON_*` object is merged in at the top level, then the typed fields
/// of `BootstrapNodeMetadata` override with their JSON types (ports as numbers, Istio's "string booleans"
/// as `"true"`).
struct NodeMetadataBuilder {
    let environment: EnvironmentReader
    private(set) var raw: [String: JSONValue] = [:]
    /// From `ISTIO_METAJSON_LABELS`: the labels a workload declares for itself (VMs), under the pod's.
    private(set) var staticLabels: [String: String] = [:]

    /// `model.StringBool` fields: Go parses them as booleans and renders `"true"`/`"false"`.
    static let stringBooleanKeys: Set<String> = [
        "DNS_CAPTURE", "DNS_AUTO_ALLOCATE", "ENABLE_HBONE", "DISABLE_HBONE_SEND", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS",
        "INBOUND_LISTENER_EXACT_BALANCE", "OUTBOUND_LISTENER_EXACT_BALANCE", "METADATA_DISCOVERY",
        "ENVOY_SKIP_DEPRECATED_LOGS",
    ]

    init(environment: EnvironmentReader) {
        self.environment = environment
    }

    mutating func collectEnvironment() throws(AgentConfigError) {
        var origin: [String: String] = [:]
        for (key, value) in environment.withPrefix("ISTIO_META_") {
            raw[key] = .string(value)
            origin[key] = "ISTIO_META_\(key)"
        }
        // Istio applies ISTIO_METAJSON_* after ISTIO_META_*, so its keys win.
        for (suffix, text) in environment.withPrefix("ISTIO_METAJSON_") {
            let variable = "ISTIO_METAJSON_\(suffix)"
            let document: JSONValue
            do {
                document = try JSONValue.parse(json: text)
            } catch {
                throw AgentConfigError("\(variable): not valid JSON: \(error.message); want a JSON object")
            }
            guard let object = document.objectValue else {
                throw AgentConfigError("\(variable): want a JSON object, got \(document.kindDescription)")
            }
            for (key, value) in object {
                raw[key] = value
                origin[key] = variable
            }
            if suffix == "LABELS" {
                for (key, value) in object {
                    guard let label = value.stringValue else {
                        throw AgentConfigError("\(variable): label \(goQuoted(key)) is \(value.kindDescription): label values must be strings")
                    }
                    staticLabels[key] = label
                }
            }
        }
        for key in Self.stringBooleanKeys {
            guard let value = raw[key] else { continue }
            switch value {
            case .bool(let flag):
                raw[key] = .string(flag ? "true" : "false")
            case .string(let text) where text.isEmpty:
                // Empty counts as unset, as for the agent's own variables; istiod could not parse "" as a boolean.
                raw[key] = nil
            case .string(let text):
                guard let flag = GoSyntax.parseBool(text) else {
                    throw AgentConfigError("\(origin[key] ?? key): \(goQuoted(text)) is not a boolean: use true or false")
                }
                raw[key] = .string(flag ? "true" : "false")
            default:
                throw AgentConfigError("\(origin[key] ?? key): \(key) must be \"true\" or \"false\", got \(value.kindDescription)")
            }
        }
    }

    func build(identity: NodeIdentity, proxyConfig: ProxyConfig, options: AgentOptions) -> JSONObject {
        var fields = raw
        func stringMap(_ map: [String: String]) -> JSONValue {
            .object(JSONObject(map.keys.sorted().map { ($0, .string(map[$0]!)) }))
        }
        if !identity.podName.isEmpty { fields["NAME"] = .string(identity.podName) }
        if !identity.podNamespace.isEmpty { fields["NAMESPACE"] = .string(identity.podNamespace) }
        if !identity.serviceAccount.isEmpty { fields["SERVICE_ACCOUNT"] = .string(identity.serviceAccount) }
        if !identity.labels.isEmpty { fields["LABELS"] = stringMap(identity.labels) }
        if !staticLabels.isEmpty { fields["STATIC_LABELS"] = stringMap(staticLabels) }
        if !identity.annotations.isEmpty { fields["ANNOTATIONS"] = stringMap(identity.annotations) }
        fields["INSTANCE_IPS"] = .string(identity.ipAddresses.joined(separator: ","))
        if (fields["ISTIO_VERSION"]?.stringValue ?? "").isEmpty {
            fields["ISTIO_VERSION"] = .string(AgentConfiguration.istioVersion)
        }
        fields["PROXY_CONFIG"] = .object(proxyConfig.json)
        fields["PILOT_SAN"] = [.string(proxyConfig.pilotSubjectAltName)]
        fields["ENVOY_STATUS_PORT"] = .integer(Int64(options.envoyStatusPort))
        fields["ENVOY_PROMETHEUS_PORT"] = .integer(Int64(options.envoyPrometheusPort))
        // istiod builds inbound listeners for the interception mode it reads here; the injector always sets
        // ISTIO_META_INTERCEPTION_MODE, so state the resolved mode even where no injector ran.
        fields["INTERCEPTION_MODE"] = .string(identity.interceptionMode.rawValue)
        if options.exitOnZeroActiveConnections { fields["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "true" }
        if options.stsPort != 0 { fields["STS_PORT"] = .string(String(options.stsPort)) }
        if let outlierLogPath = options.outlierLogPath { fields["OUTLIER_LOG_PATH"] = .string(outlierLogPath) }
        return JSONObject(fields.keys.sorted().map { ($0, fields[$0]!) })
    }
}
