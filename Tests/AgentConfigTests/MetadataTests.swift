import AgentConfig
import ConfigFormats
import Testing

@Suite("Node metadata")
struct MetadataTests {
    @Test("typed fields with Istio's JSON types, keys sorted")
    func typedFields() throws {
        var environment = podEnvironment
        environment["ISTIO_META_CLUSTER_ID"] = "Kubernetes"
        environment["ISTIO_META_MESH_ID"] = "cluster.local"
        environment["ISTIO_META_WORKLOAD_NAME"] = "reviews-v1"
        environment["ISTIO_META_DNS_CAPTURE"] = "true"
        environment["ISTIO_META_POD_PORTS"] = #"[{"containerPort":9080,"protocol":"TCP"}]"#
        environment["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "1"
        let configuration = try resolve(["proxy", "--stsPort=15463", "--outlierLogPath=/dev/stdout"],
                                        environment: environment,
                                        files: ["/etc/istio/pod/labels": "app=\"reviews\"\nversion=\"v1\"",
                                                "/etc/istio/pod/annotations": "a=\"1\""],
                                        hostAddresses: ["10.1.2.3", "fd00::3"])
        let metadata = configuration.metadata
        #expect(metadata.keys == metadata.keys.sorted())
        #expect(metadata["NAME"] == "reviews-v1-abc")
        #expect(metadata["NAMESPACE"] == "default")
        #expect(metadata["SERVICE_ACCOUNT"] == "bookinfo-reviews")
        #expect(metadata["LABELS"] == ["app": "reviews", "version": "v1"])
        #expect(metadata["ANNOTATIONS"] == ["a": "1"])
        #expect(metadata["INSTANCE_IPS"] == "10.1.2.3,fd00::3")
        #expect(metadata["ISTIO_VERSION"] == "1.31.0-sluice")
        #expect(metadata["PROXY_CONFIG"] == .object(configuration.proxyConfig.json))
        #expect(metadata["PILOT_SAN"] == ["istiod.istio-system.svc"])
        #expect(metadata["ENVOY_STATUS_PORT"] == 15021)
        #expect(metadata["ENVOY_PROMETHEUS_PORT"] == 15090)
        #expect(metadata["CLUSTER_ID"] == "Kubernetes")
        #expect(metadata["MESH_ID"] == "cluster.local")
        #expect(metadata["WORKLOAD_NAME"] == "reviews-v1")
        #expect(metadata["DNS_CAPTURE"] == "true")
        #expect(metadata["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true")
        #expect(metadata["INTERCEPTION_MODE"] == "REDIRECT")
        #expect(metadata["POD_PORTS"] == #"[{"containerPort":9080,"protocol":"TCP"}]"#)
        #expect(metadata["STS_PORT"] == "15463")
        #expect(metadata["OUTLIER_LOG_PATH"] == "/dev/stdout")
    }

    @Test("every ISTIO_META_X becomes X as a string; empty maps and unset fields are left out")
    func plainMeta() throws {
        var environment = podEnvironment
        environment["ISTIO_META_FOO"] = "bar"
        environment["ISTIO_META_NUMBER"] = "15"
        environment["ISTIO_META_"] = "ignored"
        let metadata = try resolve(environment: environment).metadata
        #expect(metadata["FOO"] == "bar")
        #expect(metadata["NUMBER"] == "15")
        #expect(metadata[""] == nil)
        #expect(metadata["LABELS"] == nil)
        #expect(metadata["ANNOTATIONS"] == nil)
        #expect(metadata["STS_PORT"] == nil)
        #expect(metadata["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == nil)
    }

    @Test("ISTIO_META_ISTIO_VERSION is kept, as Istio only fills an empty version")
    func versionOverride() throws {
        var environment = podEnvironment
        environment["ISTIO_META_ISTIO_VERSION"] = "1.99.0"
        #expect(try resolve(environment: environment).metadata["ISTIO_VERSION"] == "1.99.0")
    }

    @Test("Istio's string booleans are normalized; a bad one is an error naming the variable")
    func stringBooleans() throws {
        var environment = podEnvironment
        environment["ISTIO_META_DNS_AUTO_ALLOCATE"] = "1"
        #expect(try resolve(environment: environment).metadata["DNS_AUTO_ALLOCATE"] == "true")
        environment["ISTIO_META_DNS_AUTO_ALLOCATE"] = "yes"
        #expect(resolutionError(environment: environment) == "ISTIO_META_DNS_AUTO_ALLOCATE: \"yes\" is not a boolean: use true or false")
    }

    @Test("ISTIO_METAJSON_* objects merge at the top level; LABELS also sets LABELS and STATIC_LABELS, under pod labels")
    func metaJSON() throws {
        var environment = podEnvironment
        environment["ISTIO_META_app"] = "from-meta"
        environment["ISTIO_METAJSON_EXTRA"] = #"{"PLATFORM":{"zone":"a"},"COUNT":3}"#
        environment["ISTIO_METAJSON_LABELS"] = #"{"app":"vm-app","tier":"backend"}"#
        let configuration = try resolve(environment: environment, files: ["/etc/istio/pod/labels": "tier=\"frontend\""])
        let metadata = configuration.metadata
        #expect(metadata["PLATFORM"] == ["zone": "a"])
        #expect(metadata["COUNT"] == 3)
        #expect(metadata["app"] == "vm-app")   // METAJSON is applied after META
        #expect(metadata["STATIC_LABELS"] == ["app": "vm-app", "tier": "backend"])
        #expect(metadata["LABELS"] == ["app": "vm-app", "tier": "frontend"])
        #expect(configuration.identity.cluster == "vm-app.default")
    }

    @Test("bad ISTIO_METAJSON is an error naming the variable", arguments: [
        (#"{"a":"#, "ISTIO_METAJSON_EXTRA: not valid JSON"),
        (#"["a"]"#, "ISTIO_METAJSON_EXTRA: want a JSON object, got a list"),
    ])
    func badMetaJSON(value: String, prefix: String) {
        var environment = podEnvironment
        environment["ISTIO_METAJSON_EXTRA"] = value
        #expect(resolutionError(environment: environment)?.hasPrefix(prefix) == true)
    }

    @Test("non-string static labels are an error")
    func badLabels() {
        var environment = podEnvironment
        environment["ISTIO_METAJSON_LABELS"] = #"{"replicas":3}"#
        #expect(resolutionError(environment: environment)
            == "ISTIO_METAJSON_LABELS: label \"replicas\" is a number: label values must be strings")
    }

    @Test("proxyMetadata ISTIO_META_* entries reach metadata; the environment wins over them")
    func proxyMetadata() throws {
        var environment = podEnvironment
        environment["PROXY_CONFIG"] = #"{"proxyMetadata":{"ISTIO_META_A":"pc","ISTIO_META_B":"pc","OTHER":"x"}}"#
        environment["ISTIO_META_B"] = "env"
        let configuration = try resolve(environment: environment)
        #expect(configuration.metadata["A"] == "pc")
        #expect(configuration.metadata["B"] == "env")
        #expect(configuration.metadata["OTHER"] == nil)
        #expect(configuration.environment["OTHER"] == "x")
        #expect(configuration.environment["ISTIO_META_B"] == "env")
    }

    @Test("metadata renders as stable JSON")
    func rendering() throws {
        let first = try resolve().metadata
        let second = try resolve().metadata
        #expect(JSONValue.object(first).renderedJSON() == JSONValue.object(second).renderedJSON())
    }
}
