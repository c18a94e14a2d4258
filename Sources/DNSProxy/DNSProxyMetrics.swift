/// Where the proxy reports what it does (DNS.md §6). The agent points these at its Prometheus registry
/// as `istio_agent_dns_*`; tests count them directly.
public struct DNSProxyMetrics: Sendable {
    /// `dns_requests_total`: every query accepted on either listener.
    public var request: @Sendable () -> Void
    /// `dns_upstream_requests_total`: every query forwarded to the resolv.conf servers.
    public var upstreamRequest: @Sendable () -> Void
    /// `dns_upstream_failures_total`: a forwarded query every upstream failed (answered SERVFAIL).
    public var upstreamFailure: @Sendable () -> Void
    /// `dns_upstream_request_duration_seconds`: from forwarding to the answer (or the last failure).
    public var upstreamDuration: @Sendable (Duration) -> Void

    public init(request: @escaping @Sendable () -> Void, upstreamRequest: @escaping @Sendable () -> Void,
                upstreamFailure: @escaping @Sendable () -> Void, upstreamDuration: @escaping @Sendable (Duration) -> Void) {
        self.request = request
        self.upstreamRequest = upstreamRequest
        self.upstreamFailure = upstreamFailure
        self.upstreamDuration = upstreamDuration
    }

    public static let none = DNSProxyMetrics(request: {}, upstreamRequest: {}, upstreamFailure: {}, upstreamDuration: { _ in })
}
