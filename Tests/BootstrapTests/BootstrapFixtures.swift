import Bootstrap
import ConfigFormats

/// Inputs shaped like what the agent builds for a real pod.
enum BootstrapFixtures {
    static func metadata(ip: String, extra: JSONObject = [:]) -> JSONObject {
        var metadata: JSONObject = [
            "NAME": "reviews-v1-abc",
            "NAMESPACE": "default",
            "SERVICE_ACCOUNT": "bookinfo-reviews",
            "INSTANCE_IPS": .string(ip),
            "LABELS": ["app": "reviews", "version": "v1"],
            "ISTIO_VERSION": "1.31.0",
            "CLUSTER_ID": "Kubernetes",
            "INTERCEPTION_MODE": "REDIRECT",
            "ENVOY_STATUS_PORT": 15021,
            "ENVOY_PROMETHEUS_PORT": 15090,
            "PROXY_CONFIG": [
                "configPath": "./etc/istio/proxy",
                "discoveryAddress": "istiod.istio-system.svc:15012",
                "drainDuration": "45s",
                "proxyAdminPort": 15000,
                "statusPort": 15020,
            ],
        ]
        for (key, value) in extra { metadata[key] = value }
        return metadata
    }

    static var sidecarIPv4: BootstrapInput {
        var input = BootstrapInput(
            nodeID: "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local",
            cluster: "reviews.default",
            metadata: metadata(ip: "10.1.2.3"))
        input.locality = .init(region: "eu-west-1", zone: "eu-west-1a")
        return input
    }

    static var router: BootstrapInput {
        BootstrapInput(
            nodeID: "router~10.1.2.4~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local",
            cluster: "istio-ingressgateway.istio-system",
            metadata: metadata(ip: "10.1.2.4", extra: ["NAME": "istio-ingressgateway-xyz", "NAMESPACE": "istio-system"]),
            proxyType: .router)
    }

    static var sidecarIPv6: BootstrapInput {
        BootstrapInput(
            nodeID: "sidecar~fd00:10::3~reviews-v1-abc.default~default.svc.cluster.local",
            cluster: "reviews.default",
            metadata: metadata(ip: "fd00:10::3"),
            ipMode: .ipv6)
    }

    static var sidecarDualStack: BootstrapInput {
        BootstrapInput(
            nodeID: "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local",
            cluster: "reviews.default",
            metadata: metadata(ip: "10.1.2.3,fd00:10::3"),
            ipMode: .dual)
    }

    static var sidecarDNSCapture: BootstrapInput {
        var input = sidecarIPv4
        input.metadata["DNS_CAPTURE"] = "true"
        input.metadata["DNS_AUTO_ALLOCATE"] = "true"
        return input
    }

    static var sidecarTPROXY: BootstrapInput {
        var input = sidecarIPv4
        input.interceptionMode = .tproxy
        input.metadata["INTERCEPTION_MODE"] = "TPROXY"
        return input
    }

    static var sidecarExitOnZero: BootstrapInput {
        var input = sidecarIPv4
        input.exitOnZeroActiveConnections = true
        input.metadata["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "true"
        return input
    }

    /// Every snapshot configuration by the name of its file under `Snapshots/`.
    static let snapshots: [(name: String, input: BootstrapInput)] = [
        ("sidecar-ipv4", sidecarIPv4),
        ("router", router),
        ("sidecar-ipv6", sidecarIPv6),
        ("sidecar-dual-stack", sidecarDualStack),
        ("sidecar-dns-capture", sidecarDNSCapture),
        ("sidecar-tproxy", sidecarTPROXY),
        ("sidecar-exit-on-zero", sidecarExitOnZero),
    ]
}

extension JSONValue {
    /// The element of a list of objects whose `name` is `name`.
    func named(_ name: String) -> JSONValue? {
        arrayValue?.first { $0["name"]?.stringValue == name }
    }
}

extension JSONValue {
    static func path(_ value: JSONValue?, _ keys: String...) -> JSONValue? {
        var current = value
        for key in keys { current = current?[key] }
        return current
    }
}
