import ConfigFormats

extension BootstrapInput {
    /// The variables a custom bootstrap template sees, under the names Istio's template uses
    /// (`pkg/bootstrap/option/instances.go`), so templates written for Istio keep working:
    ///
    /// - `nodeID`, `nodeType`, `cluster`; `region`, `zone`, `sub_zone` only when set
    /// - `meta_json_str` (node metadata as JSON text) and `metadata` (the same as an object)
    /// - `runtime_flags` (the static runtime layer as JSON text)
    /// - `localhost`, `wildcard`, `dns_lookup_family` (V4_ONLY, V6_ONLY, ALL), `dual_stack`; for
    ///   dual-stack pods also `additional_localhost` and `additional_wildcard`
    /// - `xds_type` (`DELTA_GRPC`), `discovery_address`, `discovery_host` when ProxyConfig has one
    /// - `config`: ProxyConfig with Go's field names (`ProxyAdminPort`, `StatusPort`, `ConfigPath`,
    ///   `DiscoveryAddress`, `ProxyMetadata`, …); map fields keep their keys
    /// - `envoy_status_port`, `envoy_prometheus_port` (also as `ENVOY_STATUS_PORT`, `ENVOY_PROMETHEUS_PORT`)
    /// - `inclusionPrefix`, `inclusionSuffix`, `inclusionRegexps` (the stats matcher lists, required ones included)
    /// - `log_json`, `metrics_localhost_access_only`, `metadata_discovery` (false),
    ///   `workload_identity_socket_file`, `sds_socket_path`, `xds_socket_path`
    ///
    /// `proxyConfig` is the merged ProxyConfig in its JSON form (camelCase keys).
    public func templateVariables(proxyConfig: JSONObject) -> JSONObject {
        var variables: JSONObject = [
            "nodeID": .string(nodeID),
            "nodeType": .string(String(nodeID.split(separator: "~", omittingEmptySubsequences: false).first ?? "")),
            "cluster": .string(cluster),
        ]
        if let locality {
            if !locality.region.isEmpty { variables["region"] = .string(locality.region) }
            if !locality.zone.isEmpty { variables["zone"] = .string(locality.zone) }
            if !locality.subZone.isEmpty { variables["sub_zone"] = .string(locality.subZone) }
        }
        variables["meta_json_str"] = .string(JSONValue.object(metadata).renderedJSON(pretty: false))
        variables["metadata"] = .object(metadata)
        variables["runtime_flags"] = .string(RuntimeFlags.staticLayer(runtimeValues).renderedJSON(pretty: false))

        let wildcards = Self.wildcards(for: ipMode)
        variables["localhost"] = .string(localhostAddress)
        variables["wildcard"] = .string(wildcards.primary)
        variables["dns_lookup_family"] =
            switch ipMode {
            case .ipv4: "V4_ONLY"
            case .ipv6: "V6_ONLY"
            case .dual: "ALL"
            }
        variables["dual_stack"] = .bool(ipMode == .dual)
        if ipMode == .dual, let additional = wildcards.additional {
            variables["additional_localhost"] = "::1"
            variables["additional_wildcard"] = .string(additional)
        }

        variables["xds_type"] = "DELTA_GRPC"
        if let discovery = proxyConfig["discoveryAddress"]?.stringValue, !discovery.isEmpty {
            variables["discovery_address"] = .string(discovery)
            variables["discovery_host"] = .string(String(discovery.split(separator: ":").first ?? ""))
        }
        variables["config"] = .object(goProxyConfig(proxyConfig))

        variables["envoy_status_port"] = .integer(Int64(readinessPort))
        variables["envoy_prometheus_port"] = .integer(Int64(prometheusPort))
        variables["ENVOY_STATUS_PORT"] = .integer(Int64(readinessPort))
        variables["ENVOY_PROMETHEUS_PORT"] = .integer(Int64(prometheusPort))

        variables["inclusionPrefix"] = .array(StatsConfiguration.inclusionPrefixes(self).map(JSONValue.string))
        variables["inclusionSuffix"] = .array(StatsConfiguration.inclusionSuffixes(self).map(JSONValue.string))
        variables["inclusionRegexps"] = .array(StatsConfiguration.inclusionRegexps(self).map(JSONValue.string))

        variables["log_json"] = .bool(logAsJSON)
        variables["metrics_localhost_access_only"] = .bool(metricsLocalhostOnly)
        variables["metadata_discovery"] = false
        variables["workload_identity_socket_file"] =
            .string(String(sdsSocketPath.split(separator: "/").last ?? ""))
        variables["sds_socket_path"] = .string(sdsSocketPath)
        variables["xds_socket_path"] = .string(xdsSocketPath)
        return variables
    }

    /// ProxyConfig as Istio's template sees it: the Go struct, so `proxyAdminPort` is `ProxyAdminPort`.
    /// The ports the agent actually uses win over the document's, and ConfigPath defaults to the XDS
    /// socket's directory, so the variables templates rely on always exist.
    func goProxyConfig(_ proxyConfig: JSONObject) -> JSONObject {
        var config = Self.goFieldNames(proxyConfig)
        if config["ConfigPath"] == nil {
            let directory = xdsSocketPath.split(separator: "/", omittingEmptySubsequences: false)
                .dropLast().joined(separator: "/")
            config["ConfigPath"] = .string(directory.isEmpty ? "." : directory)
        }
        config["ProxyAdminPort"] = .integer(Int64(adminPort))
        config["StatusPort"] = .integer(Int64(statusPort))
        return config
    }

    /// Fields whose values are maps in the proto: their keys are data, not field names.
    static let protoMapFields: Set<String> = [
        "proxyMetadata", "runtimeValues", "customTags", "proxy_metadata", "runtime_values", "custom_tags",
    ]

    static func goFieldNames(_ object: JSONObject) -> JSONObject {
        var converted = JSONObject()
        for (key, value) in object {
            let goKey = goFieldName(key)
            if protoMapFields.contains(key) {
                converted[goKey] = value
            } else {
                converted[goKey] = goFieldNames(value)
            }
        }
        return converted
    }

    private static func goFieldNames(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let object): .object(goFieldNames(object))
        case .array(let elements): .array(elements.map(goFieldNames))
        default: value
        }
    }

    /// `proxyAdminPort` and `proxy_admin_port` both become `ProxyAdminPort`, as protoc-gen-go names fields.
    static func goFieldName(_ key: String) -> String {
        key.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}
