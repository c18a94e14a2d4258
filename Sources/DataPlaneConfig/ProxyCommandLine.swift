import Capture

/// sluice-proxy's command line: Envoy's flags, as pilot-agent passes them
/// (`-c envoy-rev.json --drain-time-s 45 --drain-strategy immediate … --disable-hot-restart …`),
/// so that the agent can start sluice-proxy exactly as it would start Envoy.
public struct ProxyCommandLine: Sendable, Equatable {
    public enum Mode: Sendable, Equatable { case serve, validate, help, version }

    /// `--mode serve|validate`, `--help`/`-h`, `--version`.
    public var mode: Mode = .serve
    /// `-c`, `--config-path`.
    public var configPath: String?
    /// `--config-yaml`: JSON or YAML merged over the file.
    public var configYAML: String?
    /// `--drain-time-s` (Envoy's default: 600 s).
    public var drainTime: Duration = .seconds(600)
    /// `--parent-shutdown-time-s` (Envoy's default: 900 s).
    public var parentShutdownTime: Duration = .seconds(900)
    /// `--drain-strategy immediate|gradual` (default gradual).
    public var drainStrategyImmediate = false
    /// `--concurrency`; nil = one worker per CPU. Envoy runs one worker for `--concurrency 0`, and so does this.
    public var concurrency: Int?
    /// `-l`, `--log-level` (default info, Envoy's).
    public var logLevel: LogLevel = .info
    /// `--component-log-level upstream:debug,connection:trace`.
    public var componentLogLevels: [String: LogLevel] = [:]
    /// `--log-format` (spdlog pattern).
    public var logFormat: String?
    /// `--log-path`.
    public var logPath: String?
    /// `--local-address-ip-version v4|v6` (default v4).
    public var localAddressIPVersion: IPFamily = .ipv4
    /// `--service-cluster`.
    public var serviceCluster: String?
    /// `--service-node`.
    public var serviceNode: String?
    /// `--service-zone`.
    public var serviceZone: String?
    /// `--admin-address-path`: where to write the admin listener's address once bound (useful with port 0).
    public var adminAddressPath: String?
    /// One per unknown flag (ignored) and per known flag that is accepted without the effect it has in Envoy.
    public var warnings: [String] = []

    public init() {}

    /// Parses the arguments after argv[0].
    ///
    /// Both `--flag value` and `--flag=value` are accepted (`-c path` and `-l level` too). As in Envoy
    /// (TCLAP), the argument after a value flag is its value even when it starts with a dash
    /// (`--log-format "-%v"`), except that a known flag there means the value was forgotten.
    /// `-h`/`--help` and `--version` win over everything else, so that help is always reachable.
    public static func parse(_ arguments: [String]) throws(ConfigError) -> ProxyCommandLine {
        var commandLine = ProxyCommandLine()
        let flagArguments = arguments.prefix { $0 != "--" && $0 != "--ignore_rest" }
        if flagArguments.contains(where: { $0 == "-h" || $0 == "--help" }) {
            commandLine.mode = .help
            return commandLine
        }
        if flagArguments.contains("--version") {
            commandLine.mode = .version
            return commandLine
        }

        var given: Set<String> = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument != "-" else {
                throw ConfigError(
                    "unexpected argument '\(argument)': sluice-proxy takes only flags (the bootstrap is -c <path>)")
            }
            let (name, inlineValue) = splitInlineValue(argument)
            guard let flag = EnvoyFlags.named(name) else {
                commandLine.warnings.append(skipUnknownFlag(name, inlineValue: inlineValue, arguments, &index))
                continue
            }
            if flag.effect == .endsFlags {
                let rest = arguments[index...]
                if !rest.isEmpty {
                    commandLine.warnings.append(
                        "\(argument): the arguments after it are ignored, as in Envoy: \(rest.joined(separator: " "))")
                }
                break
            }
            if case .refused(let why) = flag.effect {
                throw ConfigError("\(name): \(why)")
            }
            let repeatable = if case .repeatableValue = flag.kind { true } else { false }
            if !repeatable, given.contains(flag.name) {
                throw ConfigError("\(flag.spelling): given more than once; Envoy accepts it once")
            }
            given.insert(flag.name)

            var value = ""
            switch flag.kind {
            case .switchFlag:
                if let inlineValue {
                    throw ConfigError("\(name): takes no value (got '\(inlineValue)'); give it as \(name) alone")
                }
            case .value(let placeholder), .repeatableValue(let placeholder):
                if let inlineValue {
                    value = inlineValue
                } else if index < arguments.count, !EnvoyFlags.isKnownFlagArgument(arguments[index]) {
                    value = arguments[index]
                    index += 1
                } else {
                    throw ConfigError("\(name): missing its value; give \(name) <\(placeholder)>")
                }
            }
            try commandLine.apply(flag, spelled: name, value: value)
        }
        return commandLine
    }

    /// `--flag=value` → ("--flag", "value"); `-c=x` the same; anything else has no inline value.
    private static func splitInlineValue(_ argument: String) -> (String, String?) {
        guard let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// An unknown flag is ignored with a warning. Not knowing whether it takes a value, the parser
    /// guesses: `--x=v` is one word; `--x` followed by a word that does not start with `-` is taken
    /// as a flag and its value, and both are dropped (Envoy has no positional arguments, so such a
    /// word could be nothing else); `--x` followed by another flag or by nothing is a switch.
    private static func skipUnknownFlag(
        _ name: String, inlineValue: String?, _ arguments: [String], _ index: inout Int
    ) -> String {
        if inlineValue != nil {
            return "\(name): unknown flag, ignored with its value"
        }
        if index < arguments.count, !arguments[index].hasPrefix("-") {
            let value = arguments[index]
            index += 1
            return "\(name): unknown flag, ignored with the value after it ('\(value)')"
        }
        return "\(name): unknown flag, ignored"
    }

    private mutating func apply(_ flag: EnvoyFlag, spelled name: String, value: String) throws(ConfigError) {
        switch flag.name {
        case "--config-path": configPath = value
        case "--config-yaml": configYAML = value
        case "--mode":
            switch value {
            case "serve": mode = .serve
            case "validate": mode = .validate
            case "init_only":
                throw ConfigError(
                    "--mode: 'init_only' is not supported by sluice-proxy; use serve, or validate to check the configuration")
            default:
                throw ConfigError("--mode: unknown mode '\(value)'; use serve or validate")
            }
        case "--concurrency":
            let workers = try Self.unsigned32(value, flag: name, meaning: "a number of worker threads")
            if workers == 0 {
                warnings.append("--concurrency 0: runs one worker, as Envoy does; omit the flag for one per CPU")
            }
            concurrency = max(1, workers)
        case "--drain-time-s":
            drainTime = .seconds(try Self.unsigned32(value, flag: name, meaning: "whole seconds"))
        case "--parent-shutdown-time-s":
            parentShutdownTime = .seconds(try Self.unsigned32(value, flag: name, meaning: "whole seconds"))
        case "--drain-strategy":
            switch value {
            case "gradual": drainStrategyImmediate = false
            case "immediate": drainStrategyImmediate = true
            default: throw ConfigError("--drain-strategy: unknown strategy '\(value)'; use gradual or immediate")
            }
        case "--log-level":
            guard let level = LogLevel(envoyName: value) else {
                throw ConfigError("\(name): unknown log level '\(value)'; use one of \(LogLevel.acceptedNames)")
            }
            logLevel = level
        case "--component-log-level":
            componentLogLevels = try Self.componentLevels(value)
        case "--log-format": logFormat = value
        case "--log-path": logPath = value
        case "--local-address-ip-version":
            switch value {
            case "v4": localAddressIPVersion = .ipv4
            case "v6": localAddressIPVersion = .ipv6
            default: throw ConfigError("--local-address-ip-version: unknown IP version '\(value)'; use v4 or v6")
            }
        case "--service-cluster": serviceCluster = value
        case "--service-node": serviceNode = value
        case "--service-zone": serviceZone = value
        case "--admin-address-path": adminAddressPath = value
        case "--base-id", "--file-flush-interval-msec", "--file-flush-min-size-kb":
            _ = try Self.unsigned32(value, flag: name, meaning: "a whole number")
        case "--restart-epoch":
            // Epoch 0 is a cold start, which is all sluice-proxy does; only a later epoch asks for more.
            if try Self.unsigned32(value, flag: name, meaning: "a whole number") > 0, case .warned(let why) = flag.effect {
                warnings.append("\(name) \(value): \(why)")
            }
        case "--socket-mode":
            guard !value.isEmpty, value.allSatisfy({ ("0"..."7").contains($0) }) else {
                throw ConfigError("--socket-mode: '\(value)' is not an octal file mode; give e.g. 600")
            }
        case "--stats-tag":
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ConfigError("--stats-tag: '\(value)' is not name:value")
            }
            warnings.append("--stats-tag \(value): accepted and ignored: \(Self.reason(flag))")
        default:
            if case .warned(let why) = flag.effect {
                warnings.append("\(name): accepted and ignored: \(why)")
            }
        }
    }

    private static func reason(_ flag: EnvoyFlag) -> String {
        switch flag.effect {
        case .honoured(let text), .ignored(let text), .warned(let text), .refused(let text): text
        case .endsFlags: ""
        }
    }

    /// Envoy reads these flags as uint32.
    private static func unsigned32(_ value: String, flag: String, meaning: String) throws(ConfigError) -> Int {
        guard !value.isEmpty, value.allSatisfy(\.isPlainDigit), let number = UInt32(value) else {
            throw ConfigError("\(flag): '\(value)' is not \(meaning); give a whole number from 0 to \(UInt32.max)")
        }
        return Int(number)
    }

    /// `upstream:debug,connection:trace`. Envoy refuses an entry without exactly one `:` and an unknown
    /// level; it also refuses components it has no logger for, which sluice-proxy cannot check against
    /// Envoy's list, so any non-empty name is taken.
    private static func componentLevels(_ value: String) throws(ConfigError) -> [String: LogLevel] {
        var levels: [String: LogLevel] = [:]
        for entry in value.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ConfigError(
                    "--component-log-level: '\(entry)' is not component:level; give e.g. upstream:debug,connection:trace")
            }
            guard let level = LogLevel(envoyName: String(parts[1])) else {
                throw ConfigError(
                    "--component-log-level: unknown log level '\(parts[1])' for \(parts[0]); use one of \(LogLevel.acceptedNames)")
            }
            levels[String(parts[0])] = level
        }
        return levels
    }

    /// The help text: the flags sluice-proxy acts on, then those it accepts for Envoy compatibility.
    public static let usage: String = {
        var text = """
            Usage: sluice-proxy -c <bootstrap.json> [flags]

            sluice-proxy is Sluice's built-in data plane. It takes Envoy's command line and the subset of
            Envoy's v3 bootstrap that pilot-agent writes, and refuses bootstrap fields it cannot honour.

            Flags:

            """
        for flag in EnvoyFlags.all {
            guard case .honoured(let help) = flag.effect else { continue }
            var left = "  " + flag.spelling
            if case .value(let placeholder) = flag.kind { left += " <\(placeholder)>" }
            let padding = max(1, 44 - left.count)
            text += left + String(repeating: " ", count: padding) + help + "\n"
        }
        text += "\nAccepted for Envoy compatibility, with no effect:\n"
        for flag in EnvoyFlags.all {
            switch flag.effect {
            case .ignored(let why), .warned(let why):
                var left = "  " + flag.name
                switch flag.kind {
                case .value(let placeholder), .repeatableValue(let placeholder): left += " <\(placeholder)>"
                case .switchFlag: break
                }
                let padding = max(1, 44 - left.count)
                text += left + String(repeating: " ", count: padding) + why + "\n"
            default:
                continue
            }
        }
        text += """

            Refused: --mode init_only, --hot-restart-version (sluice-proxy has no hot restart).
            Unknown flags are ignored with a warning; `--` ends the flags.

            """
        return text
    }()
}
