import Capture
import ConfigFormats

extension BootstrapParser {
    private static let clusterTypes: [String?] = ["STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"]
    /// Number 4 was ORIGINAL_DST_LB, removed from the v3 API.
    private static let loadBalancingPolicies: [String?] = [
        "ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH", "RANDOM", nil, "MAGLEV", "CLUSTER_PROVIDED",
        "LOAD_BALANCING_POLICY_CONFIG",
    ]

    mutating func cluster(_ reader: MessageReader) throws(ConfigError) -> ClusterConfig {
        var reader = reader
        let name = try reader.requiredString("name", why: "clusters are found by name")
        let altStatName = try reader.string("alt_stat_name")
        try refuseUnsupportedClusterFeatures(&reader)

        let type = try reader.enumeration("type", values: Self.clusterTypes) ?? "STATIC"
        switch type {
        case "STATIC", "ORIGINAL_DST":
            break
        case "EDS":
            throw ConfigError("\(reader.path(of: "type")): EDS is not supported by sluice-proxy (STATIC, ORIGINAL_DST);"
                + " sluice-proxy has no xDS client")
        default:
            throw ConfigError("\(reader.path(of: "type")): \(type) is not supported by sluice-proxy (STATIC, ORIGINAL_DST);"
                + " sluice-proxy resolves no names, so list IP endpoints in a STATIC cluster")
        }
        try reader.refuse("cluster_type", "custom cluster types are not supported by sluice-proxy (STATIC, ORIGINAL_DST)")

        let policy = try reader.enumeration("lb_policy", values: Self.loadBalancingPolicies) ?? "ROUND_ROBIN"
        let discovery: ClusterConfig.Discovery
        if type == "ORIGINAL_DST" {
            // Envoy's own rules for ORIGINAL_DST clusters.
            if policy != "CLUSTER_PROVIDED" {
                throw ConfigError("\(reader.path(of: "lb_policy")): \(policy) is not valid for an ORIGINAL_DST cluster;"
                    + " use CLUSTER_PROVIDED")
            }
            try reader.refuse("load_assignment", "an ORIGINAL_DST cluster takes no endpoints; remove load_assignment")
            if var settings = try reader.message("original_dst_lb_config", type: "OriginalDstLbConfig") {
                try settings.refuse("use_http_header", "taking the destination from an HTTP header is not supported by sluice-proxy")
                try settings.refuse("http_header_name", "taking the destination from an HTTP header is not supported by sluice-proxy")
                try settings.refuse("upstream_port_override", "overriding the destination port is not supported by sluice-proxy")
                try settings.finish(warnings: &warnings)
            }
            discovery = .originalDestination
        } else {
            let endpoints = try staticEndpoints(reader.message("load_assignment", type: "ClusterLoadAssignment"))
            switch policy {
            case "CLUSTER_PROVIDED":
                throw ConfigError("\(reader.path(of: "lb_policy")): CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters;"
                    + " use ROUND_ROBIN")
            case "LOAD_BALANCING_POLICY_CONFIG":
                throw ConfigError("\(reader.path(of: "lb_policy")): load balancing policy extensions are not supported by"
                    + " sluice-proxy; use ROUND_ROBIN")
            case "ROUND_ROBIN":
                break
            default:
                if endpoints.count > 1 {
                    warnings.append("\(reader.path(of: "lb_policy")): accepted and ignored: \(policy) is not implemented,"
                        + " the endpoints take turns (ROUND_ROBIN)")
                }
            }
            if endpoints.isEmpty {
                warnings.append("\(reader.path): the STATIC cluster '\(name)' has no endpoints; connections to it fail")
            }
            discovery = .staticEndpoints(endpoints)
        }

        let connectTimeout = try reader.duration("connect_timeout") ?? .seconds(5)
        let sourceAddresses = try bindConfig(reader.message("upstream_bind_config", type: "BindConfig"))
        let maxConnections = try circuitBreakers(reader.message("circuit_breakers", type: "CircuitBreakers"))
        let http2 = try protocolOptions(&reader)
        try reader.finish(warnings: &warnings)
        return ClusterConfig(
            name: name, statName: EnvoyStatNames.cluster(name: name, altStatName: altStatName), discovery: discovery,
            connectTimeout: connectTimeout, sourceAddresses: sourceAddresses, maxConnections: maxConnections, http2: http2)
    }

    private mutating func refuseUnsupportedClusterFeatures(_ reader: inout MessageReader) throws(ConfigError) {
        try reader.refuse("transport_socket", "TLS origination is not supported by sluice-proxy")
        try reader.refuse("transport_socket_matches", "TLS origination is not supported by sluice-proxy")
        try reader.refuse("health_checks", "sluice-proxy does no health checking")
        try reader.refuse("outlier_detection", "sluice-proxy ejects no hosts")
        try reader.refuse("lb_subset_config", "subset load balancing is not supported by sluice-proxy")
        try reader.refuse("load_balancing_policy", "load balancing policy extensions are not supported by sluice-proxy")
        try reader.refuse("filters", "upstream network filters are not supported by sluice-proxy")
        try reader.refuse("lrs_server", "sluice-proxy reports no load")
        try reader.refuse("eds_cluster_config", "sluice-proxy has no xDS client")
    }

    /// The endpoints of a STATIC cluster, in order. Failover priorities are refused: sluice-proxy
    /// would use the failover endpoints as if they were primary.
    private mutating func staticEndpoints(_ reader: MessageReader?) throws(ConfigError) -> [ProxyAddress] {
        guard var assignment = reader else { return [] }
        try assignment.refuse("named_endpoints", "named endpoints are not supported by sluice-proxy")
        var addresses: [ProxyAddress] = []
        for var group in try assignment.messages("endpoints", type: "LocalityLbEndpoints") {
            if let priority = try group.uint32("priority"), priority != 0 {
                throw ConfigError("\(group.path(of: "priority")): failover priorities are not supported by sluice-proxy")
            }
            try group.refuse("load_balancer_endpoints", "endpoint collections are not supported by sluice-proxy")
            try group.refuse("leds_cluster_locality_config", "sluice-proxy has no xDS client")
            for var lbEndpoint in try group.messages("lb_endpoints", type: "LbEndpoint") {
                if let status = try lbEndpoint.enumeration(
                    "health_status", values: ["UNKNOWN", "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED"]),
                    status != "UNKNOWN" && status != "HEALTHY"
                {
                    throw ConfigError("\(lbEndpoint.path(of: "health_status")): \(status) endpoints are not supported by"
                        + " sluice-proxy; remove the endpoint")
                }
                try lbEndpoint.refuse("endpoint_collection", "endpoint collections are not supported by sluice-proxy")
                guard var endpoint = try lbEndpoint.message("endpoint", type: "Endpoint") else {
                    throw ConfigError("\(lbEndpoint.path(of: "endpoint")): required (the endpoint's address)")
                }
                try endpoint.refuse("additional_addresses", "extra endpoint addresses are not supported by sluice-proxy")
                guard let value = endpoint.value("address") else {
                    throw ConfigError("\(endpoint.path(of: "address")): required (the endpoint's address)")
                }
                addresses.append(try address(value, path: endpoint.path(of: "address"), listening: false))
                try endpoint.finish(warnings: &warnings)
                try lbEndpoint.finish(warnings: &warnings)
            }
            try group.finish(warnings: &warnings)
        }
        try assignment.finish(warnings: &warnings)
        return addresses
    }

    /// `source_address`, then `extra_source_addresses`: Envoy picks the one of the destination's family,
    /// and so refuses two of one family.
    private mutating func bindConfig(_ reader: MessageReader?) throws(ConfigError) -> [IPAddress] {
        guard var bind = reader else { return [] }
        try bind.refuse("freebind", "freebind on upstream sockets is not supported by sluice-proxy")
        try bind.refuse("socket_options", "socket options are not supported by sluice-proxy")
        try bind.refuse("local_address_selector", "custom source address selectors are not supported by sluice-proxy")
        try bind.refuse("additional_source_addresses", "deprecated in Envoy; use extra_source_addresses")
        var addresses: [(address: IPAddress, path: JSONPath)] = []
        if let value = bind.value("source_address") {
            addresses.append((try sourceAddress(value, path: bind.path(of: "source_address")), bind.path(of: "source_address")))
        }
        for var extra in try bind.messages("extra_source_addresses", type: "ExtraSourceAddress") {
            try extra.refuse("socket_options", "socket options are not supported by sluice-proxy")
            guard let value = extra.value("address") else {
                throw ConfigError("\(extra.path(of: "address")): required (the source address)")
            }
            addresses.append((try sourceAddress(value, path: extra.path(of: "address")), extra.path(of: "address")))
            try extra.finish(warnings: &warnings)
        }
        try bind.finish(warnings: &warnings)
        var families: Set<IPFamily> = []
        for entry in addresses where !families.insert(entry.address.family).inserted {
            throw ConfigError("\(entry.path): a second \(entry.address.family == .ipv4 ? "IPv4" : "IPv6") source address;"
                + " give at most one per family (the one matching the destination is used)")
        }
        return addresses.map(\.address)
    }

    /// The DEFAULT priority's max_connections. sluice-proxy has no request priorities, so HIGH
    /// thresholds never apply.
    private mutating func circuitBreakers(_ reader: MessageReader?) throws(ConfigError) -> Int? {
        guard var breakers = reader else { return nil }
        var maxConnections: Int?
        for var threshold in try breakers.messages("thresholds", type: "Thresholds") {
            let priority = try threshold.enumeration("priority", values: ["DEFAULT", "HIGH"]) ?? "DEFAULT"
            let limit = try threshold.uint32("max_connections")
            if priority == "DEFAULT", let limit { maxConnections = Int(limit) }
            try threshold.finish(warnings: &warnings)
        }
        try breakers.finish(warnings: &warnings)
        return maxConnections
    }

    /// HTTP/2 upstream (the SDS cluster): `typed_extension_protocol_options` holding `HttpProtocolOptions`
    /// with `explicit_http_config.http2_protocol_options`.
    private mutating func protocolOptions(_ cluster: inout MessageReader) throws(ConfigError) -> Bool {
        guard let value = cluster.value("typed_extension_protocol_options") else { return false }
        let optionsPath = cluster.path(of: "typed_extension_protocol_options")
        guard case .object(let options) = value else {
            throw ConfigError("\(optionsPath): expected an object, found \(value.kindDescription)")
        }
        var http2 = false
        for (key, entry) in options {
            let entryPath = optionsPath.field(key)
            guard case .object(let fields) = entry, case .string(let url)? = fields["@type"] else {
                throw ConfigError("\(entryPath): needs an @type")
            }
            guard EnvoyTypes.messageName(ofTypeURL: url) == EnvoyTypes.httpProtocolOptions else {
                throw ConfigError("\(entryPath): protocol options \(url) are not supported by sluice-proxy"
                    + " (\(EnvoyTypes.httpProtocolOptions))")
            }
            var reader = try MessageReader(entry, message: "HttpProtocolOptions", path: entryPath)
            reader.skip("@type")
            try reader.refuse("use_downstream_protocol_config", "sluice-proxy needs the upstream protocol stated;"
                + " use explicit_http_config")
            try reader.refuse("auto_config", "protocol negotiation needs TLS ALPN, which sluice-proxy does not do;"
                + " use explicit_http_config")
            try reader.refuse("http_filters", "upstream HTTP filters are not supported by sluice-proxy")
            if var explicit = try reader.message("explicit_http_config", type: "ExplicitHttpConfig") {
                try explicit.refuse("http3_protocol_options", "HTTP/3 is not supported by sluice-proxy")
                let http1Settings = explicit.value("http_protocol_options")
                if let settings = explicit.value("http2_protocol_options") {
                    if http1Settings != nil {
                        throw ConfigError("\(explicit.path): http_protocol_options and http2_protocol_options are"
                            + " alternatives; keep one")
                    }
                    http2 = true
                    if settings != .object([:]) {
                        warnings.append("\(explicit.path(of: "http2_protocol_options")): accepted and ignored:"
                            + " HTTP/2 settings are not applied")
                    }
                }
                try explicit.finish(warnings: &warnings)
            }
            try reader.finish(warnings: &warnings)
        }
        return http2
    }
}
