import Capture
import DataPlaneConfig
import Testing

@Suite struct CommandLineTests {
    /// What `EnvoyArguments` (Sources/Bootstrap) builds for Istio's injected sidecar, copied from
    /// EnvoyArgumentsTests.defaultsMatchIstiosInjectedSidecar.
    static let agentArguments = [
        "-c", "./etc/istio/proxy/envoy-rev.json",
        "--drain-time-s", "45",
        "--drain-strategy", "immediate",
        "--local-address-ip-version", "v4",
        "--file-flush-interval-msec", "1000",
        "--disable-hot-restart",
        "--allow-unknown-static-fields",
        "-l", "warning",
        "--component-log-level", "misc:error",
        "--skip-deprecated-logs",
        "--concurrency", "2",
    ]

    @Test func readsTheAgentsCommandLineWithoutWarnings() throws {
        let commandLine = try ProxyCommandLine.parse(Self.agentArguments)
        #expect(commandLine.mode == .serve)
        #expect(commandLine.configPath == "./etc/istio/proxy/envoy-rev.json")
        #expect(commandLine.drainTime == .seconds(45))
        #expect(commandLine.drainStrategyImmediate)
        #expect(commandLine.localAddressIPVersion == .ipv4)
        #expect(commandLine.logLevel == .warning)
        #expect(commandLine.componentLogLevels == ["misc": .error])
        #expect(commandLine.concurrency == 2)
        #expect(commandLine.configYAML == nil)
        #expect(commandLine.parentShutdownTime == .seconds(900))
        #expect(commandLine.warnings == [])
    }

    /// EnvoyArgumentsTests.everyOptionalFlagInItsPlace: every flag the agent may add.
    @Test func readsEveryFlagTheAgentMayAdd() throws {
        let commandLine = try ProxyCommandLine.parse([
            "-c", "/tmp/envoy.json",
            "--drain-time-s", "30",
            "--drain-strategy", "immediate",
            "--local-address-ip-version", "v6",
            "--file-flush-interval-msec", "250",
            "--disable-hot-restart",
            "--allow-unknown-static-fields",
            "--file-flush-min-size-kb", "64",
            "-l", "debug",
            "--component-log-level", "upstream:trace",
            "--enable-core-dump",
            "--config-yaml", #"{"tracing":{"http":{"name":"envoy.tracers.zipkin"}}}"#,
        ])
        #expect(commandLine.configPath == "/tmp/envoy.json")
        #expect(commandLine.drainTime == .seconds(30))
        #expect(commandLine.localAddressIPVersion == .ipv6)
        #expect(commandLine.logLevel == .debug)
        #expect(commandLine.componentLogLevels == ["upstream": .trace])
        #expect(commandLine.configYAML == #"{"tracing":{"http":{"name":"envoy.tracers.zipkin"}}}"#)
        #expect(commandLine.concurrency == nil)
        // Core dumps are the one thing asked for here that sluice-proxy does not do.
        #expect(commandLine.warnings.count == 1)
        #expect(commandLine.warnings.first?.hasPrefix("--enable-core-dump: accepted and ignored") == true)
    }

    @Test func defaultsAreEnvoys() throws {
        let commandLine = try ProxyCommandLine.parse([])
        #expect(commandLine == ProxyCommandLine())
        #expect(commandLine.mode == .serve)
        #expect(commandLine.drainTime == .seconds(600))
        #expect(commandLine.parentShutdownTime == .seconds(900))
        #expect(!commandLine.drainStrategyImmediate)
        #expect(commandLine.logLevel == .info)
        #expect(commandLine.localAddressIPVersion == .ipv4)
        #expect(commandLine.concurrency == nil)
    }

    @Test func readsEveryHonouredFlag() throws {
        let commandLine = try ProxyCommandLine.parse([
            "--config-path", "b.json", "--mode", "validate", "--parent-shutdown-time-s", "90",
            "--drain-strategy", "gradual", "--log-level", "critical", "--log-format", "[%l] %v",
            "--log-path", "/tmp/proxy.log", "--service-cluster", "c", "--service-node", "n", "--service-zone", "z",
            "--admin-address-path", "/tmp/admin",
        ])
        #expect(commandLine.configPath == "b.json")
        #expect(commandLine.mode == .validate)
        #expect(commandLine.parentShutdownTime == .seconds(90))
        #expect(!commandLine.drainStrategyImmediate)
        #expect(commandLine.logLevel == .critical)
        #expect(commandLine.logFormat == "[%l] %v")
        #expect(commandLine.logPath == "/tmp/proxy.log")
        #expect(commandLine.serviceCluster == "c")
        #expect(commandLine.serviceNode == "n")
        #expect(commandLine.serviceZone == "z")
        #expect(commandLine.adminAddressPath == "/tmp/admin")
        #expect(commandLine.warnings == [])
    }

    @Test func takesValuesAfterAnEqualsSign() throws {
        let commandLine = try ProxyCommandLine.parse([
            "--concurrency=4", "-l=trace", "--config-path=x.json", "--config-yaml={\"a\":\"b=c\"}",
        ])
        #expect(commandLine.concurrency == 4)
        #expect(commandLine.logLevel == .trace)
        #expect(commandLine.configPath == "x.json")
        #expect(commandLine.configYAML == #"{"a":"b=c"}"#)
        #expect(try ProxyCommandLine.parse(["-c=y.json"]).configPath == "y.json")
    }

    /// As in Envoy (TCLAP), the argument after a value flag is its value even when it starts with a dash.
    @Test func aValueMayStartWithADash() throws {
        let commandLine = try ProxyCommandLine.parse(["--log-format", "-%v-", "-l", "warn"])
        #expect(commandLine.logFormat == "-%v-")
        #expect(commandLine.logLevel == .warning)
    }

    @Test func helpAndVersionWinOverEverythingElse() throws {
        #expect(try ProxyCommandLine.parse(["-h"]).mode == .help)
        #expect(try ProxyCommandLine.parse(["--concurrency", "x", "--help"]).mode == .help)
        #expect(try ProxyCommandLine.parse(["--version"]).mode == .version)
        #expect(try ProxyCommandLine.parse(["--mode", "serve"]).mode == .serve)
    }

    @Test func concurrencyZeroRunsOneWorkerAsInEnvoy() throws {
        let commandLine = try ProxyCommandLine.parse(["--concurrency", "0"])
        #expect(commandLine.concurrency == 1)
        #expect(commandLine.warnings == ["--concurrency 0: runs one worker, as Envoy does; omit the flag for one per CPU"])
    }

    // MARK: - Unknown and no-effect flags

    @Test func unknownFlagsAreIgnoredWithAWarning() throws {
        // --x=v is one word; --x word drops both; --x before a flag is a switch.
        let commandLine = try ProxyCommandLine.parse([
            "--max-stats=100", "--v2-config-only", "--bootstrap-version", "3", "--mystery", "--concurrency", "3",
            "--trailing",
        ])
        #expect(commandLine.concurrency == 3)
        #expect(commandLine.warnings == [
            "--max-stats: unknown flag, ignored with its value",
            "--v2-config-only: unknown flag, ignored",
            "--bootstrap-version: unknown flag, ignored with the value after it ('3')",
            "--mystery: unknown flag, ignored",
            "--trailing: unknown flag, ignored",
        ])
    }

    @Test func flagsWithoutEffectAreQuietUnlessTheUserExpectsOne() throws {
        let quiet = try ProxyCommandLine.parse([
            "--base-id", "3", "--use-dynamic-base-id", "--base-id-path", "/tmp/b", "--socket-path", "/tmp/s",
            "--socket-mode", "644", "--skip-hot-restart-on-no-parent", "--skip-hot-restart-parent-stats",
            "--reject-unknown-dynamic-fields", "--ignore-unknown-dynamic-fields", "--allow-unknown-fields",
            "--cpuset-threads", "--enable-mutex-tracing", "--log-stacktrace-single-entry", "--restart-epoch", "0",
        ])
        #expect(quiet.warnings == [])

        let loud = try ProxyCommandLine.parse([
            "--restart-epoch", "2", "--log-format-escaped", "--enable-fine-grain-logging",
            "--disable-extensions", "envoy.filters.http/envoy.filters.http.cors", "--stats-tag", "a:b", "--stats-tag", "c:d",
        ])
        #expect(loud.warnings.count == 6)
        #expect(loud.warnings[0].hasPrefix("--restart-epoch 2: sluice-proxy has no hot restart"))
        #expect(loud.warnings[4].hasPrefix("--stats-tag a:b: accepted and ignored"))
    }

    @Test func doubleDashEndsTheFlags() throws {
        let commandLine = try ProxyCommandLine.parse(["-c", "a.json", "--", "--concurrency", "x"])
        #expect(commandLine.configPath == "a.json")
        #expect(commandLine.concurrency == nil)
        #expect(commandLine.warnings == ["--: the arguments after it are ignored, as in Envoy: --concurrency x"])
    }

    // MARK: - Refusals

    @Test(arguments: [
        (["--concurrency", "many"], "--concurrency: 'many' is not a number of worker threads; give a whole number from 0 to 4294967295"),
        (["--concurrency", "-2"], "--concurrency: '-2' is not a number of worker threads; give a whole number from 0 to 4294967295"),
        (["--drain-time-s", "4.5"], "--drain-time-s: '4.5' is not whole seconds; give a whole number from 0 to 4294967295"),
        (["--parent-shutdown-time-s", "4294967296"],
         "--parent-shutdown-time-s: '4294967296' is not whole seconds; give a whole number from 0 to 4294967295"),
        (["-l", "verbose"], "-l: unknown log level 'verbose'; use one of trace, debug, info, warning (or warn), error, critical, off"),
        (["--log-level=loud"],
         "--log-level: unknown log level 'loud'; use one of trace, debug, info, warning (or warn), error, critical, off"),
        (["--component-log-level", "upstream"],
         "--component-log-level: 'upstream' is not component:level; give e.g. upstream:debug,connection:trace"),
        (["--component-log-level", "upstream:debug,a:b:c"],
         "--component-log-level: 'a:b:c' is not component:level; give e.g. upstream:debug,connection:trace"),
        (["--component-log-level", "upstream:loud"],
         "--component-log-level: unknown log level 'loud' for upstream; use one of trace, debug, info, warning (or warn), error, critical, off"),
        (["--local-address-ip-version", "v5"], "--local-address-ip-version: unknown IP version 'v5'; use v4 or v6"),
        (["--drain-strategy", "x"], "--drain-strategy: unknown strategy 'x'; use gradual or immediate"),
        (["--mode", "init_only"],
         "--mode: 'init_only' is not supported by sluice-proxy; use serve, or validate to check the configuration"),
        (["--mode", "fast"], "--mode: unknown mode 'fast'; use serve or validate"),
        (["-c"], "-c: missing its value; give -c <path>"),
        (["--config-path", "--concurrency", "2"], "--config-path: missing its value; give --config-path <path>"),
        (["--drain-time-s"], "--drain-time-s: missing its value; give --drain-time-s <seconds>"),
        (["--disable-hot-restart=true"], "--disable-hot-restart: takes no value (got 'true'); give it as --disable-hot-restart alone"),
        (["-c", "a.json", "-c", "b.json"], "-c, --config-path: given more than once; Envoy accepts it once"),
        (["-c", "a.json", "b.json"], "unexpected argument 'b.json': sluice-proxy takes only flags (the bootstrap is -c <path>)"),
        (["--hot-restart-version"],
         "--hot-restart-version: sluice-proxy has no hot restart, so there is no compatibility version to print"),
        (["--socket-mode", "rw"], "--socket-mode: 'rw' is not an octal file mode; give e.g. 600"),
        (["--stats-tag", "novalue"], "--stats-tag: 'novalue' is not name:value"),
        (["--file-flush-interval-msec", "1s"],
         "--file-flush-interval-msec: '1s' is not a whole number; give a whole number from 0 to 4294967295"),
    ])
    func badFlagsAreRefusedNamingFlagAndValue(arguments: [String], message: String) {
        let error = configError { () throws(ConfigError) in _ = try ProxyCommandLine.parse(arguments) }
        #expect(error?.message == message)
    }

    // MARK: - Log levels and usage

    @Test func logLevelsAreOrderedAndTakeEnvoysSpellings() {
        #expect(LogLevel.trace < .debug && LogLevel.debug < .info && LogLevel.info < LogLevel.warning && LogLevel.warning < .error)
        #expect(LogLevel.error < .critical && .critical < .off)
        #expect(LogLevel(envoyName: "warn") == .warning)
        #expect(LogLevel(envoyName: "warning") == .warning)
        #expect(LogLevel(envoyName: "WARNING") == nil)
        #expect(LogLevel(envoyName: "fatal") == nil)
    }

    @Test func usageListsTheSupportedFlags() {
        for flag in ["-c, --config-path <path>", "--config-yaml", "--concurrency", "--drain-time-s", "--drain-strategy",
                     "--parent-shutdown-time-s", "-l, --log-level", "--component-log-level", "--log-format",
                     "--log-path", "--local-address-ip-version", "--service-cluster", "--service-node",
                     "--service-zone", "--mode", "-h, --help", "--version"] {
            #expect(ProxyCommandLine.usage.contains(flag), "usage lacks \(flag)")
        }
        #expect(ProxyCommandLine.usage.contains("--disable-hot-restart"))
        #expect(ProxyCommandLine.usage.contains("Refused: --mode init_only"))
    }
}
