import AgentConfig
import Testing

@Suite("Node identity")
struct IdentityTests {
    let labelsPath = "/etc/istio/pod/labels"

    @Test("node id, service node and default domain")
    func nodeID() throws {
        let identity = try resolve().identity
        #expect(identity.id == "reviews-v1-abc.default")
        #expect(identity.domain == "default.svc.cluster.local")
        #expect(identity.serviceNode == "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local")
        #expect(identity.trustDomain == "cluster.local")
        #expect(identity.serviceAccount == "bookinfo-reviews")
        #expect(identity.proxyType == .sidecar)
    }

    @Test("--domain, router type, TRUST_DOMAIN, cluster id")
    func overrides() throws {
        var environment = podEnvironment
        environment["TRUST_DOMAIN"] = "example.org"
        environment["ISTIO_META_CLUSTER_ID"] = "Kubernetes"
        let identity = try resolve(["proxy", "router", "--domain", "gw.example"], environment: environment).identity
        #expect(identity.domain == "gw.example")
        #expect(identity.serviceNode == "router~10.1.2.3~reviews-v1-abc.default~gw.example")
        #expect(identity.trustDomain == "example.org")
        #expect(identity.clusterID == "Kubernetes")
    }

    @Test("IPs: INSTANCE_IP first, then host addresses without repeats")
    func addresses() throws {
        let identity = try resolve(hostAddresses: ["10.9.9.9", "10.1.2.3", "fd00::5"]).identity
        #expect(identity.ipAddresses == ["10.1.2.3", "10.9.9.9", "fd00::5"])
        #expect(identity.ipMode == .dual)
    }

    @Test("no host addresses: the loopback pair, as Istio adds")
    func loopbackFallback() throws {
        var environment = podEnvironment
        environment["INSTANCE_IP"] = nil
        let identity = try resolve(environment: environment, hostAddresses: []).identity
        #expect(identity.ipAddresses == ["127.0.0.1", "::1"])
        #expect(identity.serviceNode.hasPrefix("sidecar~127.0.0.1~"))
        let withPodIP = try resolve(hostAddresses: []).identity
        #expect(withPodIP.ipAddresses == ["10.1.2.3", "127.0.0.1", "::1"])
    }

    @Test("IP modes", arguments: [
        (["10.0.0.1", "10.0.0.2"], IPMode.ipv4),
        (["fd00::1", "fe80::1"], IPMode.ipv6),
        (["fd00::1", "10.0.0.1"], IPMode.dual),
    ])
    func ipModes(addresses: [String], mode: IPMode) throws {
        var environment = podEnvironment
        environment["INSTANCE_IP"] = addresses[0]
        let identity = try resolve(environment: environment, hostAddresses: addresses).identity
        #expect(identity.ipMode == mode)
        #expect(identity.localhost == (mode == .ipv6 ? "::1" : "127.0.0.1"))
    }

    @Test("an IPv6 INSTANCE_IP is normalized; a bad one is ignored with a warning")
    func instanceIPParsing() throws {
        var environment = podEnvironment
        environment["INSTANCE_IP"] = "FD00:0::1"
        #expect(try resolve(environment: environment, hostAddresses: ["fd00::1"]).identity.ipAddresses == ["fd00::1"])
        environment["INSTANCE_IP"] = "not-an-ip"
        let configuration = try resolve(environment: environment, hostAddresses: ["10.0.0.7"])
        #expect(configuration.identity.ipAddresses == ["10.0.0.7"])
        #expect(configuration.warnings.contains { $0.hasPrefix("INSTANCE_IP=\"not-an-ip\"") })
    }

    @Test("cluster: serviceCluster when not the default, else app label, WORKLOAD_NAME, istio-proxy, each with the namespace")
    func cluster() throws {
        var environment = podEnvironment
        #expect(try resolve(environment: environment).identity.cluster == "istio-proxy.default")
        environment["ISTIO_META_WORKLOAD_NAME"] = "reviews-v1"
        #expect(try resolve(environment: environment).identity.cluster == "reviews-v1.default")
        let withApp = try resolve(environment: environment, files: [labelsPath: "app=\"reviews\"\nversion=\"v1\""])
        #expect(withApp.identity.cluster == "reviews.default")
        environment["PROXY_CONFIG"] = #"{"serviceCluster":"custom"}"#
        #expect(try resolve(environment: environment, files: [labelsPath: "app=\"reviews\""]).identity.cluster == "custom")
    }

    @Test("cluster with tracingServiceName uses the canonical service name")
    func tracingServiceName() throws {
        var environment = podEnvironment
        let labels = "app=\"reviews\"\nservice.istio.io/canonical-name=\"reviews-canonical\""
        environment["PROXY_CONFIG"] = #"{"tracingServiceName":"CANONICAL_NAME_ONLY"}"#
        #expect(try resolve(environment: environment, files: [labelsPath: labels]).identity.cluster == "reviews-canonical")
        environment["PROXY_CONFIG"] = #"{"tracingServiceName":"CANONICAL_NAME_AND_NAMESPACE"}"#
        #expect(try resolve(environment: environment, files: [labelsPath: labels]).identity.cluster == "reviews-canonical.default")
        environment["PROXY_CONFIG"] = #"{"tracingServiceName":"APP_LABEL_AND_NAMESPACE"}"#
        #expect(try resolve(environment: environment, files: [labelsPath: labels]).identity.cluster == "reviews.default")
    }

    @Test("interception mode: ISTIO_META_INTERCEPTION_MODE, else ProxyConfig, else REDIRECT")
    func interceptionMode() throws {
        var environment = podEnvironment
        #expect(try resolve(environment: environment).identity.interceptionMode == .redirect)
        environment["PROXY_CONFIG"] = #"{"interceptionMode":"TPROXY"}"#
        #expect(try resolve(environment: environment).identity.interceptionMode == .tproxy)
        environment["ISTIO_META_INTERCEPTION_MODE"] = "NONE"
        #expect(try resolve(environment: environment).identity.interceptionMode == InterceptionMode.none)
        environment["ISTIO_META_INTERCEPTION_MODE"] = "redirect"
        #expect(resolutionError(environment: environment)
            == "ISTIO_META_INTERCEPTION_MODE=\"redirect\" is not REDIRECT, TPROXY or NONE")
    }

    @Test("missing pod name and namespace are warned about")
    func missingPod() throws {
        let configuration = try resolve(environment: [:])
        #expect(configuration.identity.id == ".")
        #expect(configuration.identity.domain == ".svc.cluster.local")
        #expect(configuration.warnings.contains { $0.hasPrefix("POD_NAME is not set") })
        #expect(configuration.warnings.contains { $0.hasPrefix("POD_NAMESPACE is not set") })
    }
}

@Suite("Downward API files")
struct DownwardAPITests {
    @Test("Go-quoted values: escapes, unicode, raw strings, lines without =")
    func quoting() throws {
        let file = try DownwardAPIFile.parse(#"""
            app="reviews"
            kubectl.kubernetes.io/last-applied="{\"a\":\"b\\c\"}\n"
            note="tab\there \u00e9\x41\101 \U0001F600"
            raw=`back\slash`
            empty=""
            garbage line
            eq="a=b"
            """#, fileName: "labels")
        #expect(file["app"] == "reviews")
        #expect(file["kubectl.kubernetes.io/last-applied"] == "{\"a\":\"b\\c\"}\n")
        #expect(file["note"] == "tab\there éAA 😀")
        #expect(file["raw"] == "back\\slash")
        #expect(file["empty"] == "")
        #expect(file["eq"] == "a=b")
        #expect(file.entries.map(\.key) == ["app", "kubectl.kubernetes.io/last-applied", "note", "raw", "empty", "eq"])
    }

    @Test("a value that is not a Go string literal is an error naming file and line", arguments: [
        "a=unquoted", "a=\"open", "a=\"bad \\q escape\"", "a=\"inner \" quote\"", "a=\"\\x4\"",
    ])
    func badQuoting(line: String) {
        let error = #expect(throws: AgentConfigError.self) {
            try DownwardAPIFile.parse("ok=\"1\"\n" + line, fileName: "/etc/istio/pod/labels")
        }
        #expect(error?.message.hasPrefix("/etc/istio/pod/labels line 2: the value of \"a\" is not a Go-quoted string") == true)
    }

    @Test("pod-template-hash is dropped from labels; labels and annotations reach identity")
    func podTemplateHash() throws {
        let configuration = try resolve(files: [
            "/etc/istio/pod/labels": "app=\"reviews\"\npod-template-hash=\"5d8f\"\n",
            "/etc/istio/pod/annotations": "sidecar.istio.io/status=\"{}\"\n",
        ])
        #expect(configuration.identity.labels == ["app": "reviews"])
        #expect(configuration.identity.annotations == ["sidecar.istio.io/status": "{}"])
    }
}
