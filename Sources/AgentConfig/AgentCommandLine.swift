import Capture

/// pilot-agent's command line, parsed as Istio's cobra/pflag command does: the first positional word names
/// the subcommand (flags may come before it), flags take `--flag=value`, `--flag value`, bare booleans
/// `--flag` / `--flag=false`, `-h`, and `--` ends the flags. Unknown flags are tolerated as Istio's
/// `FParseErrWhitelist{UnknownFlags: true}` tolerates them (including swallowing a following value), but
/// each becomes a warning.
public enum AgentCommandLine {
    /// Parses the arguments after the program name.
    public static func parse(_ arguments: [String]) throws(AgentConfigError) -> AgentInvocation {
        guard let (index, name) = findSubcommand(arguments) else {
            // cobra: a root command without a Run prints its help when no subcommand is named.
            var parser = FlagParser(command: nil)
            let positional = try parser.parse(arguments)
            if let first = positional.first {
                throw AgentConfigError("unknown command \(goQuoted(first)) for \"pilot-agent\"; see pilot-agent --help")
            }
            return AgentInvocation(command: .help(topic: nil), common: parser.common, warnings: parser.warnings)
        }
        guard let command = Subcommand(rawValue: name) else {
            throw AgentConfigError(
                "unknown command \(goQuoted(name)) for \"pilot-agent\"; use one of "
                    + Subcommand.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let before = Array(arguments[..<index])
        let after = Array(arguments[(index + 1)...])

        if command == .istioIptables {
            // Everything after the subcommand belongs to sluice-init's own (Istio-compatible) parser.
            var parser = FlagParser(command: nil)
            let stray = try parser.parse(before)
            if !stray.isEmpty {
                parser.warnings.append("ignoring arguments before istio-iptables: \(stray.joined(separator: " "))")
            }
            return AgentInvocation(command: .istioIptables(arguments: after), common: parser.common, warnings: parser.warnings)
        }

        var parser = FlagParser(command: command)
        let positional = try parser.parse(before + after)
        if parser.helpRequested {
            return AgentInvocation(command: .help(topic: command == .help ? positional.first : command.rawValue),
                                   common: parser.common, warnings: parser.warnings)
        }
        let result: AgentCommand
        switch command {
        case .proxy:
            var proxy = parser.proxy
            if let typeName = positional.first {
                guard let type = ProxyType(rawValue: typeName) else {
                    throw AgentConfigError("invalid proxy type \(goQuoted(typeName)): use sidecar or router")
                }
                proxy.proxyType = type
            }
            if positional.count > 1 {
                parser.warnings.append("ignoring extra arguments to proxy: \(positional.dropFirst().joined(separator: " "))")
            }
            result = .proxy(proxy)
        case .wait:
            if !positional.isEmpty {
                parser.warnings.append("ignoring arguments to wait: \(positional.joined(separator: " "))")
            }
            result = .wait(parser.wait)
        case .request:
            guard (2...3).contains(positional.count) else {
                throw AgentConfigError(
                    "request takes METHOD PATH [BODY], got \(positional.count) argument\(positional.count == 1 ? "" : "s");"
                        + " e.g. pilot-agent request --debug-port=15020 POST drain")
            }
            var request = RequestArguments(method: positional[0], path: positional[1],
                                           body: positional.count == 3 ? positional[2] : nil)
            request.debugPort = parser.debugPort
            result = .request(request)
        case .version:
            result = .version(parser.version)
        case .help:
            result = .help(topic: positional.first)
        case .istioIptables:
            preconditionFailure("handled above")
        }
        return AgentInvocation(command: result, common: parser.common, warnings: parser.warnings)
    }

    /// cobra's `Find`/`stripFlags`: the first word that is neither a flag nor the value of one. A `--flag`
    /// without `=` that the root does not know as a boolean is assumed to take the next word as its value.
    static func findSubcommand(_ arguments: [String]) -> (index: Int, name: String)? {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return nil }
            if argument.hasPrefix("--"), !argument.contains("=") {
                let name = String(argument.dropFirst(2))
                index += FlagDefinition.root[name]?.kind == .bool ? 1 : 2
                continue
            }
            if argument.hasPrefix("-"), !argument.contains("="), argument.count == 2 {
                index += argument == "-h" ? 1 : 2
                continue
            }
            if !argument.isEmpty, !argument.hasPrefix("-") {
                return (index, argument)
            }
            index += 1
        }
        return nil
    }
}

enum Subcommand: String, CaseIterable {
    case proxy
    case wait
    case request
    case version
    case istioIptables = "istio-iptables"
    case help
}

struct FlagDefinition {
    enum Kind: Equatable { case bool, string, integer, stringArray }

    let name: String
    let kind: Kind
    let shorthand: Character?
    let valueName: String
    let summary: String

    init(_ name: String, _ kind: Kind, shorthand: Character? = nil, value valueName: String = "", _ summary: String) {
        self.name = name
        self.kind = kind
        self.shorthand = shorthand
        self.valueName = valueName
        self.summary = summary
    }

    static func table(_ definitions: [FlagDefinition]) -> [String: FlagDefinition] {
        Dictionary(uniqueKeysWithValues: definitions.map { ($0.name, $0) })
    }

    static let rootList: [FlagDefinition] = [
        FlagDefinition("log_output_level", .string, value: "levels",
                       "minimum level per scope, scope:level,... (none|fatal|error|warn|info|debug); default default:info"),
        FlagDefinition("log_as_json", .bool, "write logs (and the data plane's) as JSON"),
        FlagDefinition("log_target", .stringArray, value: "path", "where logs go (repeatable); default stdout"),
        FlagDefinition("log_caller", .string, value: "scopes", "scopes that log their caller"),
        FlagDefinition("log_stacktrace_level", .string, value: "levels", "minimum level per scope for stack traces; default default:none"),
        FlagDefinition("log_rotate", .string, value: "path", "accepted for Istio compatibility and ignored"),
        FlagDefinition("log_rotate_max_age", .integer, value: "days", "accepted for Istio compatibility and ignored"),
        FlagDefinition("log_rotate_max_size", .integer, value: "MB", "accepted for Istio compatibility and ignored"),
        FlagDefinition("log_rotate_max_backups", .integer, value: "count", "accepted for Istio compatibility and ignored"),
        FlagDefinition("root", .string, value: "dir",
                       "directory holding every ./etc/... and ./var/... path (env SLUICE_ROOT); default /"),
        FlagDefinition("allow-root", .bool, "allow running as uid 0 without dropping privileges"),
        FlagDefinition("restart-proxy", .bool, "restart the data plane with backoff instead of exiting when it exits"),
        FlagDefinition("help", .bool, shorthand: "h", "show help"),
    ]
    static let root = table(rootList)

    static let proxyList: [FlagDefinition] = [
        FlagDefinition("domain", .string, value: "domain", "DNS domain suffix; default <POD_NAMESPACE>.svc.cluster.local"),
        FlagDefinition("meshConfig", .string, value: "path", "mesh config file (its defaultConfig is merged); default \(AgentPaths.defaultMeshConfig)"),
        FlagDefinition("stsPort", .integer, value: "port", "Security Token Service port; 0 disables; default 0"),
        FlagDefinition("tokenManagerPlugin", .string, value: "name", "STS token plugin; default GoogleTokenExchange"),
        FlagDefinition("serviceCluster", .string, value: "name", "deprecated: service cluster when ProxyConfig has none; default istio-proxy"),
        FlagDefinition("proxyLogLevel", .string, value: "levels", "data plane log level, level[,component:level...]; default warning"),
        FlagDefinition("proxyComponentLogLevel", .string, value: "levels", "deprecated: data plane component log levels"),
        FlagDefinition("concurrency", .integer, value: "n", "deprecated: worker threads, overrides ProxyConfig.concurrency"),
        FlagDefinition("templateFile", .string, value: "path", "bootstrap template (when ProxyConfig has no customConfigFile)"),
        FlagDefinition("outlierLogPath", .string, value: "path", "outlier detection event log"),
        FlagDefinition("profiling", .bool, "serve /debug/pprof on the status port (localhost only); default true"),
    ]
    static let waitList: [FlagDefinition] = [
        FlagDefinition("url", .string, value: "url", "URL to poll; default http://localhost:15021/healthz/ready"),
        FlagDefinition("periodMillis", .integer, value: "ms", "poll period; default 500"),
        FlagDefinition("requestTimeoutMillis", .integer, value: "ms", "timeout of each request; default 500"),
        FlagDefinition("timeoutSeconds", .integer, value: "s", "give up after this long; default 60"),
    ]
    static let requestList: [FlagDefinition] = [
        FlagDefinition("debug-port", .integer, value: "port", "local port: 15000 (admin), 15020 (status), 15021, 15004; default 15000"),
    ]
    static let versionList: [FlagDefinition] = [
        FlagDefinition("short", .bool, shorthand: "s", "print the version number only"),
        FlagDefinition("output", .string, shorthand: "o", value: "format", "one of '', yaml, json"),
    ]

    static func list(for command: Subcommand?) -> [FlagDefinition] {
        switch command {
        case .proxy: proxyList
        case .wait: waitList
        case .request: requestList
        case .version: versionList
        case .istioIptables, .help, nil: []
        }
    }
}

/// pflag's `parseArgs` over the root flags plus one subcommand's flags, filling in typed values.
struct FlagParser {
    let command: Subcommand?
    let flags: [String: FlagDefinition]
    let shorthands: [Character: FlagDefinition]

    var common = CommonOptions()
    var proxy = ProxyArguments()
    var wait = WaitArguments()
    var debugPort = 15000
    var version = VersionArguments()
    var warnings: [String] = []
    var helpRequested = false
    private var logTargetGiven = false

    init(command: Subcommand?) {
        self.command = command
        let all = FlagDefinition.rootList + FlagDefinition.list(for: command)
        flags = FlagDefinition.table(all)
        var shorthands: [Character: FlagDefinition] = [:]
        for flag in all { if let letter = flag.shorthand { shorthands[letter] = flag } }
        self.shorthands = shorthands
    }

    private var seeHelp: String {
        command.map { "see pilot-agent \($0.rawValue) --help" } ?? "see pilot-agent --help"
    }

    /// Returns the positional arguments. Unknown flags are warnings, not errors: Istio's cobra command
    /// sets `UnknownFlags: true`, and injected arguments from newer Istio releases must not stop the pod.
    mutating func parse(_ arguments: [String]) throws(AgentConfigError) -> [String] {
        let flags = self.flags
        let shorthands = self.shorthands
        var scanner = PflagScanner(arguments, longArity: { name in
            flags[name].map { $0.kind == .bool ? .boolean : .value }
        }, shorthand: { letter in
            shorthands[letter].map { ($0.name, $0.kind == .bool ? .boolean : .value) }
        })
        var positional: [String] = []
        while true {
            let item: PflagScanner.Item?
            do {
                item = try scanner.next()
            } catch {
                throw AgentConfigError("\(error); \(seeHelp)")
            }
            guard let item else { return positional }
            switch item {
            case .flag(let name, let value, let spelling):
                try assign(flags[name]!, value, spelling: spelling)
            case .unknownLong(let name, let swallowed):
                warnings.append("ignoring unknown flag --\(name)" + swallowedNote(swallowed))
            case .unknownShorthand(let letter, _, let swallowed):
                warnings.append("ignoring unknown flag -\(letter)" + swallowedNote(swallowed))
            case .positional(let word):
                positional.append(word)
            }
        }
    }

    /// pflag's `stripUnknownFlagValue` takes the word after an unknown flag as its value; say so.
    private func swallowedNote(_ swallowed: String?) -> String {
        swallowed.map { " and its value \(goQuoted($0))" } ?? ""
    }

    private mutating func assign(_ flag: FlagDefinition, _ value: String, spelling: String) throws(AgentConfigError) {
        switch flag.kind {
        case .bool:
            guard let on = GoSyntax.parseBool(value) else {
                throw AgentConfigError("invalid value \(goQuoted(value)) for \(spelling): want true or false")
            }
            assignBool(flag.name, on)
        case .integer:
            guard let number = GoSyntax.parseSigned(value), let integer = Int(exactly: number) else {
                throw AgentConfigError("invalid value \(goQuoted(value)) for \(spelling): want an integer")
            }
            try assignInteger(flag.name, integer, spelling: spelling)
        case .string, .stringArray:
            try assignString(flag.name, value, spelling: spelling)
        }
    }

    private mutating func assignBool(_ name: String, _ on: Bool) {
        switch name {
        case "log_as_json": common.logAsJSON = on
        case "allow-root": common.allowRoot = on
        case "restart-proxy": common.restartProxy = on
        case "help": helpRequested = helpRequested || on
        case "profiling": proxy.profiling = on
        case "short": version.short = on
        default: preconditionFailure("boolean flag --\(name) has no destination")
        }
    }

    private mutating func assignInteger(_ name: String, _ value: Int, spelling: String) throws(AgentConfigError) {
        func require(_ condition: Bool, _ want: String) throws(AgentConfigError) {
            if !condition { throw AgentConfigError("invalid value \(value) for \(spelling): \(want)") }
        }
        switch name {
        case "log_rotate_max_age", "log_rotate_max_size", "log_rotate_max_backups":
            warnings.append("--\(name) is accepted for Istio compatibility and ignored: Sluice does not rotate logs")
        case "stsPort":
            try require((0...65535).contains(value), "want a port number 0-65535 (0 disables STS)")
            proxy.stsPort = value
        case "concurrency":
            try require(value >= 0, "want 0 or more worker threads")
            proxy.concurrency = value
        case "periodMillis":
            try require(value > 0, "want a period of at least 1 ms")
            wait.period = .milliseconds(value)
        case "requestTimeoutMillis":
            try require(value > 0, "want a timeout of at least 1 ms")
            wait.requestTimeout = .milliseconds(value)
        case "timeoutSeconds":
            try require(value >= 0, "want 0 or more seconds")
            wait.timeout = .seconds(value)
        case "debug-port":
            try require(RequestArguments.allowedDebugPorts.contains(value),
                        "use one of " + RequestArguments.allowedDebugPorts.map(String.init).joined(separator: ", "))
            debugPort = value
        default:
            preconditionFailure("integer flag --\(name) has no destination")
        }
    }

    private mutating func assignString(_ name: String, _ value: String, spelling: String) throws(AgentConfigError) {
        switch name {
        case "log_output_level":
            common.logLevels = try logLevels(value, base: LogLevels(), spelling: spelling)
        case "log_stacktrace_level":
            common.stacktraceLevels = try logLevels(
                value, base: LogLevels(defaultLevel: .none, unlistedScopeLevel: .none), spelling: spelling)
        case "log_target":
            if !logTargetGiven { common.logTargets = [] }
            logTargetGiven = true
            common.logTargets.append(value)
        case "log_caller": common.logCallerScopes = value
        case "log_rotate":
            warnings.append("--log_rotate is accepted for Istio compatibility and ignored: Sluice does not rotate logs")
        case "root":
            guard !value.isEmpty else { throw AgentConfigError("--root needs a directory; \(seeHelp)") }
            common.root = value
        case "domain": proxy.domain = value
        case "meshConfig": proxy.meshConfigPath = value
        case "tokenManagerPlugin": proxy.tokenManagerPlugin = value
        case "serviceCluster": proxy.serviceCluster = value
        case "proxyLogLevel": proxy.proxyLogLevel = value
        case "proxyComponentLogLevel": proxy.proxyComponentLogLevel = value
        case "templateFile": proxy.templateFile = value
        case "outlierLogPath": proxy.outlierLogPath = value
        case "url": wait.url = value
        case "output":
            guard ["", "yaml", "json"].contains(value) else {
                throw AgentConfigError("invalid value \(goQuoted(value)) for \(spelling): use yaml or json")
            }
            version.output = value
        default:
            preconditionFailure("string flag --\(name) has no destination")
        }
    }

    private func logLevels(_ text: String, base: LogLevels, spelling: String) throws(AgentConfigError) -> LogLevels {
        switch LogLevels.parse(text, base: base) {
        case .success(let levels): return levels
        case .failure(let error):
            throw AgentConfigError("invalid value \(goQuoted(text)) for \(spelling): \(error.reason)")
        }
    }
}
