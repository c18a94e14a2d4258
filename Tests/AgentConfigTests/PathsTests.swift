import AgentConfig
import Testing

@Suite("Paths under the root")
struct PathsTests {
    @Test("root / keeps Istio's paths")
    func slashRoot() throws {
        let paths = try resolve().paths
        #expect(paths.root == "/")
        #expect(paths.filesystemPath("./etc/istio/proxy/envoy-rev.json") == "/etc/istio/proxy/envoy-rev.json")
        #expect(paths.bootstrapPath("./etc/istio/proxy/XDS") == "./etc/istio/proxy/XDS")
        #expect(paths.bootstrap == "./etc/istio/proxy/envoy-rev.json")
        #expect(paths.xdsSocket == "./etc/istio/proxy/XDS")
        #expect(paths.workloadSocket == "./var/run/secrets/workload-spiffe-uds/socket")
        #expect(paths.meshConfig == "./etc/istio/config/mesh")
    }

    @Test("--root moves every ./ path; absolute paths stay")
    func customRoot() throws {
        let paths = try resolve(["proxy", "--root", "/tmp/pod-1/"]).paths
        #expect(paths.root == "/tmp/pod-1")
        #expect(paths.filesystemPath("./etc/istio/proxy/envoy-rev.json") == "/tmp/pod-1/etc/istio/proxy/envoy-rev.json")
        #expect(paths.filesystemPath("var/lib/istio/data") == "/tmp/pod-1/var/lib/istio/data")
        #expect(paths.filesystemPath("/usr/local/bin/envoy") == "/usr/local/bin/envoy")
        #expect(paths.filesystemPath(".") == "/tmp/pod-1")
        #expect(paths.bootstrapPath(paths.workloadSocket) == "/tmp/pod-1/var/run/secrets/workload-spiffe-uds/socket")
        #expect(paths.bootstrapPath("/abs") == "/abs")
    }

    @Test("--root over SLUICE_ROOT over /; files are read under the root")
    func precedence() throws {
        var environment = podEnvironment
        environment["SLUICE_ROOT"] = "/env-root"
        #expect(try resolve(environment: environment).paths.root == "/env-root")
        #expect(try resolve(["--root=/flag-root", "proxy"], environment: environment).paths.root == "/flag-root")
        environment["SLUICE_ROOT"] = ""
        #expect(try resolve(environment: environment).paths.root == "/")

        environment["SLUICE_ROOT"] = "/r"
        let configuration = try resolve(environment: environment, files: [
            "/r/etc/istio/pod/labels": "app=\"rooted\"",
            "/r/etc/istio/config/mesh": "defaultConfig: {statNameLength: 3}",
            "/etc/istio/pod/labels": "app=\"not-rooted\"",
        ])
        #expect(configuration.identity.labels == ["app": "rooted"])
        #expect(configuration.proxyConfig.statNameLength == 3)
    }

    @Test("a relative root is an error naming its source")
    func relativeRoot() {
        #expect(resolutionError(["proxy", "--root=tmp/x"]) == "--root \"tmp/x\" must be an absolute path")
        var environment = podEnvironment
        environment["SLUICE_ROOT"] = "rel"
        #expect(resolutionError(environment: environment) == "SLUICE_ROOT \"rel\" must be an absolute path")
    }

    @Test("configPath and WORKLOAD_IDENTITY_SOCKET_FILE move the derived paths")
    func derived() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"configPath":"./etc/alt/"}"#
        environment["WORKLOAD_IDENTITY_SOCKET_FILE"] = "spire"
        let paths = try resolve(environment: environment).paths
        #expect(paths.bootstrap == "./etc/alt/envoy-rev.json")
        #expect(paths.xdsSocket == "./etc/alt/XDS")
        #expect(paths.workloadSocket == "./var/run/secrets/workload-spiffe-uds/spire")
    }

    @Test("Istio's path constants")
    func constants() {
        #expect(AgentPaths.defaultConfigDirectory == "./etc/istio/proxy")
        #expect(AgentPaths.bootstrapFileName == "envoy-rev.json")
        #expect(AgentPaths.podLabels == "./etc/istio/pod/labels")
        #expect(AgentPaths.podAnnotations == "./etc/istio/pod/annotations")
        #expect(AgentPaths.istioToken == "./var/run/secrets/tokens/istio-token")
        #expect(AgentPaths.defaultBootstrapTemplate == "./var/lib/istio/envoy/envoy_bootstrap_tmpl.json")
        #expect(AgentPaths.filesCredentialSocket == "./var/run/secrets/credential-uds/files-socket")
    }
}

@Suite("Durations")
struct DurationTests {
    @Test("protobuf JSON and Go forms", arguments: [
        ("45s", "45s"), ("0.5s", "0.500s"), ("1.000000001s", "1.000000001s"), ("1.5s", "1.500s"),
        ("1m30s", "90s"), ("500ms", "0.500s"), ("2h", "7200s"), ("1.25us", "0.000001250s"), ("0.000010s", "0.000010s"),
        // Go's syntax allows a bare trailing dot and drops fraction digits past nanoseconds.
        ("1.s", "1s"), ("1.0000000001s", "1s"),
    ])
    func forms(input: String, canonical: String) throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"terminationDrainDuration":"\#(input)"}"#
        let config = try resolve(environment: environment).proxyConfig
        #expect(config.json["terminationDrainDuration"]?.stringValue == canonical)
    }

    @Test("not durations", arguments: ["", "45", "s", ".s", "abc", "1x", "--1s", "1s2"])
    func invalid(input: String) {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"terminationDrainDuration":"\#(input)"}"#
        #expect(resolutionError(environment: environment)?.contains("is not a duration") == true)
    }
}
