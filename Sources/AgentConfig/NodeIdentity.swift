import Capture

/// Who this proxy is to istiod and to the data plane: Istio's `model.Proxy` as `initProxy` builds it,
/// plus the pod facts the node id and cluster name are made of.
public struct NodeIdentity: Sendable, Equatable {
    public var proxyType: ProxyType
    /// `INSTANCE_IP` first (istiod takes the first as the pod IP), then the host's private addresses.
    public var ipAddresses: [String]
    public var ipMode: IPMode
    public var podName: String
    public var podNamespace: String
    /// `POD_NAME.POD_NAMESPACE`.
    public var id: String
    /// `--domain`, or `<namespace>.svc.cluster.local`.
    public var domain: String
    /// The data plane's node id: `<type>~<ip>~<pod>.<namespace>~<domain>`.
    public var serviceNode: String
    /// The data plane's node cluster (AGENT.md §4).
    public var cluster: String
    public var trustDomain: String
    public var serviceAccount: String
    /// `ISTIO_META_CLUSTER_ID`.
    public var clusterID: String
    public var interceptionMode: InterceptionMode
    /// `ISTIO_META_WORKLOAD_NAME`.
    public var workloadName: String
    /// Pod labels (downward API, over `ISTIO_METAJSON_LABELS`), without `pod-template-hash`.
    public var labels: [String: String]
    /// Pod annotations (downward API).
    public var annotations: [String: String]

    /// The loopback address the data plane's admin and local listeners use: `::1` only for IPv6-only pods.
    public var localhost: String { ipMode == .ipv6 ? "::1" : "127.0.0.1" }
}

/// Istio's `DiscoverIPMode`: v4 when every address is IPv4, v6 when every one is IPv6, else dual.
public enum IPMode: String, Sendable, Hashable {
    case ipv4
    case ipv6
    case dual

    public init(addresses: [String]) {
        let families = addresses.compactMap { IPAddress($0)?.family }
        if families.allSatisfy({ $0 == .ipv4 }) {
            self = .ipv4
        } else if families.allSatisfy({ $0 == .ipv6 }) {
            self = .ipv6
        } else {
            self = .dual
        }
    }
}

extension NodeIdentity {
    /// Istio's `initProxy` address list: the pod IP first, then the host's addresses (loopback pair when
    /// the host reported none), without repeats.
    static func addresses(instanceIP: String?, hostAddresses: [String]) -> [String] {
        var result: [String] = []
        if let instanceIP { result.append(instanceIP) }
        var host = hostAddresses.compactMap { IPAddress($0)?.description }
        if host.isEmpty { host = ["127.0.0.1", "::1"] }
        for address in host where !result.contains(address) { result.append(address) }
        return result
    }

    /// `getServiceCluster` / `serviceClusterOrDefault` of `pkg/bootstrap/config.go`.
    static func cluster(
        serviceCluster: String?, tracingServiceName: TracingServiceName?,
        labels: [String: String], workloadName: String, namespace: String
    ) -> String {
        func orDefault(_ name: String) -> String {
            if !name.isEmpty && name != "istio-proxy" { return name }
            if let app = labels["app"] { return app + "." + namespace }
            if !workloadName.isEmpty { return workloadName + "." + namespace }
            if !namespace.isEmpty { return "istio-proxy." + namespace }
            return "istio-proxy"
        }
        if let serviceCluster { return orDefault(serviceCluster) }
        let canonicalName = labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"]
            ?? labels["app"] ?? (workloadName.isEmpty ? "istio-proxy" : workloadName)
        switch tracingServiceName {
        case .canonicalNameOnly:
            return orDefault(canonicalName)
        case .canonicalNameAndNamespace:
            return namespace.isEmpty ? orDefault(canonicalName) : canonicalName + "." + namespace
        case .appLabelAndNamespace, nil:
            return orDefault("istio-proxy")
        }
    }
}
