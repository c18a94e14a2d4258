import Capture
import ConfigFormats
import DataPlaneConfig
import Testing

/// Every bootstrap the agent writes (its snapshots) is read whole, quietly, into the model the data plane runs.
@Suite struct AgentBootstrapTests {
    @Test func theSnapshotsAreThere() {
        #expect(AgentSnapshots.names.contains("sidecar-ipv4"))
        #expect(AgentSnapshots.names.count >= 7)
    }

    @Test(arguments: AgentSnapshots.names)
    func everySnapshotParsesWithoutWarnings(name: String) throws {
        let document = try AgentSnapshots.document(name)
        let bootstrap = try ProxyBootstrap.parse(document)
        #expect(bootstrap.warnings == [])
        #expect(bootstrap.source == document)
        #expect(bootstrap.admin?.address == .socket(name == "sidecar-ipv6" ? "[::1]:15000" : "127.0.0.1:15000"))
        #expect(bootstrap.admin?.accessLogPaths == ["/dev/null"])
        #expect(bootstrap.maxActiveDownstreamConnections == 2_147_483_647)
        #expect(bootstrap.applicationLogFormat == "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t")
        #expect(bootstrap.stats.useAllDefaultTags == false)
        #expect(bootstrap.stats.tags.count == 16)
    }

    @Test func sidecarIPv4() throws {
        let bootstrap = try AgentSnapshots.bootstrap("sidecar-ipv4")
        #expect(bootstrap.node.id == "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local")
        #expect(bootstrap.node.cluster == "reviews.default")
        #expect(bootstrap.node.metadata["NAME"] == "reviews-v1-abc")
        #expect(bootstrap.node.metadata["LABELS"]?["app"] == "reviews")

        #expect(bootstrap.listeners.map(\.name) == ["0.0.0.0_15090", "0.0.0.0_15021", "virtualOutbound", "virtualInbound"])
        #expect(bootstrap.listeners.map(\.statName) == ["0.0.0.0_15090", "0.0.0.0_15021", "0.0.0.0_15001", "0.0.0.0_15006"])
        #expect(bootstrap.listeners.map(\.addresses) == [["0.0.0.0:15090"], ["0.0.0.0:15021"], ["0.0.0.0:15001"], ["0.0.0.0:15006"]])
        #expect(bootstrap.listeners.map(\.ignoreGlobalConnectionLimit) == [true, true, false, false])
        #expect(bootstrap.listeners.map(\.direction) == [.unspecified, .unspecified, .outbound, .inbound])
        #expect(bootstrap.listeners.map(\.useOriginalDestination) == [false, false, true, true])
        #expect(bootstrap.listeners.allSatisfy { !$0.transparent && $0.originalSourceMark == nil })

        let prometheus = try #require(httpManager(bootstrap.listeners[0]))
        #expect(prometheus.statPrefix == "stats")
        #expect(prometheus.virtualHosts.map(\.name) == ["backend"])
        #expect(prometheus.virtualHosts[0].domains == ["*"])
        #expect(prometheus.virtualHosts[0].routes.map(\.match) == [.prefix("/stats/prometheus")])
        #expect(prometheus.virtualHosts[0].routes.map(\.cluster) == ["prometheus_stats"])
        let readiness = try #require(httpManager(bootstrap.listeners[1]))
        #expect(readiness.statPrefix == "agent")
        #expect(readiness.virtualHosts[0].routes.map(\.match) == [.prefix("/healthz/ready")])
        #expect(readiness.virtualHosts[0].routes.map(\.cluster) == ["agent"])

        let outbound = try #require(tcpProxy(bootstrap.listeners[2]))
        #expect(outbound.statPrefix == "PassthroughCluster")
        #expect(outbound.cluster == "PassthroughCluster")
        #expect(outbound.idleTimeout == .seconds(3600))
        let inbound = try #require(tcpProxy(bootstrap.listeners[3]))
        #expect(inbound.cluster == "InboundPassthroughCluster")

        #expect(bootstrap.clusters.map(\.name) == [
            "prometheus_stats", "agent", "sds-grpc", "PassthroughCluster", "InboundPassthroughCluster",
        ])
        #expect(bootstrap.clusters.map(\.statName) == [
            "prometheus_stats;", "agent;", "sds-grpc;", "PassthroughCluster;", "InboundPassthroughCluster;",
        ])
        #expect(bootstrap.clusters.map(\.connectTimeout) == [
            .milliseconds(250), .milliseconds(250), .seconds(1), .seconds(10), .seconds(10),
        ])
        #expect(bootstrap.clusters.map(\.http2) == [false, false, true, false, false])
        #expect(bootstrap.cluster(named: "prometheus_stats")?.discovery == .staticEndpoints([.socket("127.0.0.1:15000")]))
        #expect(bootstrap.cluster(named: "agent")?.discovery == .staticEndpoints([.socket("127.0.0.1:15020")]))
        #expect(bootstrap.cluster(named: "sds-grpc")?.discovery
            == .staticEndpoints([.pipe(path: "./var/run/secrets/workload-spiffe-uds/socket")]))
        let passthrough = try #require(bootstrap.cluster(named: "PassthroughCluster"))
        #expect(passthrough.discovery == .originalDestination)
        #expect(passthrough.maxConnections == 4_294_967_295)
        #expect(passthrough.sourceAddresses == [])
        let inboundPassthrough = try #require(bootstrap.cluster(named: "InboundPassthroughCluster"))
        #expect(inboundPassthrough.discovery == .originalDestination)
        #expect(inboundPassthrough.sourceAddresses == [IPAddress("127.0.0.6")!])
        #expect(bootstrap.cluster(named: "agent")?.maxConnections == nil)
        #expect(bootstrap.cluster(named: "nope") == nil)
    }

    @Test func sidecarIPv4Stats() throws {
        let stats = try AgentSnapshots.bootstrap("sidecar-ipv4").stats
        #expect(stats.tags.first == TagSpec(
            name: "cluster_name", regex: #"^cluster(\.(.+);)"#, fixedValue: nil, path: "stats_config.stats_tags[0]"))
        #expect(stats.tags.map(\.name).contains("listener_address"))
        #expect(stats.tags.allSatisfy { $0.regex != nil && $0.fixedValue == nil })
        guard case .inclusion(let patterns) = stats.matcher else {
            Issue.record("expected an inclusion list, got \(stats.matcher)")
            return
        }
        // Istio's 13, and the 4 for the standalone capture listeners (after Istio's prefixes).
        #expect(patterns.count == 17)
        #expect(patterns[0] == PatternSpec(
            kind: .prefix, value: "reporter=", ignoreCase: false,
            path: "stats_config.stats_matcher.inclusion_list.patterns[0].prefix"))
        #expect(patterns[6] == PatternSpec(
            kind: .prefix, value: "listener.", ignoreCase: false,
            path: "stats_config.stats_matcher.inclusion_list.patterns[6].prefix"))
        #expect(patterns[10] == PatternSpec(
            kind: .suffix, value: "rbac.allowed", ignoreCase: false,
            path: "stats_config.stats_matcher.inclusion_list.patterns[10].suffix"))
        #expect(patterns[14] == PatternSpec(
            kind: .regex, value: #"vhost\..*\.route\..*"#, ignoreCase: false,
            path: "stats_config.stats_matcher.inclusion_list.patterns[14].safe_regex.regex"))
        #expect(patterns.map(\.value).contains("server"))
    }

    @Test func exitOnZeroKeepsTheActiveConnectionsGauge() throws {
        let stats = try AgentSnapshots.bootstrap("sidecar-exit-on-zero").stats
        guard case .inclusion(let patterns) = stats.matcher else {
            Issue.record("expected an inclusion list")
            return
        }
        #expect(patterns.contains { $0.kind == .suffix && $0.value == "downstream_cx_active" })
        #expect(try AgentSnapshots.bootstrap("sidecar-exit-on-zero").node.metadata["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true")
    }

    @Test func ipv6ListenersAreNamedAsEnvoyNamesThem() throws {
        let bootstrap = try AgentSnapshots.bootstrap("sidecar-ipv6")
        #expect(bootstrap.listeners.map(\.statName) == ["[__]_15090", "[__]_15021", "[__]_15001", "[__]_15006"])
        #expect(bootstrap.listeners[2].addresses == ["[::]:15001"])
        #expect(bootstrap.cluster(named: "InboundPassthroughCluster")?.sourceAddresses == [IPAddress("::6")!])
        #expect(bootstrap.cluster(named: "prometheus_stats")?.discovery == .staticEndpoints([.socket("[::1]:15000")]))
    }

    @Test func dualStackListensOnBothFamiliesAndBindsBothSources() throws {
        let bootstrap = try AgentSnapshots.bootstrap("sidecar-dual-stack")
        #expect(bootstrap.listeners.map(\.addresses) == [
            ["0.0.0.0:15090", "[::]:15090"], ["0.0.0.0:15021", "[::]:15021"],
            ["0.0.0.0:15001", "[::]:15001"], ["0.0.0.0:15006", "[::]:15006"],
        ])
        // Envoy names the scope after the first address only.
        #expect(bootstrap.listeners.map(\.statName) == ["0.0.0.0_15090", "0.0.0.0_15021", "0.0.0.0_15001", "0.0.0.0_15006"])
        #expect(bootstrap.cluster(named: "InboundPassthroughCluster")?.sourceAddresses
            == [IPAddress("127.0.0.6")!, IPAddress("::6")!])
    }

    @Test func tproxyListenersAreTransparentAndInboundMarksTheOriginalSource() throws {
        let bootstrap = try AgentSnapshots.bootstrap("sidecar-tproxy")
        let outbound = try #require(bootstrap.listeners.first { $0.name == "virtualOutbound" })
        let inbound = try #require(bootstrap.listeners.first { $0.name == "virtualInbound" })
        #expect(outbound.transparent && inbound.transparent)
        #expect(outbound.useOriginalDestination && inbound.useOriginalDestination)
        #expect(outbound.originalSourceMark == nil)
        #expect(inbound.originalSourceMark == 1337)
        #expect(bootstrap.listeners.filter(\.transparent).count == 2)
        // Istio keeps the 127.0.0.6 bind in TPROXY mode too.
        #expect(bootstrap.cluster(named: "InboundPassthroughCluster")?.sourceAddresses == [IPAddress("127.0.0.6")!])
    }

    @Test func routerHasNoPassthrough() throws {
        let bootstrap = try AgentSnapshots.bootstrap("router")
        #expect(bootstrap.listeners.map(\.name) == ["0.0.0.0_15090", "0.0.0.0_15021"])
        #expect(bootstrap.clusters.map(\.name) == ["prometheus_stats", "agent", "sds-grpc"])
        #expect(bootstrap.node.id.hasPrefix("router~"))
    }

    private func httpManager(_ listener: ListenerConfig) -> HTTPConnectionManagerConfig? {
        if case .httpConnectionManager(let manager) = listener.filter { return manager }
        return nil
    }

    private func tcpProxy(_ listener: ListenerConfig) -> TCPProxyConfig? {
        if case .tcpProxy(let proxy) = listener.filter { return proxy }
        return nil
    }
}
