import ConfigFormats

/// The data plane's command line after the binary, in the order Istio builds it (`pkg/envoy/proxy.go`):
///
///     -c <config> --drain-time-s N --drain-strategy immediate --local-address-ip-version v4|v6
///     --file-flush-interval-msec N --disable-hot-restart --allow-unknown-static-fields
///     [--file-flush-min-size-kb N] -l <level> [--component-log-level x] [--skip-deprecated-logs]
///     [--enable-core-dump] [--config-yaml <override as compact JSON>] [--concurrency N]
public struct EnvoyArguments: Sendable, Hashable {
    public enum LocalAddressIPVersion: String, Sendable, Hashable {
        case v4
        case v6
    }

    /// The bootstrap file, e.g. `./etc/istio/proxy/envoy-rev.json`.
    public var configPath: String
    /// ProxyConfig.drainDuration; Envoy takes whole seconds (truncated, as Istio does).
    public var drainDuration: Duration = .seconds(45)
    /// v6 only when every node IP is IPv6.
    public var localAddressIPVersion: LocalAddressIPVersion = .v4
    /// ProxyConfig.fileFlushInterval: access logs reach the file within this time (Envoy's default is 10s).
    public var fileFlushInterval: Duration = .seconds(1)
    /// ProxyConfig.fileFlushMinSizeKb, only passed when set.
    public var fileFlushMinimumSizeKilobytes: Int?
    /// `--proxyLogLevel`, possibly with component levels: `warning,misc:error`.
    public var proxyLogLevel: String = "warning"
    /// `--proxyComponentLogLevel` (deprecated); used only when `proxyLogLevel` names no component.
    public var proxyComponentLogLevel: String = ""
    /// `ENVOY_SKIP_DEPRECATED_LOGS`.
    public var skipDeprecatedLogs: Bool = true
    /// `ISTIO_ENVOY_ENABLE_CORE_DUMP`.
    public var enableCoreDump: Bool = false
    /// `ISTIO_BOOTSTRAP_OVERRIDE`, already read and converted from YAML: Envoy merges it over the file.
    public var configOverride: JSONValue?
    /// Worker threads; 0 means Envoy's default (all host cores) and passes no flag.
    public var concurrency: Int = 0

    public init(configPath: String) {
        self.configPath = configPath
    }

    public var arguments: [String] {
        var arguments = [
            "-c", configPath,
            "--drain-time-s", String(drainDuration.components.seconds),
            // Clients hear about the drain as soon as it starts, not gradually.
            "--drain-strategy", "immediate",
            "--local-address-ip-version", localAddressIPVersion.rawValue,
            "--file-flush-interval-msec", String(Self.milliseconds(fileFlushInterval)),
            // Istio never hot-restarts Envoy (since 1.10); the agent restarts the container instead.
            "--disable-hot-restart",
            // Bootstraps written for newer Envoys (or by custom templates) may carry fields this one lacks.
            "--allow-unknown-static-fields",
        ]
        if let kilobytes = fileFlushMinimumSizeKilobytes {
            arguments += ["--file-flush-min-size-kb", String(kilobytes)]
        }
        let levels = Self.splitProxyLogLevel(proxyLogLevel)
        if !levels.level.isEmpty {
            arguments += ["-l", levels.level]
        }
        if let components = levels.componentLevels {
            arguments += ["--component-log-level", components]
        } else if !proxyComponentLogLevel.isEmpty {
            arguments += ["--component-log-level", proxyComponentLogLevel]
        }
        if skipDeprecatedLogs { arguments.append("--skip-deprecated-logs") }
        if enableCoreDump { arguments.append("--enable-core-dump") }
        if let configOverride {
            // The flag is named for YAML, but Envoy reads JSON there too.
            arguments += ["--config-yaml", configOverride.renderedJSON(pretty: false)]
        }
        if concurrency > 0 {
            arguments += ["--concurrency", String(concurrency)]
        }
        return arguments
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Istio's `--proxyLogLevel` carries Envoy's level and component levels in one value, split like
    /// Istio's `splitComponentLog`: `warning,misc:error,upstream:debug` is level `warning` and
    /// components `misc:error,upstream:debug`. The last plain entry wins; entries with more than one
    /// `:` are dropped (Istio logs a warning), and are returned so the caller can do the same.
    public static func splitProxyLogLevel(_ value: String) -> ProxyLogLevels {
        var levels = ProxyLogLevels(level: "", componentLevels: nil, ignoredEntries: [])
        var components: [Substring] = []
        for entry in value.split(separator: ",", omittingEmptySubsequences: false) {
            switch entry.split(separator: ":", omittingEmptySubsequences: false).count {
            case 1: levels.level = String(entry)
            case 2: components.append(entry)
            default: levels.ignoredEntries.append(String(entry))
            }
        }
        if !components.isEmpty { levels.componentLevels = components.joined(separator: ",") }
        return levels
    }
}

/// `--proxyLogLevel` split into Envoy's `-l` and `--component-log-level`.
public struct ProxyLogLevels: Sendable, Hashable {
    /// For `-l`; empty when the value named only components (then no `-l` is passed, as in Istio).
    public var level: String
    /// For `--component-log-level`, e.g. `misc:error`; nil when none were given.
    public var componentLevels: String?
    /// Malformed entries (`a:b:c`) that were dropped.
    public var ignoredEntries: [String]
}
