import Capture
import DataPlaneConfig
import Forwarding
import ProxyStats

/// What sluice-proxy will run, decided from the bootstrap and the command line before anything
/// binds: the forwarding engine's listeners, the HTTP listeners, the admin address, the stats rules.
/// Pure, so every refusal is found (and tested) without touching the network.
public struct ProxyPlan: Sendable {
    public var forwarding: ForwardingConfiguration
    /// Listeners with an http_connection_manager, in bootstrap order.
    public var httpListeners: [ListenerConfig]
    public var adminAddress: Endpoint?
    public var statsInclusion: StatsInclusion
    public var tagExtractors: [TagExtractor]

    public static func make(
        bootstrap: ProxyBootstrap, commandLine: ProxyCommandLine, hostCores: Int
    ) throws(ConfigError) -> ProxyPlan {
        // Envoy: --concurrency 0 or absent means one worker per core.
        let workers = max(1, commandLine.concurrency.flatMap { $0 > 0 ? $0 : nil } ?? hostCores)
        var forwardingListeners: [ForwardingListener] = []
        var httpListeners: [ListenerConfig] = []
        for (index, listener) in bootstrap.listeners.enumerated() {
            switch listener.filter {
            case .tcpProxy(let tcpProxy):
                forwardingListeners.append(try forwardingListener(listener, tcpProxy, index: index, bootstrap: bootstrap))
            case .httpConnectionManager:
                // Routes to clusters an HTTP listener cannot serve are configuration errors: found
                // here, before anything binds (and by --mode validate).
                _ = try HTTPRouteTable(listener: listener, bootstrap: bootstrap)
                httpListeners.append(listener)
            }
        }
        var adminAddress: Endpoint?
        if let admin = bootstrap.admin {
            switch admin.address {
            case .socket(let endpoint):
                adminAddress = endpoint
            case .pipe(let path):
                throw ConfigError("admin.address.pipe (\(path)): sluice-proxy serves its admin API on a TCP address only; use socket_address")
            }
        }
        let ownPorts = Set(bootstrap.listeners.flatMap { $0.addresses.map(\.port) } + (adminAddress.map { [$0.port] } ?? []))
        return ProxyPlan(
            forwarding: ForwardingConfiguration(
                listeners: forwardingListeners, workers: workers, ownPorts: ownPorts,
                maxActiveDownstreamConnections: bootstrap.maxActiveDownstreamConnections),
            httpListeners: httpListeners,
            adminAddress: adminAddress,
            statsInclusion: try statsInclusion(bootstrap.stats.matcher),
            tagExtractors: try tagExtractors(bootstrap.stats))
    }

    private static func forwardingListener(
        _ listener: ListenerConfig, _ tcpProxy: TCPProxyConfig, index: Int, bootstrap: ProxyBootstrap
    ) throws(ConfigError) -> ForwardingListener {
        let path = "static_resources.listeners[\(index)] (\(listener.name))"
        // The parser has already checked that the cluster exists.
        guard let cluster = bootstrap.cluster(named: tcpProxy.cluster), cluster.discovery == .originalDestination else {
            throw ConfigError("\(path): tcp_proxy to cluster \"\(tcpProxy.cluster)\", which is not ORIGINAL_DST; "
                + "sluice-proxy forwards tcp_proxy listeners only to their connections' original destinations")
        }
        return ForwardingListener(
            name: listener.name, statName: listener.statName, addresses: listener.addresses,
            transparent: listener.transparent, useOriginalDestination: listener.useOriginalDestination,
            originalSourceMark: listener.originalSourceMark, isInbound: listener.direction == .inbound,
            tcpStatPrefix: tcpProxy.statPrefix,
            cluster: ForwardingCluster(
                name: cluster.name, statName: cluster.statName, connectTimeout: cluster.connectTimeout,
                sourceAddresses: cluster.sourceAddresses, maxConnections: cluster.maxConnections),
            // The parser turns a missing idle_timeout into Envoy's one hour, and "0s" into none.
            idleTimeout: tcpProxy.idleTimeout)
    }

    static func statsInclusion(_ matcher: MatcherSpec) throws(ConfigError) -> StatsInclusion {
        switch matcher {
        case .acceptAll: return .all
        case .rejectAll: return .none
        case .inclusion(let patterns): return .only(try patterns.map(stringMatcher))
        case .exclusion(let patterns): return .allExcept(try patterns.map(stringMatcher))
        }
    }

    private static func stringMatcher(_ pattern: PatternSpec) throws(ConfigError) -> StringMatcher {
        let kind: StringMatcher.Kind = switch pattern.kind {
        case .exact: .exact
        case .prefix: .prefix
        case .suffix: .suffix
        case .contains: .contains
        case .regex: .regex
        }
        do {
            return try StringMatcher(kind, pattern.value, ignoreCase: pattern.ignoreCase)
        } catch {
            throw ConfigError("\(pattern.path): \(error.message)")
        }
    }

    /// Envoy's order: its default extractors first when use_all_default_tags, then the bootstrap's.
    static func tagExtractors(_ settings: StatsSettings) throws(ConfigError) -> [TagExtractor] {
        var extractors = settings.useAllDefaultTags ? TagExtractor.envoyDefaults : []
        for tag in settings.tags {
            if let value = tag.fixedValue {
                extractors.append(TagExtractor(name: tag.name, fixedValue: value))
            } else if let regex = tag.regex {
                do {
                    extractors.append(try TagExtractor(name: tag.name, regex: regex))
                } catch {
                    throw ConfigError("\(tag.path).regex: \(error.message)")
                }
            } else {
                // A tag with neither regex nor fixed_value names Envoy's built-in extractors of that name.
                do {
                    extractors += try TagExtractor.envoyDefaults(named: tag.name)
                } catch {
                    throw ConfigError("\(tag.path): \(error.message)")
                }
            }
        }
        return extractors
    }
}
