import AgentHTTP
import Capture
import ConfigFormats
import DataPlaneConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Envoy renders these admin bodies from protobuf messages; the JSON below follows protobuf's JSON
// mapping as Envoy prints it: snake_case names, fields in declaration order, 64-bit integers as
// strings, enums by name, durations as "12s", and (without `always_print_primitive_fields`) default
// values left out.

extension AdminAPI {
    // MARK: - /server_info

    func serverInfo() -> HTTPResponse {
        let now = clock()
        let uptime = max(0, now.seconds - control.startTime.seconds)
        let info: JSONObject = [
            "version": .string(version),
            "state": .string(control.reportedState.name),
            "uptime_current_epoch": .string("\(uptime)s"),
            "uptime_all_epochs": .string("\(uptime)s"),
            // sluice-proxy never hot-restarts; Envoy reports this under --disable-hot-restart.
            "hot_restart_version": "disabled",
            "command_line_options": .object(Self.commandLineOptions(control.commandLine)),
            "node": .object(nodeJSON()),
        ]
        return .adminJSON(.object(info))
    }

    /// `envoy.admin.v3.CommandLineOptions`, every field printed (Envoy asks for primitive defaults here).
    static func commandLineOptions(_ commandLine: ProxyCommandLine) -> JSONObject {
        let concurrency = commandLine.concurrency ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let componentLevels = commandLine.componentLogLevels.sorted { $0.key < $1.key }
            .map { "\($0.key):\($0.value.rawValue)" }.joined(separator: ",")
        let mode: String
        switch commandLine.mode {
        case .validate: mode = "Validate"
        default: mode = "Serve"
        }
        return [
            "base_id": "0",
            "use_dynamic_base_id": false,
            "base_id_path": "",
            "concurrency": .integer(Int64(concurrency)),
            "config_path": .string(commandLine.configPath ?? ""),
            "config_yaml": .string(commandLine.configYAML ?? ""),
            "allow_unknown_static_fields": false,
            "reject_unknown_dynamic_fields": false,
            "ignore_unknown_dynamic_fields": false,
            "admin_address_path": .string(commandLine.adminAddressPath ?? ""),
            "local_address_ip_version": .string(commandLine.localAddressIPVersion == .ipv6 ? "v6" : "v4"),
            "log_level": .string(commandLine.logLevel.rawValue),
            "component_log_level": .string(componentLevels),
            "log_format": .string(commandLine.logFormat ?? ProxyLogFormat.envoyDefault),
            "log_format_escaped": false,
            "log_path": .string(commandLine.logPath ?? ""),
            "service_cluster": .string(commandLine.serviceCluster ?? ""),
            "service_node": .string(commandLine.serviceNode ?? ""),
            "service_zone": .string(commandLine.serviceZone ?? ""),
            "file_flush_interval": "10s",
            "drain_time": .string(protobufDuration(commandLine.drainTime)),
            "drain_strategy": .string(commandLine.drainStrategyImmediate ? "Immediate" : "Gradual"),
            "parent_shutdown_time": .string(protobufDuration(commandLine.parentShutdownTime)),
            "mode": .string(mode),
            "disable_hot_restart": true,
            "enable_mutex_tracing": false,
            "restart_epoch": 0,
            "cpuset_threads": false,
            "disabled_extensions": [],
            "bootstrap_version": 0,
            "enable_fine_grain_logging": false,
            "socket_path": "@envoy_domain_socket",
            "socket_mode": 0,
            "enable_core_dump": false,
        ]
    }

    /// The bootstrap's node as Envoy fills it: id and cluster as resolved (flags fill empty ones),
    /// and the user agent Envoy's xDS client announces.
    func nodeJSON() -> JSONObject {
        let node = control.bootstrap.node
        var object = control.bootstrap.source["node"]?.objectValue ?? JSONObject()
        object["id"] = .string(node.id)
        object["cluster"] = .string(node.cluster)
        if object["user_agent_name"] == nil { object["user_agent_name"] = "envoy" }
        return object
    }

    /// google.protobuf.Duration's JSON: seconds with 0, 3, 6 or 9 fraction digits and an `s`.
    static func protobufDuration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanos = Int(attoseconds / 1_000_000_000)
        guard nanos != 0 else { return "\(seconds)s" }
        if nanos % 1_000_000 == 0 { return "\(seconds).\((nanos / 1_000_000).padded(3))s" }
        if nanos % 1000 == 0 { return "\(seconds).\((nanos / 1000).padded(6))s" }
        return "\(seconds).\(nanos.padded(9))s"
    }

    // MARK: - /listeners

    func listeners(_ query: AdminQuery) -> HTTPResponse {
        let statuses = control.listenerStatuses()
        guard query.nonEmpty("format") == "json" else {
            var text = ""
            for status in statuses {
                for address in status.addresses { text += "\(status.name)::\(address)\n" }
            }
            return .adminText(200, text)
        }
        let rendered: [JSONValue] = statuses.map { status in
            var object: JSONObject = ["name": .string(status.name)]
            if let first = status.addresses.first {
                object["local_address"] = Self.addressJSON(.socket(first))
            }
            if status.addresses.count > 1 {
                object["additional_local_addresses"] = .array(status.addresses.dropFirst().map { Self.addressJSON(.socket($0)) })
            }
            return .object(object)
        }
        return .adminJSON(["listener_statuses": .array(rendered)])
    }

    /// `envoy.config.core.v3.Address`.
    static func addressJSON(_ address: ProxyAddress) -> JSONValue {
        switch address {
        case .socket(let endpoint):
            var socket: JSONObject = ["address": .string(endpoint.address.description)]
            if endpoint.port != 0 { socket["port_value"] = .integer(Int64(endpoint.port)) }
            return ["socket_address": .object(socket)]
        case .pipe(let path):
            return ["pipe": ["path": .string(path)]]
        }
    }

    /// `Address::asString()`: `1.2.3.4:80`, `[::1]:80`, or the pipe's path.
    static func addressText(_ address: ProxyAddress) -> String {
        switch address {
        case .socket(let endpoint): endpoint.description
        case .pipe(let path): path
        }
    }

    // MARK: - /clusters

    /// A cluster's circuit-breaker limits from the bootstrap (Envoy's defaults: 1024, 1024, 1024, 3).
    struct CircuitBreakerLimits: Equatable {
        var maxConnections: Int64 = 1024
        var maxPendingRequests: Int64 = 1024
        var maxRequests: Int64 = 1024
        var maxRetries: Int64 = 3
    }

    func circuitBreakers(cluster name: String) -> (normal: CircuitBreakerLimits, high: CircuitBreakerLimits) {
        var normal = CircuitBreakerLimits()
        var high = CircuitBreakerLimits()
        let clusters = control.bootstrap.source["static_resources"]?["clusters"]?.arrayValue ?? []
        guard let cluster = clusters.first(where: { $0["name"]?.stringValue == name }),
              let thresholds = cluster["circuit_breakers"]?["thresholds"]?.arrayValue else {
            return (normal, high)
        }
        for threshold in thresholds {
            var limits = CircuitBreakerLimits()
            if let value = threshold["max_connections"]?.intValue { limits.maxConnections = value }
            if let value = threshold["max_pending_requests"]?.intValue { limits.maxPendingRequests = value }
            if let value = threshold["max_requests"]?.intValue { limits.maxRequests = value }
            if let value = threshold["max_retries"]?.intValue { limits.maxRetries = value }
            if threshold["priority"]?.stringValue == "HIGH" { high = limits } else { normal = limits }
        }
        return (normal, high)
    }

    func clusters(_ query: AdminQuery) -> HTTPResponse {
        let statuses = control.clusterStatuses()
        if query.nonEmpty("format") == "json" {
            return .adminJSON(["cluster_statuses": .array(statuses.map(clusterJSON))])
        }
        var text = ""
        for cluster in statuses {
            let name = cluster.name
            text += "\(name)::observability_name::\(cluster.observabilityName)\n"
            let limits = circuitBreakers(cluster: name)
            for (priority, limit) in [("default", limits.normal), ("high", limits.high)] {
                text += "\(name)::\(priority)_priority::max_connections::\(limit.maxConnections)\n"
                text += "\(name)::\(priority)_priority::max_pending_requests::\(limit.maxPendingRequests)\n"
                text += "\(name)::\(priority)_priority::max_requests::\(limit.maxRequests)\n"
                text += "\(name)::\(priority)_priority::max_retries::\(limit.maxRetries)\n"
            }
            text += "\(name)::added_via_api::false\n"
            for host in cluster.hosts {
                let address = Self.addressText(host.address)
                // Envoy sorts counters and gauges together by name.
                for (stat, value) in (host.stats.counters + host.stats.gauges).sorted(by: { $0.0 < $1.0 }) {
                    text += "\(name)::\(address)::\(stat)::\(value)\n"
                }
                text += "\(name)::\(address)::hostname::\n"
                text += "\(name)::\(address)::health_flags::\(host.healthy ? "healthy" : "/failed_eds_health")\n"
                text += "\(name)::\(address)::weight::1\n"
                text += "\(name)::\(address)::region::\n"
                text += "\(name)::\(address)::zone::\n"
                text += "\(name)::\(address)::sub_zone::\n"
                text += "\(name)::\(address)::canary::false\n"
                text += "\(name)::\(address)::priority::0\n"
                text += "\(name)::\(address)::success_rate::-1\n"
                text += "\(name)::\(address)::local_origin_success_rate::-1\n"
            }
        }
        return .adminText(200, text)
    }

    /// `envoy.admin.v3.ClusterStatus`.
    private func clusterJSON(_ cluster: ClusterStatus) -> JSONValue {
        var object: JSONObject = ["name": .string(cluster.name)]
        if !cluster.hosts.isEmpty {
            object["host_statuses"] = .array(cluster.hosts.map(hostJSON))
        }
        let limits = circuitBreakers(cluster: cluster.name)
        func thresholds(_ limit: CircuitBreakerLimits, priority: String?) -> JSONValue {
            var threshold = JSONObject()
            if let priority { threshold["priority"] = .string(priority) }
            threshold["max_connections"] = .integer(limit.maxConnections)
            threshold["max_pending_requests"] = .integer(limit.maxPendingRequests)
            threshold["max_requests"] = .integer(limit.maxRequests)
            threshold["max_retries"] = .integer(limit.maxRetries)
            return .object(threshold)
        }
        object["circuit_breakers"] = ["thresholds": [thresholds(limits.normal, priority: nil), thresholds(limits.high, priority: "HIGH")]]
        object["observability_name"] = .string(cluster.observabilityName)
        return .object(object)
    }

    /// `envoy.admin.v3.HostStatus`; a `SimpleMetric` leaves out a zero value and the COUNTER type.
    private func hostJSON(_ host: HostStatus) -> JSONValue {
        var stats: [JSONValue] = []
        for (name, value) in host.stats.counters {
            var metric = JSONObject()
            if value != 0 { metric["value"] = .string(String(value)) }
            metric["name"] = .string(name)
            stats.append(.object(metric))
        }
        for (name, value) in host.stats.gauges {
            var metric: JSONObject = ["type": "GAUGE"]
            if value != 0 { metric["value"] = .string(String(value)) }
            metric["name"] = .string(name)
            stats.append(.object(metric))
        }
        return [
            "address": Self.addressJSON(host.address),
            "stats": .array(stats),
            "health_status": ["eds_health_status": .string(host.healthy ? "HEALTHY" : "UNHEALTHY")],
            "weight": 1,
            "locality": [:],
        ]
    }
}
