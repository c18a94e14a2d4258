import Capture
/// What pilot-agent was asked to do: the subcommand with its own flags, the flags every subcommand
/// shares, and warnings about input that was tolerated (unknown flags, ignored logging flags).
public struct AgentInvocation: Sendable, Equatable {
    public var command: AgentCommand
    public var common: CommonOptions
    public var warnings: [String]

    public init(command: AgentCommand, common: CommonOptions = CommonOptions(), warnings: [String] = []) {
        self.command = command
        self.common = common
        self.warnings = warnings
    }
}

public enum AgentCommand: Sendable, Equatable {
    /// `pilot-agent proxy [sidecar|router]`: run the data plane.
    case proxy(ProxyArguments)
    /// `pilot-agent wait`: poll the readiness URL (holdApplicationUntilProxyStarts' postStart hook).
    case wait(WaitArguments)
    /// `pilot-agent request METHOD PATH [BODY]`: one HTTP call to a local Istio port.
    case request(RequestArguments)
    case version(VersionArguments)
    /// `pilot-agent istio-iptables ...`: everything after the subcommand, verbatim, for sluice-init's own parser.
    case istioIptables(arguments: [String])
    /// `help [topic]`, `--help` or `-h`; print `AgentCommandLine.usage(for: topic)` and exit 0.
    case help(topic: String?)
}

/// The node types Sluice supports. Istio also knows waypoint, ztunnel and agentgateway; those are ambient
/// roles Sluice does not implement.
public enum ProxyType: String, Sendable, Hashable, CaseIterable {
    case sidecar
    case router
}

/// Flags of `pilot-agent proxy`, with Istio's defaults (`pilot/cmd/pilot-agent/app/cmd.go addFlags`).
public struct ProxyArguments: Sendable, Equatable {
    public var proxyType: ProxyType = .sidecar
    /// `--domain`; empty means `<POD_NAMESPACE>.svc.cluster.local`.
    public var domain: String = ""
    public var meshConfigPath: String = AgentPaths.defaultMeshConfig
    /// `--stsPort`; 0 disables the STS server.
    public var stsPort: Int = 0
    public var tokenManagerPlugin: String = "GoogleTokenExchange"
    /// Deprecated `--serviceCluster`: used only when ProxyConfig's serviceCluster is empty.
    public var serviceCluster: String = "istio-proxy"
    /// `--proxyLogLevel`: `level[,component:level...]`, split into Envoy's `-l` and `--component-log-level`.
    public var proxyLogLevel: String = "warning"
    public var proxyComponentLogLevel: String = ""
    /// Legacy `--concurrency`; 0 means not given. Overrides ProxyConfig with a warning.
    public var concurrency: Int = 0
    public var templateFile: String = ""
    public var outlierLogPath: String = ""
    /// `--profiling`: serve `/debug/pprof/*` on the status port (localhost only).
    public var profiling: Bool = true

    public init() {}
}

/// Flags of `pilot-agent wait` (`app/wait.go`).
public struct WaitArguments: Sendable, Equatable {
    public var url: String = "http://localhost:15021/healthz/ready"
    public var period: Duration = .milliseconds(500)
    public var requestTimeout: Duration = .milliseconds(500)
    public var timeout: Duration = .seconds(60)

    public init() {}
}

/// `pilot-agent request METHOD PATH [BODY]` (`app/request.go`).
public struct RequestArguments: Sendable, Equatable {
    /// Istio allows only its own local ports: Envoy admin, status, Envoy readiness and the XDS debug tap.
    public static let allowedDebugPorts = [15000, 15020, 15021, 15004]

    public var method: String
    public var path: String
    public var body: String?
    public var debugPort: Int = 15000

    public init(method: String, path: String, body: String? = nil, debugPort: Int = 15000) {
        self.method = method
        self.path = path
        self.body = body
        self.debugPort = debugPort
    }

    /// Istio joins the path to `http://localhost:<port>/`, so `POST drain` and `POST /drain` are the same.
    public var url: String {
        var relative = Substring(path)
        while relative.first == "/" { relative = relative.dropFirst() }
        return "http://localhost:\(debugPort)/\(relative)"
    }
}

public struct VersionArguments: Sendable, Equatable {
    /// `--short` / `-s`: the version number only.
    public var short: Bool = false
    /// `--output` / `-o`: "", "yaml" or "json".
    public var output: String = ""

    public init() {}
}

/// Flags accepted by every subcommand: Istio's logging flags and Sluice's own.
public struct CommonOptions: Sendable, Equatable {
    /// `--log_output_level`, Istio's default `default:info`.
    public var logLevels: LogLevels = LogLevels()
    /// `--log_stacktrace_level`, Istio's default `default:none`.
    public var stacktraceLevels: LogLevels = LogLevels(defaultLevel: .none, unlistedScopeLevel: .none)
    public var logAsJSON: Bool = false
    /// `--log_target`, repeatable; the first use replaces the default `stdout`.
    public var logTargets: [String] = ["stdout"]
    /// `--log_caller`: comma-separated scopes that log their caller.
    public var logCallerScopes: String = ""
    /// `--root` (Sluice): the directory every `./etc/...` and `./var/...` path lives under. nil when not given
    /// on the command line (then `SLUICE_ROOT`, then `/`).
    public var root: String?
    /// `--allow-root` (Sluice): permit running as uid 0 without dropping to the proxy user.
    public var allowRoot: Bool = false
    /// `--restart-proxy` (Sluice): restart the data plane with backoff instead of exiting with it.
    public var restartProxy: Bool = false

    public init() {}
}

/// Istio's log levels (`istio.io/istio/pkg/log`), lowest verbosity first.
public enum LogLevel: String, Sendable, Hashable, CaseIterable {
    case none, fatal, error, warn, info, debug
}

/// Per-scope log levels in Istio's `--log_output_level` syntax: `default:info,dns:debug`. A bare level
/// sets the `default` scope; the scope `all` sets every scope.
public struct LogLevels: Sendable, Equatable {
    /// The level of Istio's `default` scope.
    public var defaultLevel: LogLevel
    /// Levels of scopes named explicitly (other than `default`).
    public var scopeLevels: [String: LogLevel]
    /// The level of every scope not named: Istio registers all scopes at `info` unless `all:` changed them.
    public var unlistedScopeLevel: LogLevel

    public init(defaultLevel: LogLevel = .info, scopeLevels: [String: LogLevel] = [:], unlistedScopeLevel: LogLevel = .info) {
        self.defaultLevel = defaultLevel
        self.scopeLevels = scopeLevels
        self.unlistedScopeLevel = unlistedScopeLevel
    }

    public func level(forScope scope: String) -> LogLevel {
        if scope == "default" { return defaultLevel }
        return scopeLevels[scope] ?? unlistedScopeLevel
    }

    /// Parses `scope:level,...` on top of `base`, in order, as Istio's `processLevels` does. Returns nil and a
    /// reason when an item is malformed.
    public static func parse(_ text: String, base: LogLevels = LogLevels()) -> Result<LogLevels, LogLevelSyntaxError> {
        var levels = base
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            var scope = "default"
            var levelText = Substring(item)
            if let colon = item.firstIndex(of: ":"), colon != item.startIndex {
                scope = String(item[..<colon])
                levelText = item[item.index(after: colon)...]
            }
            guard let level = LogLevel(rawValue: String(levelText)) else {
                return .failure(LogLevelSyntaxError(
                    reason: "level \(goQuoted(String(levelText))) in \(goQuoted(String(item))) is not one of "
                        + LogLevel.allCases.map(\.rawValue).joined(separator: ", ")))
            }
            switch scope {
            case "default":
                levels.defaultLevel = level
            case "all":
                levels.defaultLevel = level
                levels.unlistedScopeLevel = level
                for key in levels.scopeLevels.keys { levels.scopeLevels[key] = level }
            default:
                levels.scopeLevels[scope] = level
            }
        }
        return .success(levels)
    }
}

public struct LogLevelSyntaxError: Error, Sendable, Equatable {
    public var reason: String
}
