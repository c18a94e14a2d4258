import AgentConfig
import Testing

@Suite("Command line")
struct CommandLineTests {
    @Test("the injected sidecar command line")
    func injectedArguments() throws {
        let invocation = try AgentCommandLine.parse([
            "proxy", "sidecar", "--domain", "default.svc.cluster.local", "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info",
        ])
        guard case .proxy(let proxy) = invocation.command else {
            Issue.record("want proxy, got \(invocation.command)")
            return
        }
        #expect(proxy.proxyType == .sidecar)
        #expect(proxy.domain == "default.svc.cluster.local")
        #expect(proxy.proxyLogLevel == "warning")
        #expect(proxy.proxyComponentLogLevel == "misc:error")
        #expect(invocation.common.logLevels == LogLevels())
        #expect(invocation.warnings.isEmpty)
    }

    @Test("proxy defaults match Istio's flag defaults")
    func proxyDefaults() throws {
        let proxy = try proxyArguments(["proxy"])
        #expect(proxy.proxyType == .sidecar)
        #expect(proxy.meshConfigPath == "./etc/istio/config/mesh")
        #expect(proxy.serviceCluster == "istio-proxy")
        #expect(proxy.proxyLogLevel == "warning")
        #expect(proxy.concurrency == 0)
        #expect(proxy.stsPort == 0)
        #expect(proxy.profiling)
    }

    @Test("router type, and every proxy flag in both spellings")
    func proxyFlags() throws {
        let proxy = try proxyArguments([
            "proxy", "router", "--meshConfig=/etc/mesh", "--stsPort", "15463", "--tokenManagerPlugin=x",
            "--serviceCluster", "gw", "--concurrency=4", "--templateFile", "/t.json", "--outlierLogPath=/dev/stdout",
            "--profiling=false",
        ])
        #expect(proxy.proxyType == .router)
        #expect(proxy.meshConfigPath == "/etc/mesh")
        #expect(proxy.stsPort == 15463)
        #expect(proxy.tokenManagerPlugin == "x")
        #expect(proxy.serviceCluster == "gw")
        #expect(proxy.concurrency == 4)
        #expect(proxy.templateFile == "/t.json")
        #expect(proxy.outlierLogPath == "/dev/stdout")
        #expect(!proxy.profiling)
    }

    @Test("an unknown proxy type is an error naming it")
    func badProxyType() {
        #expect(parseError(["proxy", "waypoint"]) == "invalid proxy type \"waypoint\": use sidecar or router")
        #expect(parseError(["proxy", "gateway"])?.contains("use sidecar or router") == true)
    }

    @Test("root flags are accepted before the subcommand, and the subcommand is found past flag values")
    func flagsBeforeSubcommand() throws {
        let invocation = try AgentCommandLine.parse([
            "--log_output_level", "default:debug,dns:warn", "--root", "/tmp/pod", "--allow-root", "proxy", "router",
        ])
        guard case .proxy(let proxy) = invocation.command else {
            Issue.record("want proxy, got \(invocation.command)")
            return
        }
        #expect(proxy.proxyType == .router)
        #expect(invocation.common.root == "/tmp/pod")
        #expect(invocation.common.allowRoot)
        #expect(invocation.common.logLevels.defaultLevel == .debug)
        #expect(invocation.common.logLevels.level(forScope: "dns") == .warn)
        #expect(invocation.common.logLevels.level(forScope: "xdsproxy") == .info)
    }

    @Test("bool flags: bare, =true, =false, Go spellings; a bad value is an error naming the flag")
    func boolFlags() throws {
        #expect(try AgentCommandLine.parse(["proxy", "--restart-proxy"]).common.restartProxy)
        #expect(try AgentCommandLine.parse(["proxy", "--restart-proxy=T"]).common.restartProxy)
        #expect(try !AgentCommandLine.parse(["proxy", "--restart-proxy=0"]).common.restartProxy)
        #expect(try AgentCommandLine.parse(["proxy", "--log_as_json"]).common.logAsJSON)
        #expect(parseError(["proxy", "--log_as_json=yes"]) == "invalid value \"yes\" for --log_as_json: want true or false")
        // A bool flag does not take the next word: "router" stays the proxy type.
        #expect(try proxyArguments(["proxy", "--profiling", "router"]).proxyType == .router)
    }

    @Test("missing values and bad numbers are errors naming the flag")
    func badValues() {
        #expect(parseError(["proxy", "--domain"]) == "flag --domain needs a value; see pilot-agent proxy --help")
        #expect(parseError(["proxy", "--concurrency=two"]) == "invalid value \"two\" for --concurrency: want an integer")
        #expect(parseError(["proxy", "--concurrency=-1"]) == "invalid value -1 for --concurrency: want 0 or more worker threads")
        #expect(parseError(["proxy", "--stsPort=70000"])?.hasPrefix("invalid value 70000 for --stsPort") == true)
        #expect(parseError(["wait", "--periodMillis", "0"])?.contains("--periodMillis") == true)
        #expect(parseError(["proxy", "---domain=x"]) == "bad flag syntax \"---domain=x\"; see pilot-agent proxy --help")
        #expect(parseError(["--log_output_level=default:loud", "proxy"])
            == "invalid value \"default:loud\" for --log_output_level: level \"loud\" in \"default:loud\" is not one of none, fatal, error, warn, info, debug")
    }

    @Test("a flag value may start with a dash, as in pflag")
    func dashValue() throws {
        #expect(try proxyArguments(["proxy", "--domain", "-x"]).domain == "-x")
    }

    @Test("unknown flags are tolerated as Istio does, swallowing a following value, with a warning")
    func unknownFlags() throws {
        let invocation = try AgentCommandLine.parse(["proxy", "--vklog", "9", "--foo=bar", "--bar", "--domain=d", "router"])
        guard case .proxy(let proxy) = invocation.command else {
            Issue.record("want proxy")
            return
        }
        #expect(proxy.domain == "d")
        #expect(proxy.proxyType == .router)
        #expect(invocation.warnings == [
            "ignoring unknown flag --vklog and its value \"9\"",
            "ignoring unknown flag --foo",
            "ignoring unknown flag --bar",
        ])
        // pflag's rule: an unknown flag without "=" takes the next word even if it was meant as the proxy type.
        #expect(try proxyArguments(["proxy", "--unknown", "router"]).proxyType == .sidecar)
    }

    @Test("-- ends the flags")
    func doubleDash() throws {
        let invocation = try AgentCommandLine.parse(["request", "--", "GET", "--help"])
        #expect(invocation.command == .request(RequestArguments(method: "GET", path: "--help")))
    }

    @Test("wait: Istio's defaults and flags")
    func wait() throws {
        #expect(try AgentCommandLine.parse(["wait"]).command == .wait(WaitArguments()))
        let invocation = try AgentCommandLine.parse([
            "wait", "--url=http://127.0.0.1:15021/healthz/ready", "--periodMillis", "100",
            "--requestTimeoutMillis=200", "--timeoutSeconds", "5",
        ])
        var expected = WaitArguments()
        expected.url = "http://127.0.0.1:15021/healthz/ready"
        expected.period = .milliseconds(100)
        expected.requestTimeout = .milliseconds(200)
        expected.timeout = .seconds(5)
        #expect(invocation.command == .wait(expected))
        #expect(WaitArguments().url == "http://localhost:15021/healthz/ready")
        #expect(WaitArguments().period == .milliseconds(500))
        #expect(WaitArguments().timeout == .seconds(60))
    }

    @Test("request: method, path, optional body, allowed debug ports only")
    func request() throws {
        let drain = try AgentCommandLine.parse(["request", "--debug-port=15020", "POST", "drain"])
        #expect(drain.command == .request(RequestArguments(method: "POST", path: "drain", debugPort: 15020)))
        if case .request(let request) = drain.command {
            #expect(request.url == "http://localhost:15020/drain")
        }
        let withBody = try AgentCommandLine.parse(["request", "POST", "/logging?level=debug", "{}"])
        #expect(withBody.command == .request(RequestArguments(method: "POST", path: "/logging?level=debug", body: "{}")))
        if case .request(let request) = withBody.command {
            #expect(request.url == "http://localhost:15000/logging?level=debug")
        }
        for port in ["15000", "15020", "15021", "15004"] {
            #expect(parseError(["request", "--debug-port", port, "GET", "x"]) == nil)
        }
        #expect(parseError(["request", "--debug-port=8080", "GET", "stats"])
            == "invalid value 8080 for --debug-port: use one of 15000, 15020, 15021, 15004")
        #expect(parseError(["request", "GET"])?.hasPrefix("request takes METHOD PATH [BODY], got 1 argument") == true)
        #expect(parseError(["request", "GET", "a", "b", "c"]) != nil)
    }

    @Test("version, and istio-iptables arguments passed through verbatim")
    func versionAndIptables() throws {
        var short = VersionArguments()
        short.short = true
        #expect(try AgentCommandLine.parse(["version", "-s"]).command == .version(short))
        #expect(try AgentCommandLine.parse(["version"]).command == .version(VersionArguments()))
        let iptables = try AgentCommandLine.parse([
            "--log_output_level=default:debug", "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337",
            "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info",
        ])
        #expect(iptables.command == .istioIptables(arguments: [
            "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
            "-d", "15090,15021,15020", "--log_output_level=default:info",
        ]))
        #expect(iptables.common.logLevels.defaultLevel == .debug)
    }

    @Test("help in every spelling, and usage text listing flags and env")
    func help() throws {
        #expect(try AgentCommandLine.parse([]).command == .help(topic: nil))
        #expect(try AgentCommandLine.parse(["--help"]).command == .help(topic: nil))
        #expect(try AgentCommandLine.parse(["-h"]).command == .help(topic: nil))
        #expect(try AgentCommandLine.parse(["help"]).command == .help(topic: nil))
        #expect(try AgentCommandLine.parse(["help", "proxy"]).command == .help(topic: "proxy"))
        #expect(try AgentCommandLine.parse(["proxy", "--help"]).command == .help(topic: "proxy"))
        #expect(try AgentCommandLine.parse(["wait", "-h"]).command == .help(topic: "wait"))
        let proxyUsage = AgentCommandLine.usage(for: "proxy")
        for text in ["--proxyLogLevel", "--concurrency", "--root", "--log_output_level", "PROXY_CONFIG",
                     "ISTIO_META_", "SLUICE_ROOT", "ISTIO_KUBE_APP_PROBERS"] {
            #expect(proxyUsage.contains(text), "proxy usage lacks \(text)")
        }
        #expect(AgentCommandLine.usage().contains("istio-iptables"))
        #expect(AgentCommandLine.usage(for: "request").contains("--debug-port"))
    }

    @Test("an unknown subcommand is an error")
    func unknownCommand() {
        #expect(parseError(["start"])?.hasPrefix("unknown command \"start\" for \"pilot-agent\"") == true)
    }

    @Test("logging flags: targets replace the default then add; rotation is accepted and ignored with a warning")
    func loggingFlags() throws {
        let invocation = try AgentCommandLine.parse([
            "proxy", "--log_target=/dev/stderr", "--log_target", "/tmp/log", "--log_caller=default",
            "--log_stacktrace_level=default:error", "--log_rotate=/tmp/r", "--log_rotate_max_age=3",
        ])
        #expect(invocation.common.logTargets == ["/dev/stderr", "/tmp/log"])
        #expect(invocation.common.logCallerScopes == "default")
        #expect(invocation.common.stacktraceLevels.defaultLevel == .error)
        #expect(invocation.common.stacktraceLevels.level(forScope: "dns") == .none)
        #expect(invocation.warnings.count == 2)
        #expect(invocation.warnings.allSatisfy { $0.contains("ignored") })
        #expect(parseError(["proxy", "--log_rotate_max_size=big"]) == "invalid value \"big\" for --log_rotate_max_size: want an integer")
    }

    @Test("log levels: bare level, scopes, all, order")
    func logLevels() throws {
        let levels = try LogLevels.parse("dns:debug,all:warn,xds:error,info").get()
        #expect(levels.defaultLevel == .info)
        #expect(levels.level(forScope: "dns") == .warn)
        #expect(levels.level(forScope: "xds") == .error)
        #expect(levels.level(forScope: "other") == .warn)
        #expect(throws: LogLevelSyntaxError.self) { try LogLevels.parse("default:info,").get() }
        #expect(throws: LogLevelSyntaxError.self) { try LogLevels.parse("trace").get() }
    }
}
