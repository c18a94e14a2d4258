import AgentConfig
import Testing

@Suite("Agent options and environment")
struct OptionsTests {
    @Test("Istio's defaults")
    func defaults() throws {
        let options = try resolve().options
        #expect(options == expectedDefaults())
    }

    private func expectedDefaults() -> AgentOptions {
        var options = AgentOptions()
        options.proxyLogLevel = "warning"
        return options
    }

    @Test("typed environment values")
    func environment() throws {
        var environment = podEnvironment
        environment["ISTIO_META_DNS_CAPTURE"] = "true"
        environment["DNS_PROXY_ADDR"] = "127.0.0.1:53"
        environment["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "TRUE"
        environment["MINIMUM_DRAIN_DURATION"] = "1m30s"
        environment["ENVOY_STATUS_PORT"] = "16021"
        environment["ENVOY_PROMETHEUS_PORT"] = "16090"
        environment["ISTIO_BOOTSTRAP_OVERRIDE"] = "/etc/istio/custom-bootstrap/custom.json"
        environment["ISTIO_DUAL_STACK"] = "t"
        environment["METRICS_LOCALHOST_ACCESS_ONLY"] = "1"
        environment["PILOT_AGENT_MERGE_ENVOY_STATS"] = "false"
        environment["REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"] = "true"
        environment["ENVOY_SKIP_DEPRECATED_LOGS"] = "false"
        environment["ISTIO_ENVOY_ENABLE_CORE_DUMP"] = "true"
        environment["WORKLOAD_IDENTITY_SOCKET_FILE"] = "spire.sock"
        environment["XDS_HEADER_X-Team"] = "a"
        environment["HOST_IP"] = "192.168.1.5"
        let options = try resolve(environment: environment).options
        #expect(options.dnsCapture)
        #expect(options.dnsServerEnabled)
        #expect(options.dnsProxyAddress == "127.0.0.1:53")
        #expect(options.exitOnZeroActiveConnections)
        #expect(options.minimumDrainDuration == .seconds(90))
        #expect(options.envoyStatusPort == 16021)
        #expect(options.envoyPrometheusPort == 16090)
        #expect(options.bootstrapOverridePath == "/etc/istio/custom-bootstrap/custom.json")
        #expect(options.dualStack)
        #expect(options.metricsLocalhostAccessOnly)
        #expect(!options.mergeEnvoyStats)
        #expect(options.rewriteProbeLegacyLocalhostDestination)
        #expect(!options.skipDeprecatedLogs)
        #expect(options.enableCoreDump)
        #expect(options.workloadIdentitySocketFile == "spire.sock")
        #expect(options.xdsHeaders == ["X-Team": "a"])
        #expect(options.hostIP == "192.168.1.5")
    }

    @Test("DNS capture runs the DNS server only for sidecars; ENABLE_DNS_SERVER for any type")
    func dnsServer() throws {
        var environment = podEnvironment
        environment["ISTIO_META_DNS_CAPTURE"] = "true"
        #expect(try !resolve(["proxy", "router"], environment: environment).options.dnsServerEnabled)
        environment["ISTIO_META_ENABLE_DNS_SERVER"] = "true"
        #expect(try resolve(["proxy", "router"], environment: environment).options.dnsServerEnabled)
    }

    @Test("a bad value is an error naming the variable", arguments: [
        ("ISTIO_META_DNS_CAPTURE", "yes", "ISTIO_META_DNS_CAPTURE=\"yes\" is not a boolean"),
        ("EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "on", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS=\"on\" is not a boolean"),
        ("MINIMUM_DRAIN_DURATION", "5", "MINIMUM_DRAIN_DURATION=\"5\" is not a duration"),
        ("ENVOY_STATUS_PORT", "0", "ENVOY_STATUS_PORT=\"0\" is not valid: want a port number 1-65535"),
        ("WORKLOAD_IDENTITY_SOCKET_FILE", "a/b", "WORKLOAD_IDENTITY_SOCKET_FILE=\"a/b\" must be a file name"),
    ])
    func badValue(name: String, value: String, prefix: String) {
        var environment = podEnvironment
        environment[name] = value
        let message = resolutionError(environment: environment)
        #expect(message?.hasPrefix(prefix) == true, "\(message ?? "no error")")
    }

    @Test("an empty variable counts as unset")
    func emptyIsUnset() throws {
        var environment = podEnvironment
        environment["ISTIO_META_DNS_CAPTURE"] = ""
        environment["ENVOY_STATUS_PORT"] = ""
        let options = try resolve(environment: environment).options
        #expect(!options.dnsCapture)
        #expect(options.envoyStatusPort == 15021)
        #expect(try resolve(environment: environment).metadata["DNS_CAPTURE"] == nil)
    }

    @Test("proxyMetadata acts as environment, and the real environment wins")
    func proxyMetadataAsEnvironment() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true","EXIT_ON_ZERO_ACTIVE_CONNECTIONS":"true"}}"#
        environment["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "false"
        let configuration = try resolve(environment: environment, files: [
            "/etc/istio/config/mesh": "defaultConfig:\n  proxyMetadata:\n    DNS_PROXY_ADDR: \"127.0.0.1:15054\"\n",
        ])
        #expect(configuration.options.dnsCapture)
        #expect(!configuration.options.exitOnZeroActiveConnections)
        #expect(configuration.options.dnsProxyAddress == "127.0.0.1:15054")
        #expect(configuration.metadata["DNS_CAPTURE"] == "true")
    }

    @Test("data plane log level: level and components split from --proxyLogLevel")
    func proxyLogLevel() throws {
        #expect(try resolve().options.dataPlaneLogArguments == ["-l", "warning"])
        let injected = try resolve(["proxy", "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error"]).options
        #expect(injected.dataPlaneLogArguments == ["-l", "warning", "--component-log-level", "misc:error"])
        let combined = try resolve(["proxy", "--proxyLogLevel=info,misc:error,upstream:debug",
                                    "--proxyComponentLogLevel=misc:info"]).options
        #expect(combined.proxyLogLevel == "info")
        #expect(combined.proxyComponentLogLevel == "misc:error,upstream:debug")
        let onlyComponents = try resolve(["proxy", "--proxyLogLevel=misc:error"]).options
        #expect(onlyComponents.dataPlaneLogArguments == ["--component-log-level", "misc:error"])
        #expect(resolutionError(["proxy", "--proxyLogLevel=loud"])?.hasPrefix("--proxyLogLevel: \"loud\" is not a log level") == true)
        let dropped = try resolve(["proxy", "--proxyLogLevel=info,a:b:c"])
        #expect(dropped.warnings.contains("--proxyLogLevel: dropping invalid log level \"a:b:c\""))
    }

    @Test("flags carried into options")
    func flags() throws {
        let options = try resolve([
            "--restart-proxy", "--allow-root", "--log_as_json", "proxy", "--profiling=false", "--templateFile=/t",
        ]).options
        #expect(options.restartProxy)
        #expect(options.allowRoot)
        #expect(options.logAsJSON)
        #expect(!options.profiling)
        #expect(options.templateFile == "/t")
        #expect(options.outlierLogPath == nil)
    }

    @Test("resolution is only for proxy")
    func onlyProxy() throws {
        let invocation = try AgentCommandLine.parse(["wait"])
        #expect(throws: AgentConfigError.self) {
            try AgentConfiguration.resolve(invocation: invocation, environment: [:], files: InMemoryFiles(), hostAddresses: [])
        }
    }
}
