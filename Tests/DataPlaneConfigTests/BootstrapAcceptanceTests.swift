import Capture
import ConfigFormats
import DataPlaneConfig
import Testing

/// What sluice-proxy accepts beyond the agent's own bootstrap, and what it warns about.
@Suite struct BootstrapAcceptanceTests {
    static let outboundProxy = "static_resources.listeners[2].filter_chains[0].filters[0].typed_config"

    private func parse(_ edit: (JSONValue) -> JSONValue) throws -> ProxyBootstrap {
        try ProxyBootstrap.parse(edit(try AgentSnapshots.document("sidecar-ipv4")))
    }

    @Test func fieldsWithoutEffectThatTheUserWouldNoticeAreWarnedAbout() throws {
        let bootstrap = try parse {
            $0.setting("static_resources.listeners[2].per_connection_buffer_limit_bytes", to: 32768)
                .setting("tracing", to: ["http": ["name": "envoy.tracers.zipkin"]])
                .appending("static_resources.listeners[2].listener_filters", [
                    "name": "envoy.filters.listener.tls_inspector",
                    "typed_config": ["@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"],
                ])
                .appending("bootstrap_extensions", [
                    "name": "envoy.bootstrap.wasm",
                    "typed_config": ["@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService"],
                ])
        }
        #expect(bootstrap.warnings == [
            "static_resources.listeners[2].listener_filters[1]: accepted and ignored: envoy.filters.listener.tls_inspector"
                + " only serves filter chain matches, and sluice-proxy has none",
            "static_resources.listeners[2].per_connection_buffer_limit_bytes: accepted and ignored: sluice-proxy sizes"
                + " its own per-connection buffers",
            "bootstrap_extensions[1]: accepted and ignored: bootstrap extension 'envoy.bootstrap.wasm' is not loaded",
            "tracing: accepted and ignored: sluice-proxy does not trace requests",
        ])
        #expect(bootstrap.listeners[2].useOriginalDestination)
    }

    @Test func fieldsWithoutEffectThatNobodyWouldNoticeAreQuiet() throws {
        let bootstrap = try parse {
            $0.setting("stats_flush_interval", to: "5s")
                .setting("watchdogs", to: ["main_thread_watchdog": ["miss_timeout": "1s"]])
                .setting("node.user_agent_name", to: "envoy")
                .setting("static_resources.listeners[2].enable_reuse_port", to: true)
                .setting("static_resources.clusters[0].dns_lookup_family", to: "V4_ONLY")
                .setting("stats_config.histogram_bucket_settings", to: [])
                .setting("\(Self.outboundProxy).hash_policy", to: [["source_ip": [:]]])
        }
        #expect(bootstrap.warnings == [])
    }

    @Test func protobufJSONSpellingsAreAccepted() throws {
        // lowerCamelCase field names, 64-bit integers as strings, enums by number.
        let bootstrap = try parse {
            $0.setting("static_resources.listeners[2].address", to: ["socketAddress": ["address": "0.0.0.0", "portValue": "15001"]])
                .setting("static_resources.listeners[2].traffic_direction", to: 1)
                .setting("\(Self.outboundProxy).stat_prefix", to: nil)
                .setting("\(Self.outboundProxy).statPrefix", to: "out")
                .setting("\(Self.outboundProxy).idleTimeout", to: "1.5s")
        }
        let listener = bootstrap.listeners[2]
        #expect(listener.addresses == ["0.0.0.0:15001"])
        #expect(listener.direction == .inbound)
        guard case .tcpProxy(let proxy) = listener.filter else {
            Issue.record("expected tcp_proxy")
            return
        }
        #expect(proxy.statPrefix == "out")
        #expect(proxy.idleTimeout == .milliseconds(1500))
    }

    @Test func aZeroIdleTimeoutTurnsItOff() throws {
        let bootstrap = try parse { $0.setting("\(Self.outboundProxy).idle_timeout", to: "0s") }
        guard case .tcpProxy(let proxy) = bootstrap.listeners[2].filter else {
            Issue.record("expected tcp_proxy")
            return
        }
        #expect(proxy.idleTimeout == nil)
    }

    @Test func statNamesFollowEnvoy() throws {
        let bootstrap = try parse {
            $0.setting("static_resources.listeners[2].stat_prefix", to: "out:bound")
                .setting("static_resources.listeners[3].name", to: nil)
                .setting("static_resources.clusters[0].alt_stat_name", to: nil)
                .setting("static_resources.clusters[1].alt_stat_name", to: "outbound|80||a.b:c")
        }
        #expect(bootstrap.listeners[2].statName == "out_bound")
        // Without a name, the listener is named by its address as stats spell it.
        #expect(bootstrap.listeners[3].name == "0.0.0.0_15006")
        #expect(bootstrap.clusters[0].statName == "prometheus_stats")
        #expect(bootstrap.clusters[1].statName == "outbound|80||a.b_c")
    }

    @Test func staticClusterVariants() throws {
        let endpoints: JSONValue = [[
            "lb_endpoints": [
                ["endpoint": ["address": ["socket_address": ["address": "192.0.2.1", "port_value": 80]]]],
                ["endpoint": ["address": ["socket_address": ["address": "2001:db8::1", "port_value": 8080]]]],
            ],
        ]]
        let bootstrap = try parse {
            $0.setting("static_resources.clusters[1].load_assignment.endpoints", to: endpoints)
                .setting("static_resources.clusters[1].lb_policy", to: "LEAST_REQUEST")
                .setting("static_resources.clusters[0].type", to: nil)
                .setting("static_resources.clusters[0].connect_timeout", to: nil)
        }
        #expect(bootstrap.clusters[1].discovery == .staticEndpoints([.socket("192.0.2.1:80"), .socket("[2001:db8::1]:8080")]))
        #expect(bootstrap.warnings == [
            "static_resources.clusters[1].lb_policy: accepted and ignored: LEAST_REQUEST is not implemented,"
                + " the endpoints take turns (ROUND_ROBIN)",
        ])
        // STATIC is the default type, five seconds the default connect timeout.
        #expect(bootstrap.clusters[0].discovery == .staticEndpoints([.socket("127.0.0.1:15000")]))
        #expect(bootstrap.clusters[0].connectTimeout == .seconds(5))
    }

    @Test func adminIsOptional() throws {
        #expect(try parse { $0.setting("admin", to: nil) }.admin == nil)
        // Envoy starts no admin listener without an address.
        #expect(try parse { $0.setting("admin.address", to: nil) }.admin == nil)
        let onPipe = try parse { $0.setting("admin.address", to: ["pipe": ["path": "/tmp/admin.sock"]]) }
        #expect(onPipe.admin?.address == .pipe(path: "/tmp/admin.sock"))
    }

    @Test func anEmptyBootstrapIsAnEmptyProxy() throws {
        let bootstrap = try ProxyBootstrap.parse([:])
        #expect(bootstrap.listeners.isEmpty && bootstrap.clusters.isEmpty)
        #expect(bootstrap.admin == nil)
        #expect(bootstrap.node.id == "" && bootstrap.node.metadata == .object([:]))
        #expect(bootstrap.stats.useAllDefaultTags)
        #expect(bootstrap.stats.matcher == .acceptAll)
        #expect(bootstrap.maxActiveDownstreamConnections == nil)
        #expect(bootstrap.warnings == [])
    }

    @Test func statsMatcherForms() throws {
        let rejectAll = try ProxyBootstrap.parse(["stats_config": ["stats_matcher": ["reject_all": true]]])
        #expect(rejectAll.stats.matcher == .rejectAll)
        let exclusion = try ProxyBootstrap.parse(["stats_config": [
            "stats_matcher": ["exclusion_list": ["patterns": [["exact": "server.uptime", "ignore_case": true], ["contains": "rq_"]]]],
            "stats_tags": [["tag_name": "mesh", "fixed_value": "istio"], ["tag_name": "envoy.cluster_name"]],
        ]])
        #expect(exclusion.stats.matcher == .exclusion([
            PatternSpec(kind: .exact, value: "server.uptime", ignoreCase: true,
                        path: "stats_config.stats_matcher.exclusion_list.patterns[0].exact"),
            PatternSpec(kind: .contains, value: "rq_", ignoreCase: false,
                        path: "stats_config.stats_matcher.exclusion_list.patterns[1].contains"),
        ]))
        #expect(exclusion.stats.tags == [
            TagSpec(name: "mesh", regex: nil, fixedValue: "istio", path: "stats_config.stats_tags[0]"),
            TagSpec(name: "envoy.cluster_name", regex: nil, fixedValue: nil, path: "stats_config.stats_tags[1]"),
        ])
    }

    @Test func jsonApplicationLogFormat() throws {
        let bootstrap = try ProxyBootstrap.parse([
            "application_log_config": ["log_format": ["json_format": ["level": "%l", "msg": "%j"]]],
        ])
        #expect(bootstrap.applicationLogFormat == nil)
        #expect(bootstrap.applicationLogJSONFormat == ["level": "%l", "msg": "%j"])
    }
}
