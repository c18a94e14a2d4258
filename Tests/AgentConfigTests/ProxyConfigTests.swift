import AgentConfig
import ConfigFormats
import Testing

@Suite("ProxyConfig merge")
struct ProxyConfigTests {
    let meshPath = "/etc/istio/config/mesh"
    let annotationsPath = "/etc/istio/pod/annotations"

    @Test("Istio's DefaultProxyConfig when nothing overrides it")
    func defaults() throws {
        let config = try resolve().proxyConfig
        #expect(config.configPath == "./etc/istio/proxy")
        #expect(config.binaryPath == "/usr/local/bin/envoy")
        #expect(config.serviceCluster == "istio-proxy")
        #expect(config.drainDuration == .seconds(45))
        #expect(config.terminationDrainDuration == .seconds(5))
        #expect(config.proxyAdminPort == 15000)
        #expect(config.statusPort == 15020)
        #expect(config.controlPlaneAuthPolicy == .mutualTLS)
        #expect(config.discoveryAddress == "istiod.istio-system.svc:15012")
        #expect(config.statNameLength == 189)
        #expect(config.concurrency == nil)
        #expect(config.interceptionMode == .redirect)
        #expect(config.holdApplicationUntilProxyStarts == false)
        #expect(config.fileFlushInterval == nil)
        #expect(config.json == ProxyConfig.defaultJSON)
        #expect(config.pilotSubjectAltName == "istiod.istio-system.svc")
    }

    @Test("merge order: defaults ← mesh defaultConfig ← PROXY_CONFIG (JSON) ← annotation (YAML) ← status port annotation")
    func mergeOrder() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"drainDuration":"20s","statNameLength":100,"meshId":"env-mesh"}"#
        let config = try resolve(environment: environment, files: [
            meshPath: """
                defaultConfig:
                  drainDuration: 30s
                  terminationDrainDuration: 10s
                  meshId: file-mesh
                  discoveryAddress: istiod-canary.istio-system.svc:15012
                """,
            annotationsPath: #"""
                proxy.istio.io/config="statNameLength: 50\nholdApplicationUntilProxyStarts: true\n"
                status.sidecar.istio.io/port="15999"
                """#,
        ]).proxyConfig
        #expect(config.terminationDrainDuration == .seconds(10))                 // mesh
        #expect(config.discoveryAddress == "istiod-canary.istio-system.svc:15012") // mesh
        #expect(config.drainDuration == .seconds(20))                           // env over mesh
        #expect(config.meshId == "env-mesh")                                    // env over mesh
        #expect(config.statNameLength == 50)                                    // annotation over env
        #expect(config.holdApplicationUntilProxyStarts)                         // annotation
        #expect(config.statusPort == 15999)                                     // status port annotation
        #expect(config.json["statusPort"] == 15999)
        #expect(config.pilotSubjectAltName == "istiod-canary.istio-system.svc")
    }

    @Test("PROXY_CONFIG in YAML, with snake_case names and a Go-form duration, comes out canonical")
    func yamlAndCanonicalForm() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = """
            drain_duration: 1m30s
            proxyAdminPort: "15001"
            controlPlaneAuthPolicy: 0
            fileFlushInterval: 0.5s
            """
        let config = try resolve(environment: environment).proxyConfig
        #expect(config.drainDuration == .seconds(90))
        #expect(config.proxyAdminPort == 15001)
        #expect(config.controlPlaneAuthPolicy == ProxyConfigPolicyNone.value)
        #expect(config.fileFlushInterval == .milliseconds(500))
        #expect(config.json["drainDuration"] == "90s")
        #expect(config.json["drain_duration"] == nil)
        #expect(config.json["proxyAdminPort"] == 15001)
        #expect(config.json["controlPlaneAuthPolicy"] == "NONE")
        #expect(config.json["fileFlushInterval"] == "0.500s")
    }

    @Test("field-level replace: lists replaced whole, proxyMetadata merged key by key")
    func fieldLevelReplace() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"extraStatTags":["b"],"proxyMetadata":{"B":"env","C":"env"}}"#
        let config = try resolve(environment: environment, files: [
            meshPath: """
                defaultConfig:
                  extraStatTags: [a1, a2]
                  proxyMetadata: {A: mesh, B: mesh}
                """,
        ]).proxyConfig
        #expect(config.extraStatTags == ["b"])
        #expect(config.proxyMetadata == ["A": "mesh", "B": "env", "C": "env"])
    }

    @Test("serviceCluster and tracingServiceName are a oneof: setting one clears the other")
    func oneof() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"tracingServiceName":"CANONICAL_NAME_ONLY"}"#
        let config = try resolve(environment: environment).proxyConfig
        #expect(config.serviceCluster == nil)
        #expect(config.tracingServiceName == .canonicalNameOnly)
        #expect(config.json["serviceCluster"] == nil)
    }

    @Test("an empty serviceCluster takes --serviceCluster")
    func serviceClusterFlag() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"serviceCluster":""}"#
        let config = try resolve(["proxy", "--serviceCluster=legacy"], environment: environment).proxyConfig
        #expect(config.serviceCluster == "legacy")
        #expect(resolutionError(["proxy", "--serviceCluster="], environment: environment)?.contains("serviceCluster is empty") == true)
    }

    @Test("--templateFile becomes proxyBootstrapTemplatePath unless customConfigFile is set")
    func templateFile() throws {
        let templated = try resolve(["proxy", "--templateFile=/custom/tmpl.json"])
        #expect(templated.proxyConfig.proxyBootstrapTemplatePath == "/custom/tmpl.json")
        #expect(templated.bootstrapSource == .template("/custom/tmpl.json"))
        #expect(try resolve().bootstrapSource == .template("./var/lib/istio/envoy/envoy_bootstrap_tmpl.json"))

        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"customConfigFile":"/custom/envoy.json"}"#
        let custom = try resolve(["proxy", "--templateFile=/custom/tmpl.json"], environment: environment)
        #expect(custom.proxyConfig.proxyBootstrapTemplatePath == "")
        #expect(custom.bootstrapSource == .customConfigFile("/custom/envoy.json"))

        environment = podEnvironment
        environment["ISTIO_BOOTSTRAP"] = "/override.json"
        #expect(try resolve(["proxy", "--templateFile=/t.json"], environment: environment).bootstrapSource == .template("/override.json"))
    }

    @Test("unknown fields warn but are kept for node metadata")
    func unknownFields() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"futureKnob":{"x":1},"drainDuration":"10s"}"#
        let configuration = try resolve(environment: environment)
        #expect(configuration.proxyConfig.json["futureKnob"] == ["x": 1])
        #expect(configuration.warnings.contains { $0.hasPrefix("PROXY_CONFIG: unknown ProxyConfig field \"futureKnob\"") })
        #expect(configuration.metadata["PROXY_CONFIG"]?["futureKnob"] == ["x": 1])
    }

    @Test("known fields that Sluice does not type are kept without a warning")
    func opaqueFields() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"tracing":{"zipkin":{"address":"zipkin:9411"}}}"#
        let configuration = try resolve(environment: environment)
        #expect(configuration.proxyConfig.json["tracing"]?["zipkin"]?["address"] == "zipkin:9411")
        #expect(!configuration.warnings.contains { $0.contains("tracing") })
    }

    @Test("wrong types and bad values are errors naming the source and the field", arguments: [
        (#"{"drainDuration":"abc"}"#, #"PROXY_CONFIG: drainDuration: "abc" is not a duration (use e.g. "45s")"#),
        (#"{"drainDuration":45}"#, #"PROXY_CONFIG: drainDuration: 45 is not a duration (use e.g. "45s")"#),
        (#"{"drainDuration":"0s"}"#, #"PROXY_CONFIG: drainDuration: "0s" must be at least 0.001s"#),
        (#"{"terminationDrainDuration":"-1s"}"#, #"PROXY_CONFIG: terminationDrainDuration: "-1s" must not be negative"#),
        (#"{"statusPort":"x"}"#, #"PROXY_CONFIG: statusPort: "x" is not an integer"#),
        (#"{"statusPort":0}"#, "PROXY_CONFIG: statusPort: 0 is out of range: want a port number 1-65535"),
        (#"{"proxyAdminPort":70000}"#, "PROXY_CONFIG: proxyAdminPort: 70000 is out of range: want a port number 1-65535"),
        (#"{"concurrency":-2}"#, "PROXY_CONFIG: concurrency: -2 is out of range: want 0 or more worker threads (0 = all cores)"),
        (#"{"binaryPath":7}"#, "PROXY_CONFIG: binaryPath: 7 is not a string"),
        (#"{"configPath":""}"#, #"PROXY_CONFIG: configPath: "" must not be empty"#),
        (#"{"discoveryAddress":"istiod"}"#, #"PROXY_CONFIG: discoveryAddress: "istiod" is not a host:port address (use e.g. "istiod.istio-system.svc:15012")"#),
        (#"{"interceptionMode":"MAGIC"}"#, #"PROXY_CONFIG: interceptionMode: "MAGIC" is not one of REDIRECT, TPROXY, NONE"#),
        (#"{"holdApplicationUntilProxyStarts":"true"}"#, #"PROXY_CONFIG: holdApplicationUntilProxyStarts: "true" is not a boolean (use true or false, unquoted)"#),
        (#"{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":true}}"#, #"PROXY_CONFIG: proxyMetadata: true is not a string (quote the value of "ISTIO_META_DNS_CAPTURE")"#),
        (#"{"extraStatTags":"a"}"#, #"PROXY_CONFIG: extraStatTags: "a" is not a list of strings"#),
        ("[1, 2]", "PROXY_CONFIG: want a ProxyConfig object, got a list"),
    ])
    func badValues(proxyConfig: String, message: String) {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = proxyConfig
        #expect(resolutionError(environment: environment) == message)
    }

    @Test("unparsable layers are errors naming the layer")
    func unparsable() {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = "{drainDuration: [}"
        #expect(resolutionError(environment: environment)?.hasPrefix("PROXY_CONFIG: not valid JSON or YAML") == true)
        #expect(resolutionError(files: [meshPath: "defaultConfig: [unclosed"])?.hasPrefix("mesh config /etc/istio/config/mesh: not valid YAML") == true)
        #expect(resolutionError(files: [meshPath: "defaultConfig:\n  statusPort: abc\n"])
            == #"mesh config /etc/istio/config/mesh defaultConfig: statusPort: "abc" is not an integer"#)
        #expect(resolutionError(files: [annotationsPath: #"proxy.istio.io/config="drainDuration: nope""#])
            == #"annotation proxy.istio.io/config: drainDuration: "nope" is not a duration (use e.g. "45s")"#)
        #expect(resolutionError(files: [annotationsPath: #"status.sidecar.istio.io/port="abc""#])?
            .hasPrefix("annotation status.sidecar.istio.io/port=\"abc\" is not a port number") == true)
    }

    @Test("the mesh config file is optional and its other sections are ignored")
    func meshConfigFile() throws {
        #expect(try resolve(files: [meshPath: ""]).proxyConfig.json == ProxyConfig.defaultJSON)
        let config = try resolve(files: [meshPath: "accessLogFile: /dev/stdout\nenableTracing: true\n"]).proxyConfig
        #expect(config.json == ProxyConfig.defaultJSON)
        let custom = try resolve(["proxy", "--meshConfig=/config/mesh.yaml"],
                                 files: ["/config/mesh.yaml": "defaultConfig: {statNameLength: 7}"]).proxyConfig
        #expect(custom.statNameLength == 7)
    }

    @Test("status port annotation 0 turns the status server off; discovery address annotation overrides")
    func annotations() throws {
        let config = try resolve(files: [annotationsPath: """
            status.sidecar.istio.io/port="0"
            sidecar.istio.io/discoveryAddress="localhost:15012"
            """]).proxyConfig
        #expect(config.statusPort == 0)
        #expect(config.discoveryAddress == "localhost:15012")
        #expect(config.pilotSubjectAltName == "istiod.istio-system.svc")
    }

    @Test("INHERIT is rejected for a proxy")
    func inheritPolicy() {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"controlPlaneAuthPolicy":"INHERIT"}"#
        #expect(resolutionError(environment: environment)?.contains("INHERIT") == true)
    }

    @Test("an unreadable file is an error naming it")
    func unreadable() throws {
        let invocation = try AgentCommandLine.parse(["proxy"])
        let error = #expect(throws: AgentConfigError.self) {
            try AgentConfiguration.resolve(
                invocation: invocation, environment: podEnvironment,
                files: InMemoryFiles(unreadable: [meshPath]), hostAddresses: [])
        }
        #expect(error?.message == "cannot read mesh config /etc/istio/config/mesh: permission denied")
    }
}

/// `ControlPlaneAuthPolicy.none` reads ambiguously next to Optional's `.none` in `#expect`.
enum ProxyConfigPolicyNone {
    static let value = ControlPlaneAuthPolicy.none
}

@Suite("Concurrency")
struct ConcurrencyTests {
    @Test("unset: no concurrency")
    func unset() throws {
        let configuration = try resolve()
        #expect(configuration.proxyConfig.concurrency == nil)
        #expect(configuration.options.concurrency == nil)
        #expect(configuration.proxyConfig.json["concurrency"] == nil)
    }

    @Test("unset in ProxyConfig: ISTIO_CPU_LIMIT")
    func cpuLimit() throws {
        var environment = podEnvironment
        environment["ISTIO_CPU_LIMIT"] = "3"
        let configuration = try resolve(environment: environment)
        #expect(configuration.options.concurrency == 3)
        #expect(configuration.proxyConfig.json["concurrency"] == 3)
        environment["ISTIO_CPU_LIMIT"] = "0"
        #expect(try resolve(environment: environment).options.concurrency == nil)
        environment["ISTIO_CPU_LIMIT"] = "lots"
        #expect(resolutionError(environment: environment)?.hasPrefix("ISTIO_CPU_LIMIT=\"lots\" is not valid") == true)
    }

    @Test("ProxyConfig concurrency wins over ISTIO_CPU_LIMIT")
    func proxyConfigWins() throws {
        var environment = podEnvironment
        environment["ISTIO_CPU_LIMIT"] = "3"
        environment["PROXY_CONFIG"] = #"{"concurrency":2}"#
        #expect(try resolve(environment: environment).options.concurrency == 2)
    }

    @Test("legacy --concurrency wins over everything, with a warning")
    func flagWins() throws {
        var environment = podEnvironment
        environment["ISTIO_CPU_LIMIT"] = "3"
        environment["PROXY_CONFIG"] = #"{"concurrency":2}"#
        let configuration = try resolve(["proxy", "--concurrency", "5"], environment: environment)
        #expect(configuration.options.concurrency == 5)
        #expect(configuration.proxyConfig.json["concurrency"] == 5)
        #expect(configuration.warnings.contains { $0.hasPrefix("--concurrency is deprecated") })
    }

    @Test("0 means all host cores, with a warning")
    func zero() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = "concurrency: 0"
        let configuration = try resolve(environment: environment)
        #expect(configuration.options.concurrency == 0)
        #expect(configuration.warnings.contains { $0.contains("one worker thread per host core") })
    }

    @Test("null in a layer leaves the field as it was")
    func null() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"concurrency":null}"#
        environment["ISTIO_CPU_LIMIT"] = "2"
        #expect(try resolve(environment: environment).options.concurrency == 2)
    }
}
