import AgentConfig
import DNSProxy
import Logging
import NIOCore
import ServiceLifecycle
import StatusServer

/// The DNS proxy as one service of the agent's group: listening from before the data plane starts
/// (Istio starts DNS first, so the app's first lookups are answered), the name table watched while it
/// runs, and the listeners closed after the data plane has drained.
struct DNSService: Service {
    let server: DNSProxyServer
    let watcher: NameTableWatcher

    static func start(_ plan: DNSPlan, metrics: AgentMetrics, group: any EventLoopGroup, logger: Logger) async throws -> DNSService {
        let store = LookupTableStore()
        let server = try await DNSProxyServer.start(plan.proxy, store: store, metrics: metrics.dnsProxyMetrics(),
                                                    group: group, logger: Logger(label: "dns"))
        let listeners = server.addresses.map { "\($0) (udp, tcp)" }.joined(separator: ", ")
        let upstreams = plan.proxy.upstreams.map(\.description).joined(separator: ", ")
        let parallel = plan.proxy.forwardInParallel ? " in parallel" : ""
        logger.info("DNS proxy listening on \(listeners); forwarding to \(upstreams.isEmpty ? "no nameserver" : upstreams) from \(plan.resolvConfPath)\(parallel)")
        return DNSService(server: server, watcher: NameTableWatcher(source: plan.nameTable, store: store, logger: Logger(label: "dns")))
    }

    var readiness: DNSTableReadiness { DNSTableReadiness(store: watcher.store) }

    func run() async throws {
        let watcher = self.watcher
        let watching = Task { await watcher.run() }
        try? await gracefulShutdown()
        watching.cancel()
        await server.close()
    }
}

/// Not ready until the first name table is loaded (DNS.md §1), with Istio's message.
struct DNSTableReadiness: ReadinessCheck {
    let name = "DNS"
    let store: LookupTableStore

    func check() async -> ReadinessResult {
        store.isLoaded ? .ready : .notReady(reason: "istio DNS capture is turned ON and DNS lookup table is not ready yet")
    }
}

extension AgentMetrics {
    /// `istio_agent_dns_*` (DNS.md §6), with Istio's histogram buckets.
    func dnsProxyMetrics() -> DNSProxyMetrics {
        let requests = makeCounter(name: "dns_requests_total", help: "Total number of DNS requests.")
        let upstreamRequests = makeCounter(name: "dns_upstream_requests_total", help: "Total number of DNS requests forwarded to upstream.")
        let upstreamFailures = makeCounter(name: "dns_upstream_failures_total", help: "Total number of DNS failures.")
        let duration = makeHistogram(name: "dns_upstream_request_duration_seconds", help: "Total time in seconds Istio takes to get DNS response from upstream.",
                                     buckets: [0.001, 0.005, 0.01, 0.1, 1, 5])
        return DNSProxyMetrics(request: { requests.increment() }, upstreamRequest: { upstreamRequests.increment() },
                               upstreamFailure: { upstreamFailures.increment() }, upstreamDuration: { duration.record($0) })
    }
}
