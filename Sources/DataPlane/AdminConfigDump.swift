import AgentHTTP
import ConfigFormats
import DataPlaneConfig

/// `/config_dump`: Envoy's `envoy.admin.v3.ConfigDump`, one entry per config tracker (bootstrap,
/// clusters, listeners, routes, secrets; endpoints with `include_eds`), in the trackers' name order
/// as Envoy's `std::map` yields them. Everything sluice-proxy runs is static, taken from the bootstrap
/// as read. `resource`, `mask` (plain field paths) and `name_regex` behave as Envoy's.
extension AdminAPI {
    private static let typePrefix = "type.googleapis.com/envoy.admin.v3."

    /// One tracker's dump: its message type, its fields (repeated ones with their element type), and content.
    struct ConfigDumpSection {
        var type: String
        /// Field name → element type for repeated fields, nil for singular ones; in declaration order.
        var fields: [(name: String, elementType: String?)]
        var content: JSONObject

        var anyJSON: JSONValue {
            var object: JSONObject = ["@type": .string(AdminAPI.typePrefix + type)]
            for (key, value) in content { object[key] = value }
            return .object(object)
        }

        func hasField(_ name: String) -> Bool { fields.contains { $0.name == name } }
    }

    func configDump(_ query: AdminQuery) -> HTTPResponse {
        var nameMatcher: ((String) -> Bool)?
        if let pattern = query.nonEmpty("name_regex") {
            do {
                let regex = try Regex(pattern)
                // Envoy's regex matchers match the whole name (RE2 FullMatch).
                nameMatcher = { (try? regex.wholeMatch(in: $0)) != nil }
            } catch {
                return Self.plainError(400, "INVALID_ARGUMENT: Error while parsing name_regex from \(pattern): \(error)")
            }
        }
        let sections = configDumpSections(
            includeEndpoints: query.has("include_eds"), matches: nameMatcher ?? { _ in true })
        let mask = query.first("mask").map(FieldMask.init)

        if let resource = query.first("resource") {
            for section in sections {
                guard let field = section.fields.first(where: { $0.name == resource }) else { continue }
                guard let elementType = field.elementType else {
                    return Self.plainError(
                        400, "\(resource) is not a repeated field. Use ?mask=\(resource) to get only this field")
                }
                var configs: [JSONValue] = []
                for element in section.content[resource]?.arrayValue ?? [] {
                    var object = element.objectValue ?? JSONObject()
                    if let mask {
                        guard let trimmed = mask.trimmingResource(object) else {
                            return Self.plainError(400, "FieldMask \(mask.text) could not be successfully used.")
                        }
                        object = trimmed
                    }
                    var packed: JSONObject = ["@type": .string(Self.typePrefix + elementType)]
                    for (key, value) in object { packed[key] = value }
                    configs.append(.object(packed))
                }
                return .adminJSON(["configs": .array(configs)])
            }
            return Self.plainError(404, "\(resource) not found in config dump")
        }

        var configs: [JSONValue] = []
        for var section in sections {
            if let mask {
                // Envoy skips the dumps a mask does not fit, and fails only when it fits none.
                guard mask.firstFragments.allSatisfy(section.hasField) else { continue }
                section.content = mask.trim(section.content)
            }
            configs.append(section.anyJSON)
        }
        if configs.isEmpty, let mask {
            return Self.plainError(400, "FieldMask \(mask.text) could not be successfully applied to any configs.")
        }
        return .adminJSON(["configs": .array(configs)])
    }

    private static func plainError(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": AdminContentType.plain], body: Array(text.utf8))
    }

    func configDumpSections(includeEndpoints: Bool, matches: (String) -> Bool) -> [ConfigDumpSection] {
        let bootstrap = control.bootstrap
        let lastUpdated = JSONValue.string(control.startTime.protobufTimestamp)
        let staticResources = bootstrap.source["static_resources"]
        let clusters = staticResources?["clusters"]?.arrayValue ?? []
        let listeners = staticResources?["listeners"]?.arrayValue ?? []

        var bootstrapDocument = bootstrap.source.objectValue ?? JSONObject()
        bootstrapDocument["node"] = .object(nodeJSON())

        func packed(_ value: JSONValue, as type: String) -> JSONValue {
            var object: JSONObject = ["@type": .string("type.googleapis.com/" + type)]
            for (key, field) in value.objectValue ?? JSONObject() { object[key] = field }
            return .object(object)
        }

        var sections: [ConfigDumpSection] = [
            ConfigDumpSection(
                type: "BootstrapConfigDump", fields: [("bootstrap", nil), ("last_updated", nil)],
                content: ["bootstrap": .object(bootstrapDocument), "last_updated": lastUpdated]),
            ConfigDumpSection(
                type: "ClustersConfigDump",
                fields: [("version_info", nil), ("static_clusters", "ClustersConfigDump.StaticCluster"),
                         ("dynamic_active_clusters", "ClustersConfigDump.DynamicCluster"),
                         ("dynamic_warming_clusters", "ClustersConfigDump.DynamicCluster")],
                content: Self.omittingEmpty([
                    "static_clusters": .array(clusters.filter { matches($0["name"]?.stringValue ?? "") }.map {
                        ["cluster": packed($0, as: "envoy.config.cluster.v3.Cluster"), "last_updated": lastUpdated]
                    }),
                ])),
        ]
        let clusterStatuses = control.clusterStatuses()
        if includeEndpoints, !clusterStatuses.isEmpty {
            let endpointConfigs: [JSONValue] = clusterStatuses.filter { matches($0.name) }.map { cluster in
                var assignment: JSONObject = ["cluster_name": .string(cluster.name)]
                if !cluster.hosts.isEmpty {
                    let endpoints: [JSONValue] = cluster.hosts.map { host in
                        [
                            "endpoint": ["address": Self.addressJSON(host.address), "health_check_config": [:]],
                            "health_status": .string(host.healthy ? "HEALTHY" : "UNHEALTHY"),
                            "load_balancing_weight": 1,
                        ]
                    }
                    assignment["endpoints"] = [["locality": [:], "lb_endpoints": .array(endpoints)]]
                }
                assignment["policy"] = ["overprovisioning_factor": 140]
                return ["endpoint_config": packed(.object(assignment), as: "envoy.config.endpoint.v3.ClusterLoadAssignment")]
            }
            sections.append(ConfigDumpSection(
                type: "EndpointsConfigDump",
                fields: [("static_endpoint_configs", "EndpointsConfigDump.StaticEndpointConfig"),
                         ("dynamic_endpoint_configs", "EndpointsConfigDump.DynamicEndpointConfig")],
                content: Self.omittingEmpty(["static_endpoint_configs": .array(endpointConfigs)])))
        }
        sections.append(ConfigDumpSection(
            type: "ListenersConfigDump",
            fields: [("version_info", nil), ("static_listeners", "ListenersConfigDump.StaticListener"),
                     ("dynamic_listeners", "ListenersConfigDump.DynamicListener")],
            content: Self.omittingEmpty([
                "static_listeners": .array(listeners.filter { matches($0["name"]?.stringValue ?? "") }.map {
                    ["listener": packed($0, as: "envoy.config.listener.v3.Listener"), "last_updated": lastUpdated]
                }),
            ])))
        // Inline route configurations of HTTP connection managers are static route configs to Envoy.
        let routeConfigs: [JSONValue] = listeners.flatMap { listener -> [JSONValue] in
            (listener["filter_chains"]?.arrayValue ?? []).flatMap { chain in
                (chain["filters"]?.arrayValue ?? []).compactMap { $0["typed_config"]?["route_config"] }
            }
        }
        sections.append(ConfigDumpSection(
            type: "RoutesConfigDump",
            fields: [("static_route_configs", "RoutesConfigDump.StaticRouteConfig"),
                     ("dynamic_route_configs", "RoutesConfigDump.DynamicRouteConfig")],
            content: Self.omittingEmpty([
                "static_route_configs": .array(routeConfigs.filter { matches($0["name"]?.stringValue ?? "") }.map {
                    ["route_config": packed($0, as: "envoy.config.route.v3.RouteConfiguration"), "last_updated": lastUpdated]
                }),
            ])))
        sections.append(ConfigDumpSection(
            type: "SecretsConfigDump",
            fields: [("static_secrets", "SecretsConfigDump.StaticSecret"),
                     ("dynamic_active_secrets", "SecretsConfigDump.DynamicSecret"),
                     ("dynamic_warming_secrets", "SecretsConfigDump.DynamicSecret")],
            content: JSONObject()))
        return sections
    }

    /// Protobuf's JSON leaves out empty repeated fields.
    private static func omittingEmpty(_ object: JSONObject) -> JSONObject {
        var result = JSONObject()
        for (key, value) in object {
            if let array = value.arrayValue, array.isEmpty { continue }
            result[key] = value
        }
        return result
    }
}

/// A `google.protobuf.FieldMask` in its text form (`a.b,c`), applied to JSON: fields on no path are
/// dropped. Inside an `Any` (an object with `@type`) the type is always kept.
struct FieldMask {
    let text: String
    let paths: [[Substring]]

    init(_ text: String) {
        self.text = text
        paths = text.split(separator: ",").map { $0.split(separator: ".") }.filter { !$0.isEmpty }
    }

    var firstFragments: [String] { paths.map { String($0[0]) } }

    func trim(_ object: JSONObject) -> JSONObject {
        Self.trim(object, paths: paths)
    }

    /// For `resource=` elements: the element's own field names must exist (Envoy validates the
    /// outer message; what lies inside its `Any` is not checked here).
    func trimmingResource(_ object: JSONObject) -> JSONObject? {
        guard paths.allSatisfy({ object[String($0[0])] != nil || $0.count == 1 }) else { return nil }
        return trim(object)
    }

    private static func trim(_ object: JSONObject, paths: [[Substring]]) -> JSONObject {
        var result = JSONObject()
        for (key, value) in object {
            if key == "@type" {
                result[key] = value
                continue
            }
            let matching = paths.filter { String($0[0]) == key }
            guard !matching.isEmpty else { continue }
            if matching.contains(where: { $0.count == 1 }) {
                result[key] = value
            } else if let nested = value.objectValue {
                let trimmed = trim(nested, paths: matching.map { Array($0.dropFirst()) })
                if !trimmed.isEmpty { result[key] = .object(trimmed) }
            }
        }
        return result
    }
}
