/// Envoy's command-line flags (`source/server/options_impl.cc`, plus the three TCLAP adds itself),
/// and what sluice-proxy does with each. Knowing every flag, and whether it takes a value, is what
/// lets the parser read the agent's command line the way Envoy does: `--disable-hot-restart -l info`
/// must not take `-l` as the switch's value.
struct EnvoyFlag: Sendable {
    enum Kind: Sendable, Equatable {
        /// A TCLAP `SwitchArg`: no value.
        case switchFlag
        /// A TCLAP `ValueArg`, given at most once; the placeholder names the value in messages and usage.
        case value(String)
        /// A TCLAP `MultiArg`: one value per occurrence, repeatable (`--stats-tag` only).
        case repeatableValue(String)
    }

    /// What sluice-proxy does with the flag.
    enum Effect: Sendable, Equatable {
        /// Read into `ProxyCommandLine`; the text is the usage line.
        case honoured(String)
        /// Accepted and ignored without a word: sluice-proxy already behaves as the flag asks, or the
        /// flag concerns machinery sluice-proxy does not have and changes nothing visible.
        case ignored(String)
        /// Accepted and ignored with a warning, because the user would expect it to change something.
        case warned(String)
        /// Refused with this reason: doing nothing would mislead.
        case refused(String)
        /// TCLAP's `--`/`--ignore_rest`: the arguments after it are not read.
        case endsFlags
    }

    let name: String
    let shortName: String?
    let kind: Kind
    let effect: Effect

    var takesValue: Bool { kind != .switchFlag }

    var spelling: String { shortName.map { "\($0), \(name)" } ?? name }
}

enum EnvoyFlags {
    static let all: [EnvoyFlag] = [
        // --- Honoured ---
        flag("--config-path", short: "-c", .value("path"),
             .honoured("The bootstrap: JSON, or YAML when the name ends in .yaml or .yml.")),
        flag("--config-yaml", .value("yaml"),
             .honoured("JSON or YAML merged over the bootstrap with protobuf merge rules.")),
        flag("--mode", .value("serve|validate"),
             .honoured("serve (default), or validate: check the configuration and exit.")),
        flag("--concurrency", .value("workers"),
             .honoured("Worker threads (default: one per CPU); 0 means 1, as in Envoy.")),
        flag("--drain-time-s", .value("seconds"),
             .honoured("How long draining listeners keep open connections (default 600).")),
        flag("--drain-strategy", .value("gradual|immediate"),
             .honoured("gradual (default) or immediate: how draining connections are told to close.")),
        flag("--parent-shutdown-time-s", .value("seconds"),
             .honoured("Hard stop after a drain starts (default 900).")),
        flag("--log-level", short: "-l", .value("level"),
             .honoured("trace, debug, info (default), warning, error, critical or off.")),
        flag("--component-log-level", .value("component:level,..."),
             .honoured("Per-component levels, e.g. upstream:debug,connection:trace.")),
        flag("--log-format", .value("format"), .honoured("Log line format, in spdlog's pattern syntax.")),
        flag("--log-path", .value("path"), .honoured("Write the log to this file instead of stderr.")),
        flag("--local-address-ip-version", .value("v4|v6"),
             .honoured("The family of the server's local address (default v4).")),
        flag("--service-cluster", .value("name"), .honoured("node.cluster when the bootstrap leaves it empty.")),
        flag("--service-node", .value("name"), .honoured("node.id when the bootstrap leaves it empty.")),
        flag("--service-zone", .value("name"), .honoured("The node's zone (reported by /server_info).")),
        flag("--admin-address-path", .value("path"),
             .honoured("Write the admin listener's bound address to this file.")),
        flag("--help", short: "-h", .switchFlag, .honoured("Print this text and exit.")),
        flag("--version", .switchFlag, .honoured("Print the version and exit.")),

        // --- Accepted, no effect, nothing to say: sluice-proxy already behaves this way ---
        // Istio never hot-restarts Envoy; sluice-proxy has no hot restart at all.
        flag("--disable-hot-restart", .switchFlag, .ignored("sluice-proxy never hot-restarts")),
        flag("--base-id", .value("id"), .ignored("hot restart shared memory")),
        flag("--use-dynamic-base-id", .switchFlag, .ignored("hot restart shared memory")),
        flag("--base-id-path", .value("path"), .ignored("hot restart shared memory")),
        flag("--socket-path", .value("path"), .ignored("hot restart socket")),
        flag("--socket-mode", .value("mode"), .ignored("hot restart socket")),
        flag("--skip-hot-restart-on-no-parent", .switchFlag, .ignored("sluice-proxy always starts without a parent")),
        flag("--skip-hot-restart-parent-stats", .switchFlag, .ignored("there is never a parent to take stats from")),
        // The bootstrap parser refuses every field it cannot honour, whether Envoy knows the field or
        // not: it cannot tell an Envoy field it lacks from a typo, and ignoring either could change
        // what the proxy does. So these flags change nothing.
        flag("--allow-unknown-static-fields", .switchFlag, .ignored("unsupported fields are refused either way")),
        flag("--allow-unknown-fields", .switchFlag, .ignored("unsupported fields are refused either way")),
        flag("--reject-unknown-dynamic-fields", .switchFlag, .ignored("sluice-proxy has no xDS client")),
        flag("--ignore-unknown-dynamic-fields", .switchFlag, .ignored("sluice-proxy has no xDS client")),
        flag("--skip-deprecated-logs", .switchFlag, .ignored("sluice-proxy logs no deprecation warnings")),
        flag("--log-stacktrace-single-entry", .switchFlag, .ignored("sluice-proxy logs no stack traces")),
        flag("--enable-mutex-tracing", .switchFlag, .ignored("no /contention endpoint")),
        // Recent Envoys already size the worker pool from the CPUs the process may use.
        flag("--cpuset-threads", .switchFlag, .ignored("the default worker count already follows the cpuset")),
        // Istio passes these to make access logs appear sooner; sluice-proxy writes no access logs of
        // its own to delay.
        flag("--file-flush-interval-msec", .value("milliseconds"), .ignored("sluice-proxy flushes its files itself")),
        flag("--file-flush-min-size-kb", .value("kilobytes"), .ignored("sluice-proxy flushes its files itself")),

        // --- Accepted, no effect, with a warning: the user asked for something sluice-proxy does not do ---
        flag("--restart-epoch", .value("epoch"),
             .warned("sluice-proxy has no hot restart: it starts fresh and takes over nothing from a parent")),
        flag("--enable-core-dump", .switchFlag,
             .warned("sluice-proxy does not change its core dump settings; set the container's core limit instead")),
        flag("--log-format-escaped", .switchFlag, .warned("log messages are written without escaping")),
        flag("--enable-fine-grain-logging", .switchFlag,
             .warned("there is no per-file log control; use --component-log-level")),
        flag("--disable-extensions", .value("extensions"),
             .warned("sluice-proxy has no extension registry to disable entries in")),
        flag("--stats-tag", .repeatableValue("name:value"),
             .warned("universal stats tags are not added; set stats_config.stats_tags in the bootstrap")),

        // --- Refused: Envoy prints a version for hot restart compatibility checks and exits ---
        flag("--hot-restart-version", .switchFlag,
             .refused("sluice-proxy has no hot restart, so there is no compatibility version to print")),
        flag("--ignore_rest", short: "--", .switchFlag, .endsFlags),
    ]

    private static func flag(
        _ name: String, short: String? = nil, _ kind: EnvoyFlag.Kind, _ effect: EnvoyFlag.Effect
    ) -> EnvoyFlag {
        EnvoyFlag(name: name, shortName: short, kind: kind, effect: effect)
    }

    static func named(_ spelling: String) -> EnvoyFlag? {
        all.first { $0.name == spelling || $0.shortName == spelling }
    }

    /// `--flag` or `--flag=value` naming a known flag: used to notice a value flag whose value is missing.
    static func isKnownFlagArgument(_ argument: String) -> Bool {
        let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
        return named(name) != nil
    }
}
