import Bootstrap
import ConfigFormats
import Testing

/// Facts about the bootstrap that must hold whatever the snapshots say.
@Suite struct BootstrapStructureTests {
    private func clusters(_ input: BootstrapInput) -> JSONValue? {
        JSONValue.path(BootstrapBuilder.build(input), "static_resources", "clusters")
    }

    private func listeners(_ input: BootstrapInput) -> JSONValue? {
        JSONValue.path(BootstrapBuilder.build(input), "static_resources", "listeners")
    }

    private func port(of listener: JSONValue?) -> Int64? {
        JSONValue.path(listener, "address", "socket_address", "port_value")?.intValue
    }

    @Test func topLevelKeysComeInAFixedOrderWithoutDynamicResources() throws {
        let bootstrap = try #require(BootstrapBuilder.build(BootstrapFixtures.sidecarIPv4).objectValue)
        #expect(bootstrap.keys == [
            "node", "admin", "static_resources", "stats_config", "layered_runtime", "bootstrap_extensions",
            "overload_manager", "application_log_config",
        ])
        #expect(bootstrap["dynamic_resources"] == nil)
    }

    @Test(arguments: BootstrapFixtures.snapshots.map(\.name))
    func nothingReferencesAnXDSCluster(name: String) throws {
        let input = try #require(BootstrapFixtures.snapshots.first { $0.name == name }).input
        let names = clusters(input)?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(!names.isEmpty)
        #expect(!names.contains("xds-grpc"))
        // The stats matcher keeps the prefix "cluster.xds-grpc" as Istio does; nothing else may name it.
        let text = BootstrapBuilder.build(input).renderedJSON().replacingOccurrences(of: "\"cluster.xds-grpc\"", with: "")
        #expect(!text.contains("xds-grpc"))
        #expect(!text.contains("ads_config"))
    }

    @Test func sdsClusterIsNamedForIstiodAndSpeaksHTTP2OverThePipe() throws {
        var input = BootstrapFixtures.sidecarIPv4
        input.sdsSocketPath = "./var/run/secrets/workload-spiffe-uds/custom-socket"
        let sds = try #require(clusters(input)?.named("sds-grpc"))
        #expect(sds["type"] == "STATIC")
        #expect(sds["connect_timeout"] == "1s")
        let endpoint = JSONValue.path(sds, "load_assignment", "endpoints")?.arrayValue?.first
        let lbEndpoint = endpoint?["lb_endpoints"]?.arrayValue?.first
        #expect(JSONValue.path(lbEndpoint, "endpoint", "address", "pipe", "path")
            == "./var/run/secrets/workload-spiffe-uds/custom-socket")
        let options = JSONValue.path(
            sds, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        #expect(options?["@type"] == "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        #expect(JSONValue.path(options, "explicit_http_config", "http2_protocol_options") == [:])
    }

    @Test func statsAndAgentClustersReachAdminAndStatusPortOnLocalhost() throws {
        var input = BootstrapFixtures.sidecarIPv6
        input.adminPort = 25000
        input.statusPort = 25020
        let all = clusters(input)
        for (name, port) in [("prometheus_stats", 25000), ("agent", 25020)] {
            let cluster = try #require(all?.named(name))
            #expect(cluster["connect_timeout"] == "0.250s")
            let address = JSONValue.path(
                cluster["load_assignment"]?["endpoints"]?.arrayValue?.first?["lb_endpoints"]?.arrayValue?.first,
                "endpoint", "address", "socket_address")
            #expect(address?["address"] == "::1")
            #expect(address?["port_value"]?.intValue == Int64(port))
        }
        let admin = JSONValue.path(BootstrapBuilder.build(input), "admin", "address", "socket_address")
        #expect(admin?["address"] == "::1")
        #expect(admin?["port_value"] == 25000)
    }

    @Test func sidecarListensOnMetricsReadinessAndBothCapturePorts() {
        var input = BootstrapFixtures.sidecarIPv4
        input.outboundCapturePort = 25001
        input.inboundCapturePort = 25006
        input.readinessPort = 25021
        input.prometheusPort = 25090
        let all = listeners(input)?.arrayValue ?? []
        #expect(all.map { $0["name"]?.stringValue ?? "" }
            == ["0.0.0.0_25090", "0.0.0.0_25021", "virtualOutbound", "virtualInbound"])
        #expect(all.map { port(of: $0) } == [25090, 25021, 25001, 25006])
    }

    @Test func routerHasNoPassthroughClustersNorCaptureListeners() {
        let all = listeners(BootstrapFixtures.router)?.arrayValue ?? []
        #expect(all.map { port(of: $0) } == [15090, 15021])
        let names = clusters(BootstrapFixtures.router)?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(names == ["prometheus_stats", "agent", "sds-grpc"])
    }

    @Test func interceptionNoneKeepsClustersButBuildsNoCaptureListeners() {
        var input = BootstrapFixtures.sidecarIPv4
        input.interceptionMode = .none
        #expect(listeners(input)?.arrayValue?.map { port(of: $0) } == [15090, 15021])
        #expect(clusters(input)?.named("PassthroughCluster") != nil)
    }

    @Test func captureListenersRestoreTheOriginalDestinationAndPassThrough() throws {
        let all = listeners(BootstrapFixtures.sidecarIPv4)
        for (name, cluster, direction) in [
            ("virtualOutbound", "PassthroughCluster", "OUTBOUND"), ("virtualInbound", "InboundPassthroughCluster", "INBOUND"),
        ] {
            let listener = try #require(all?.named(name))
            let filters = listener["listener_filters"]?.arrayValue ?? []
            #expect(filters.map { $0["name"]?.stringValue } == ["envoy.filters.listener.original_dst"])
            #expect(JSONValue.path(filters.first, "typed_config", "@type")
                == "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst")
            let proxy = listener["filter_chains"]?.arrayValue?.first?["filters"]?.arrayValue?.first
            #expect(proxy?["name"] == "envoy.filters.network.tcp_proxy")
            #expect(JSONValue.path(proxy, "typed_config", "@type")
                == "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")
            #expect(JSONValue.path(proxy, "typed_config", "cluster")?.stringValue == cluster)
            #expect(JSONValue.path(proxy, "typed_config", "stat_prefix")?.stringValue == cluster)
            #expect(listener["traffic_direction"]?.stringValue == direction)
            #expect(listener["transparent"] == nil)
            #expect(JSONValue.path(listener, "address", "socket_address", "address") == "0.0.0.0")
        }
    }

    @Test func passthroughClustersUseTheOriginalDestination() throws {
        for name in ["PassthroughCluster", "InboundPassthroughCluster"] {
            let cluster = try #require(clusters(BootstrapFixtures.sidecarIPv4)?.named(name))
            #expect(cluster["type"] == "ORIGINAL_DST")
            #expect(cluster["lb_policy"] == "CLUSTER_PROVIDED")
            #expect(cluster["load_assignment"] == nil)
            let limits = cluster["circuit_breakers"]?["thresholds"]?.arrayValue?.first
            #expect(limits?["max_connections"]?.intValue == 4_294_967_295)
        }
        #expect(clusters(BootstrapFixtures.sidecarIPv4)?.named("PassthroughCluster")?["upstream_bind_config"] == nil)
    }

    @Test(arguments: [
        (BootstrapInput.IPMode.ipv4, "127.0.0.6", [String]()),
        (.ipv6, "::6", []),
        (.dual, "127.0.0.6", ["::6"]),
    ])
    func inboundPassthroughBindsTheSourceTheCaptureRulesLetThrough(
        mode: BootstrapInput.IPMode, source: String, extra: [String]
    ) throws {
        var input = BootstrapFixtures.sidecarIPv4
        input.ipMode = mode
        let bind = try #require(clusters(input)?.named("InboundPassthroughCluster")?["upstream_bind_config"])
        #expect(bind["source_address"] == ["address": .string(source), "port_value": 0])
        let extras = bind["extra_source_addresses"]?.arrayValue?
            .compactMap { JSONValue.path($0, "address", "address")?.stringValue } ?? []
        #expect(extras == extra)
    }

    @Test func defaultsFollowTheIPModeUntilSet() {
        #expect(BootstrapFixtures.sidecarIPv6.inboundPassthroughSourceAddresses == ["::6"])
        #expect(BootstrapFixtures.sidecarIPv6.localhostAddress == "::1")
        #expect(BootstrapFixtures.sidecarDualStack.inboundPassthroughSourceAddresses == ["127.0.0.6", "::6"])
        #expect(BootstrapFixtures.sidecarDualStack.localhostAddress == "127.0.0.1")
        var input = BootstrapFixtures.sidecarIPv4
        input.ipMode = .ipv6
        #expect(input.localhostAddress == "::1")
        input.localhostAddress = "127.0.0.1"
        input.inboundPassthroughSourceAddresses = ["127.0.0.6"]
        input.ipMode = .dual
        #expect(input.localhostAddress == "127.0.0.1")
        #expect(input.inboundPassthroughSourceAddresses == ["127.0.0.6"])
    }

    @Test func tproxyMakesCaptureListenersTransparentAndKeepsTheClientSourceInbound() throws {
        let all = listeners(BootstrapFixtures.sidecarTPROXY)
        let outbound = try #require(all?.named("virtualOutbound"))
        let inbound = try #require(all?.named("virtualInbound"))
        #expect(outbound["transparent"] == true)
        #expect(inbound["transparent"] == true)
        #expect(outbound["listener_filters"]?.arrayValue?.count == 1)
        let inboundFilters = inbound["listener_filters"]?.arrayValue ?? []
        #expect(inboundFilters.map { $0["name"]?.stringValue }
            == ["envoy.filters.listener.original_dst", "envoy.filters.listener.original_src"])
        #expect(inboundFilters.last?["typed_config"] == [
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc", "mark": 1337,
        ])
    }

    @Test func dualStackAddsTheIPv6WildcardToEveryWildcardListener() {
        for listener in listeners(BootstrapFixtures.sidecarDualStack)?.arrayValue ?? [] {
            #expect(JSONValue.path(listener, "address", "socket_address", "address") == "0.0.0.0")
            let additional = listener["additional_addresses"]?.arrayValue ?? []
            #expect(additional.count == 1)
            #expect(JSONValue.path(additional.first, "address", "socket_address", "address") == "::")
            #expect(JSONValue.path(additional.first, "address", "socket_address", "port_value")
                == JSONValue.path(listener, "address", "socket_address", "port_value"))
        }
        for listener in listeners(BootstrapFixtures.sidecarIPv6)?.arrayValue ?? [] {
            #expect(JSONValue.path(listener, "address", "socket_address", "address") == "::")
            #expect(listener["additional_addresses"] == nil)
        }
    }

    @Test func istioListenersBypassConnectionLimitsAndOverload() throws {
        let all = listeners(BootstrapFixtures.sidecarIPv4)
        for name in ["0.0.0.0_15090", "0.0.0.0_15021"] {
            let listener = try #require(all?.named(name))
            #expect(listener["ignore_global_conn_limit"] == true)
            #expect(listener["bypass_overload_manager"] == true)
        }
        let readiness = try #require(all?.named("0.0.0.0_15021"))
        let manager = JSONValue.path(readiness["filter_chains"]?.arrayValue?.first?["filters"]?.arrayValue?.first, "typed_config")
        #expect(manager?["stat_prefix"] == "agent")
        let route = JSONValue.path(manager, "route_config", "virtual_hosts")?.arrayValue?.first?["routes"]?.arrayValue?.first
        #expect(route == ["match": ["prefix": "/healthz/ready"], "route": ["cluster": "agent"]])
        #expect(JSONValue.path(manager?["http_filters"]?.arrayValue?.first, "typed_config", "@type")
            == "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")
    }

    @Test func metricsLocalhostOnlyBindsTheMetricsListenerToLoopback() throws {
        var input = BootstrapFixtures.sidecarIPv4
        input.metricsLocalhostOnly = true
        let listener = try #require(listeners(input)?.arrayValue?.first)
        #expect(listener["name"] == "127.0.0.1_15090")
        #expect(JSONValue.path(listener, "address", "socket_address", "address") == "127.0.0.1")
        // Readiness must stay reachable for the kubelet.
        #expect(JSONValue.path(listeners(input)?.named("0.0.0.0_15021"), "address", "socket_address", "address") == "0.0.0.0")
    }

    @Test func exitOnZeroKeepsTheActiveConnectionsStat() {
        func suffixes(_ input: BootstrapInput) -> [String] {
            let patterns = JSONValue.path(
                BootstrapBuilder.build(input), "stats_config", "stats_matcher", "inclusion_list", "patterns")
            return patterns?.arrayValue?.compactMap { $0["suffix"]?.stringValue } ?? []
        }
        #expect(suffixes(BootstrapFixtures.sidecarIPv4) == ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"])
        #expect(suffixes(BootstrapFixtures.sidecarExitOnZero).last == "downstream_cx_active")
    }

    @Test func statsInclusionListPutsUserPatternsBeforeIstiosRequiredOnes() {
        var input = BootstrapFixtures.sidecarIPv4
        input.statsInclusionPrefixes = ["http.10.1.2.3_"]
        input.statsInclusionRegexps = ["upstream_rq_.*"]
        let patterns = JSONValue.path(
            BootstrapBuilder.build(input), "stats_config", "stats_matcher", "inclusion_list", "patterns")?.arrayValue ?? []
        #expect(patterns.first == ["prefix": "reporter="])
        #expect(patterns.dropFirst().first == ["prefix": "http.10.1.2.3_"])
        #expect(patterns.contains(["safe_regex": ["regex": "upstream_rq_.*"]]))
        #expect(Array(patterns.suffix(2)) == [["prefix": "component"], ["prefix": "istio"]])
        #expect(JSONValue.path(BootstrapBuilder.build(input), "stats_config", "use_all_default_tags") == false)
    }

    @Test func runtimeValuesOverrideIstiosStaticLayerWithSortedKeys() throws {
        var input = BootstrapFixtures.sidecarIPv4
        input.runtimeValues = [
            "re2.max_program_size.error_level": "",
            "envoy.reloadable_features.http_reject_path_with_fragment": "true",
            "a.custom.key": "42",
        ]
        let layers = JSONValue.path(BootstrapBuilder.build(input), "layered_runtime", "layers")?.arrayValue ?? []
        #expect(layers.count == 2)
        #expect(layers.last == ["name": "admin", "admin_layer": [:]])
        let flags = try #require(layers.first?["static_layer"]?.objectValue)
        #expect(flags["re2.max_program_size.error_level"] == nil)
        #expect(flags["envoy.reloadable_features.http_reject_path_with_fragment"] == true)
        #expect(flags["a.custom.key"] == "42")
        #expect(flags.keys == flags.keys.sorted())

        let defaults = try #require(
            JSONValue.path(BootstrapBuilder.build(BootstrapFixtures.sidecarIPv4), "layered_runtime", "layers")?
                .arrayValue?.first?["static_layer"]?.objectValue)
        #expect(defaults["re2.max_program_size.error_level"] == "32768")
        let useOriginalDst = "envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst"
        #expect(defaults[useOriginalDst] == true)
    }

    @Test func overloadManagerConfiguresTheGlobalConnectionLimit() {
        let monitor = JSONValue.path(
            BootstrapBuilder.build(BootstrapFixtures.sidecarIPv4), "overload_manager", "resource_monitors")?.arrayValue?.first
        #expect(monitor?["name"] == "envoy.resource_monitors.global_downstream_max_connections")
        #expect(JSONValue.path(monitor, "typed_config", "max_active_downstream_connections") == 2_147_483_647)
    }

    @Test func nodeCarriesIdentityLocalityAndMetadataVerbatim() {
        let input = BootstrapFixtures.sidecarIPv4
        let node = BootstrapBuilder.build(input)["node"]
        #expect(node?["id"]?.stringValue == input.nodeID)
        #expect(node?["cluster"] == "reviews.default")
        #expect(node?["locality"] == ["region": "eu-west-1", "zone": "eu-west-1a"])
        #expect(node?["metadata"] == .object(input.metadata))
        #expect(BootstrapBuilder.build(BootstrapFixtures.router)["node"]?["locality"] == nil)
    }

    @Test func logFormatFollowsLogAsJSON() {
        var input = BootstrapFixtures.sidecarIPv4
        let text = JSONValue.path(BootstrapBuilder.build(input), "application_log_config", "log_format")
        #expect(text?["text_format"]?.stringValue?.hasPrefix("%Y-%m-%dT%T.%fZ\t%l\tenvoy %n") == true)
        input.logAsJSON = true
        let json = JSONValue.path(BootstrapBuilder.build(input), "application_log_config", "log_format")
        #expect(json?["text_format"] == nil)
        #expect(json?["json_format"]?["msg"] == "%j")
    }

    @Test func adminWritesItsAccessLogNowhere() {
        let admin = BootstrapBuilder.build(BootstrapFixtures.sidecarIPv4)["admin"]
        #expect(admin?["access_log"]?.arrayValue?.first?["typed_config"] == [
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/dev/null",
        ])
        #expect(admin?["profile_path"] == "/var/lib/istio/data/envoy.prof")
    }
}
