import Capture
import ConfigFormats

/// Walks a bootstrap document message by message (see `MessageReader`), building the model and
/// collecting warnings. Listeners, clusters, addresses and stats each have their own file.
struct BootstrapParser {
    var warnings: [String] = []
    /// Clusters named by tcp_proxy filters and routes, checked once all clusters are known.
    var clusterReferences: [(cluster: String, path: JSONPath)] = []

    static func parse(_ document: JSONValue) throws(ConfigError) -> ProxyBootstrap {
        var parser = BootstrapParser()
        return try parser.bootstrap(document)
    }

    private mutating func bootstrap(_ document: JSONValue) throws(ConfigError) -> ProxyBootstrap {
        var root = try MessageReader(document, message: "Bootstrap", path: .root)
        try root.refuse("dynamic_resources",
            "sluice-proxy has no xDS client; put listeners and clusters in static_resources")
        try root.refuse("hds_config", "sluice-proxy has no xDS client and does no health checking")
        try root.refuse("cluster_manager", "sluice-proxy has no cluster manager settings (no xDS, outlier or load reports)")
        try root.refuse("stats_sinks", "sluice-proxy pushes stats nowhere; scrape /stats/prometheus instead")

        let node = try self.node(root.message("node", type: "Node"))
        var admin: AdminConfig?
        if let reader = try root.message("admin", type: "Admin") {
            admin = try self.admin(reader)
        }

        var clusters: [ClusterConfig] = []
        var listeners: [ListenerConfig] = []
        if var resources = try root.message("static_resources", type: "StaticResources") {
            for reader in try resources.messages("clusters", type: "Cluster") {
                clusters.append(try cluster(reader))
            }
            for reader in try resources.messages("listeners", type: "Listener") {
                listeners.append(try listener(reader))
            }
            try resources.refuse("secrets", "sluice-proxy terminates and originates no TLS")
            try resources.finish(warnings: &warnings)
        }
        try checkNames(clusters: clusters, listeners: listeners)
        try checkListenerAddresses(listeners)
        try checkClusterReferences(clusters)

        let stats = try statsSettings(root.message("stats_config", type: "StatsConfig"))
        let maxConnections = try overloadManager(root.message("overload_manager", type: "OverloadManager"))
        let logFormats = try applicationLog(root.message("application_log_config", type: "ApplicationLogConfig"))
        try bootstrapExtensions(root.list("bootstrap_extensions"))
        try root.finish(warnings: &warnings)

        return ProxyBootstrap(
            node: node, admin: admin, clusters: clusters, listeners: listeners, stats: stats,
            applicationLogFormat: logFormats.text, applicationLogJSONFormat: logFormats.json,
            maxActiveDownstreamConnections: maxConnections, source: document, warnings: warnings)
    }

    // MARK: - Node and admin

    private mutating func node(_ reader: MessageReader?) throws(ConfigError) -> NodeConfig {
        guard var reader else { return NodeConfig(id: "", cluster: "", metadata: .object([:])) }
        let id = try reader.string("id") ?? ""
        let cluster = try reader.string("cluster") ?? ""
        let metadata = reader.value("metadata") ?? .object([:])
        guard case .object = metadata else {
            throw ConfigError("\(reader.path(of: "metadata")): expected an object, found \(metadata.kindDescription)")
        }
        try reader.finish(warnings: &warnings)
        return NodeConfig(id: id, cluster: cluster, metadata: metadata)
    }

    /// Without an address Envoy starts no admin listener, and neither does sluice-proxy.
    private mutating func admin(_ reader: MessageReader) throws(ConfigError) -> AdminConfig? {
        var reader = reader
        try reader.refuse("socket_options", "socket options are not supported by sluice-proxy")
        try reader.refuse("allow_paths", "the admin interface cannot be restricted to some paths; bind it to localhost")
        var accessLogPaths: [String] = []
        if let path = try reader.string("access_log_path"), !path.isEmpty {
            accessLogPaths.append(path)
        }
        for var log in try reader.messages("access_log", type: "AccessLog") {
            accessLogPaths.append(try accessLogPath(&log))
        }
        var address: ProxyAddress?
        if let value = reader.value("address") {
            address = try self.address(value, path: reader.path(of: "address"), listening: true)
        }
        try reader.finish(warnings: &warnings)
        return address.map { AdminConfig(address: $0, accessLogPaths: accessLogPaths) }
    }

    /// A file logger writes to its path; the stdout and stderr loggers are the same thing on fixed paths.
    private mutating func accessLogPath(_ log: inout MessageReader) throws(ConfigError) -> String {
        try log.refuse("filter", "access log filters are not supported by sluice-proxy")
        let extensionConfig = try typedConfig(&log)
        guard var config = extensionConfig.config else {
            throw ConfigError("\(log.path): needs a typed_config (\(EnvoyTypes.fileAccessLog))")
        }
        let path: String
        switch extensionConfig.type {
        case EnvoyTypes.fileAccessLog:
            path = try config.requiredString("path", why: "the file to write the access log to")
        case EnvoyTypes.stdoutAccessLog:
            path = "/dev/stdout"
        case EnvoyTypes.stderrAccessLog:
            path = "/dev/stderr"
        default:
            throw ConfigError("\(config.path): access logger \(extensionConfig.type ?? "?") is not supported by sluice-proxy"
                + " (file, stdout, stderr)")
        }
        for format in ["log_format", "format", "json_format", "typed_json_format"] where config.has(format) {
            config.skip(format)
            warnings.append("\(config.path(of: format)): accepted and ignored: access log lines use sluice-proxy's format")
        }
        try config.finish(warnings: &warnings)
        try log.finish(warnings: &warnings)
        return path
    }

    // MARK: - Overload manager, logs, extensions

    /// Only the global downstream connection limit acts without overload actions, and actions are refused.
    private mutating func overloadManager(_ reader: MessageReader?) throws(ConfigError) -> Int? {
        guard var reader else { return nil }
        try reader.refuse("actions", "overload actions are not supported by sluice-proxy")
        try reader.refuse("loadshed_points", "load shedding is not supported by sluice-proxy")
        var limit: Int?
        for var monitor in try reader.messages("resource_monitors", type: "ResourceMonitor") {
            let extensionConfig = try typedConfig(&monitor)
            let isConnectionLimit = extensionConfig.type == EnvoyTypes.downstreamConnections
                || (extensionConfig.type == nil && extensionConfig.name == EnvoyTypes.globalDownstreamMaxConnectionsName)
            if isConnectionLimit, var config = extensionConfig.config {
                let value = try config.integer("max_active_downstream_connections", in: 0...Int64.max)
                limit = value.map { Int($0) }
                try config.finish(warnings: &warnings)
            }
            // Other monitors (heap, cgroup memory, CPU) only feed overload actions: nothing to do.
            try monitor.finish(warnings: &warnings)
        }
        try reader.finish(warnings: &warnings)
        return limit
    }

    private mutating func applicationLog(_ reader: MessageReader?) throws(ConfigError) -> (text: String?, json: JSONObject?) {
        guard var reader, var format = try reader.message("log_format", type: "LogFormat") else { return (nil, nil) }
        let text = try format.string("text_format")
        var json: JSONObject?
        if let value = format.value("json_format") {
            guard case .object(let object) = value else {
                throw ConfigError("\(format.path(of: "json_format")): expected an object, found \(value.kindDescription)")
            }
            json = object
        }
        if text != nil, json != nil {
            throw ConfigError("\(format.path): text_format and json_format are alternatives; keep one")
        }
        try format.finish(warnings: &warnings)
        try reader.finish(warnings: &warnings)
        return (text, json)
    }

    /// Istio always loads the internal listener extension for istiod's waypoint and tunnel
    /// listeners; with no internal listeners here it has nothing to do. Any other extension would
    /// add behaviour that sluice-proxy does not have.
    private mutating func bootstrapExtensions(_ elements: [(value: JSONValue, path: JSONPath)]) throws(ConfigError) {
        for element in elements {
            var reader = try MessageReader(element.value, message: "TypedExtensionConfig", path: element.path)
            let name = try reader.string("name") ?? ""
            var type = ""
            if var config = try reader.message("typed_config", type: "Any") {
                type = EnvoyTypes.messageName(ofTypeURL: try config.string("@type") ?? "")
                if EnvoyTypes.typedStruct.contains(type) {
                    type = EnvoyTypes.messageName(ofTypeURL: try config.string("type_url") ?? "")
                }
            }
            if name != EnvoyTypes.internalListenerName && type != EnvoyTypes.internalListener {
                warnings.append("\(element.path): accepted and ignored: bootstrap extension '\(name)' is not loaded")
            }
        }
    }

    // MARK: - Typed configs

    /// A filter-like message's extension: the proto message its `typed_config` holds (nil without
    /// one), its `name`, and a reader over the typed config's fields (its `@type` already read).
    mutating func typedConfig(_ reader: inout MessageReader) throws(ConfigError)
        -> (type: String?, name: String, config: MessageReader?)
    {
        let name = try reader.string("name") ?? ""
        try reader.refuse("config_discovery", "sluice-proxy has no xDS client to discover filter configuration from")
        guard let value = reader.value("typed_config") else { return (nil, name, nil) }
        let path = reader.path(of: "typed_config")
        guard case .object(let object) = value, case .string(let url)? = object["@type"] else {
            throw ConfigError("\(path): needs an @type")
        }
        let type = EnvoyTypes.messageName(ofTypeURL: url)
        let shortName = String(type.split(separator: ".").last ?? Substring(type))
        var config = try MessageReader(value, message: shortName, path: path)
        config.skip("@type")
        return (type, name, config)
    }

    // MARK: - Whole-document checks

    private func checkNames(clusters: [ClusterConfig], listeners: [ListenerConfig]) throws(ConfigError) {
        var seen: Set<String> = []
        for (index, cluster) in clusters.enumerated() where !seen.insert(cluster.name).inserted {
            throw ConfigError("static_resources.clusters[\(index)].name: '\(cluster.name)' names another cluster too;"
                + " cluster names must be unique")
        }
        seen = []
        for (index, listener) in listeners.enumerated() where !seen.insert(listener.name).inserted {
            throw ConfigError("static_resources.listeners[\(index)].name: '\(listener.name)' names another listener too;"
                + " listener names must be unique")
        }
    }

    /// Two listeners cannot bind one address and port. Port 0 asks the kernel for a fresh port each time.
    private func checkListenerAddresses(_ listeners: [ListenerConfig]) throws(ConfigError) {
        var owners: [Endpoint: String] = [:]
        for (index, listener) in listeners.enumerated() {
            for (position, endpoint) in listener.addresses.enumerated() where endpoint.port != 0 {
                if let owner = owners[endpoint] {
                    let field = position == 0 ? "address" : "additional_addresses[\(position - 1)]"
                    let whose = owner == listener.name ? "this listener's other address" : "listener '\(owner)'"
                    throw ConfigError("static_resources.listeners[\(index)].\(field): \(endpoint) is also \(whose);"
                        + " each address and port can have one listener")
                }
                owners[endpoint] = listener.name
            }
        }
    }

    private func checkClusterReferences(_ clusters: [ClusterConfig]) throws(ConfigError) {
        let names = Set(clusters.map(\.name))
        for reference in clusterReferences where !names.contains(reference.cluster) {
            throw ConfigError("\(reference.path): cluster '\(reference.cluster)' is not defined in static_resources.clusters")
        }
    }
}
