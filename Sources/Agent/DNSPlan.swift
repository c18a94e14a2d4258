import AgentConfig
import Capture
import DNSProxy
import Logging
import TextFiles

/// The DNS proxy's listeners, upstreams and name table, decided at start: an unreadable resolv.conf or
/// a bad `DNS_PROXY_ADDR` stops the agent before anything runs (Istio treats both as fatal), exit 2.
struct DNSPlan: Sendable {
    var proxy: DNSProxyConfiguration
    var nameTable: NameTableSource
    var resolvConfPath: String

    /// Nil when neither `ISTIO_META_DNS_CAPTURE` (for a sidecar) nor `ISTIO_META_ENABLE_DNS_SERVER` is on.
    static func make(_ configuration: AgentConfiguration, logger: Logger) throws(AgentStartupError) -> DNSPlan? {
        let options = configuration.options
        guard options.dnsServerEnabled else { return nil }
        let resolvConfPath = configuration.paths.filesystemPath(options.resolvConfPath)
        let text: String
        do {
            text = try TextFile.read(resolvConfPath, limit: 1 << 20)
        } catch {
            throw .configuration("DNS proxy: cannot read \(error) (SLUICE_RESOLV_CONF): the proxy forwards to its nameservers;"
                + " point SLUICE_RESOLV_CONF at the pod's resolv.conf or turn ISTIO_META_DNS_CAPTURE off")
        }
        let (resolvConf, skipped) = ResolvConf.parse(text)
        for line in skipped { logger.warning("DNS proxy: \(resolvConfPath): ignored \(line)") }
        if resolvConf.nameservers.isEmpty {
            logger.warning("DNS proxy: \(resolvConfPath) lists no nameserver: names not in the name table will get SERVFAIL")
        }
        let upstreams = resolvConf.nameservers.map { Endpoint($0.address, UInt16($0.port)) }
        let listenAddresses: [Endpoint]
        do {
            listenAddresses = try DNSProxyConfiguration.listenAddresses(for: options.dnsProxyAddress, upstreams: upstreams)
        } catch {
            throw .configuration(error.description)
        }
        // DNS.md §4: the pod's domain without its namespace, `svc.cluster.local`.
        let namespace = configuration.identity.podNamespace
        var proxyDomain = Substring(configuration.identity.domain)
        if !namespace.isEmpty, proxyDomain.hasPrefix(namespace + ".") { proxyDomain = proxyDomain.dropFirst(namespace.count + 1) }
        return DNSPlan(
            proxy: DNSProxyConfiguration(listenAddresses: listenAddresses, upstreams: upstreams,
                                         forwardInParallel: options.dnsForwardParallel, forwardTimeout: options.dnsForwardTimeout),
            nameTable: NameTableSource(path: configuration.paths.filesystemPath(options.nameTablePath), proxyDomain: String(proxyDomain),
                                       podNamespace: namespace, searchDomains: resolvConf.searchDomains),
            resolvConfPath: resolvConfPath)
    }
}
