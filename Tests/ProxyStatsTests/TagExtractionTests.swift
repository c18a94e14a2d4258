import Testing
@testable import ProxyStats

private func tagged(_ name: String, _ tags: [(String, String)]) -> TaggedStatName {
    TaggedStatName(extractedName: name, tags: tags.map { StatTag(name: $0.0, value: $0.1) })
}

@Suite struct IstioTagExtractionTests {
    let producer: TagProducer

    init() throws {
        producer = TagProducer(try IstioBootstrap.tagExtractors())
    }

    @Test func clusterNameEndsAtTheSemicolon() {
        #expect(producer.tags(for: "cluster.PassthroughCluster;.upstream_cx_total")
            == tagged("cluster.upstream_cx_total", [("cluster_name", "PassthroughCluster")]))
        #expect(producer.tags(for: "cluster.outbound|80||backend.ns.svc.cluster.local;.upstream_cx_active")
            == tagged("cluster.upstream_cx_active", [("cluster_name", "outbound|80||backend.ns.svc.cluster.local")]))
    }

    @Test func listenerAddressForIPv4AndIPv6Listeners() {
        #expect(producer.tags(for: "listener.0.0.0.0_15001.downstream_cx_total")
            == tagged("listener.downstream_cx_total", [("listener_address", "0.0.0.0_15001")]))
        #expect(producer.tags(for: "listener.[__]_15006.downstream_cx_active")
            == tagged("listener.downstream_cx_active", [("listener_address", "[__]_15006")]))
        // Istio has no worker_id tag: the worker stays in the name.
        #expect(producer.tags(for: "listener.0.0.0.0_15001.worker_1.downstream_cx_total")
            == tagged("listener.worker_1.downstream_cx_total", [("listener_address", "0.0.0.0_15001")]))
    }

    @Test func tcpPrefix() {
        #expect(producer.tags(for: "tcp.PassthroughCluster.downstream_cx_total")
            == tagged("tcp.downstream_cx_total", [("tcp_prefix", "PassthroughCluster")]))
    }

    @Test func httpStats() {
        // Istio's http_conn_manager_prefix wants a `;` after the prefix, so only the code class is cut.
        #expect(producer.tags(for: "http.agent.downstream_rq_2xx")
            == tagged("http.agent.downstream_rq", [("response_code_class", "2xx")]))
        // Unprefixed extractors come first, so the code's tag precedes the prefix's.
        #expect(producer.tags(for: "http.inbound_0.0.0.0_8080;.downstream_rq_200")
            == tagged("http.downstream_rq", [("response_code", "200"), ("http_conn_manager_prefix", "inbound_0.0.0.0_8080")]))
    }

    @Test func untaggedNamesStayWhole() {
        #expect(producer.tags(for: "server.state") == tagged("server.state", []))
        #expect(producer.tags(for: "cluster_manager.active_clusters") == tagged("cluster_manager.active_clusters", []))
    }

    @Test func rbacAndWatchdog() {
        #expect(producer.tags(for: "http.inbound_0.0.0.0_8080;.rbac.allowed")
            == tagged("http.rbac", [("authz_enforce_result", "allowed"), ("http_conn_manager_prefix", "inbound_0.0.0.0_8080")]))
        #expect(producer.tags(for: "server.main_thread.watchdog_miss")
            == tagged("server.watchdog_miss", [("thread_name", "main_thread")]))
    }
}

@Suite struct EnvoyDefaultTagExtractionTests {
    let producer = TagProducer(TagExtractor.envoyDefaults)

    @Test func defaultsAreEnvoysNamesInEnvoysOrder() {
        #expect(TagExtractor.envoyDefaults.map(\.name) == [
            "envoy.response_code", "envoy.response_code_class", "envoy.http_conn_manager_prefix",
            "envoy.worker_id", "envoy.listener_address", "envoy.rds_route_config",
            "envoy.virtual_cluster", "envoy.tcp_prefix", "envoy.cluster_name", "envoy.http_conn_manager_prefix",
            "envoy.virtual_host", "envoy.route",
        ])
    }

    @Test func clusterName() {
        #expect(producer.tags(for: "cluster.PassthroughCluster.upstream_cx_total")
            == tagged("cluster.upstream_cx_total", [("envoy.cluster_name", "PassthroughCluster")]))
        #expect(producer.tags(for: "cluster.xds-grpc.upstream_cx_active")
            == tagged("cluster.upstream_cx_active", [("envoy.cluster_name", "xds-grpc")]))
    }

    @Test func listenerAddressAndWorker() {
        #expect(producer.tags(for: "listener.0.0.0.0_15001.downstream_cx_total")
            == tagged("listener.downstream_cx_total", [("envoy.listener_address", "0.0.0.0_15001")]))
        #expect(producer.tags(for: "listener.[__]_15006.downstream_cx_active")
            == tagged("listener.downstream_cx_active", [("envoy.listener_address", "[__]_15006")]))
        // worker_id has no prefix token, so it runs (and lists) before listener_address.
        #expect(producer.tags(for: "listener.0.0.0.0_15001.worker_1.downstream_cx_total")
            == tagged("listener.worker_downstream_cx_total",
                      [("envoy.worker_id", "1"), ("envoy.listener_address", "0.0.0.0_15001")]))
        #expect(producer.tags(for: "listener_manager.worker_0.dispatcher.loop_duration_us")
            == tagged("listener_manager.worker_dispatcher.loop_duration_us", [("envoy.worker_id", "0")]))
    }

    @Test func adminListenerKeepsItsName() {
        #expect(producer.tags(for: "listener.admin.downstream_cx_total")
            == tagged("listener.admin.downstream_cx_total", []))
    }

    @Test func tcpPrefix() {
        #expect(producer.tags(for: "tcp.PassthroughCluster.downstream_cx_total")
            == tagged("tcp.downstream_cx_total", [("envoy.tcp_prefix", "PassthroughCluster")]))
        // The token pattern needs a stat after the prefix.
        #expect(producer.tags(for: "tcp.PassthroughCluster") == tagged("tcp.PassthroughCluster", []))
    }

    @Test func httpConnectionManagerAndResponseCodes() {
        #expect(producer.tags(for: "http.agent.downstream_rq_2xx")
            == tagged("http.downstream_rq_xx",
                      [("envoy.response_code_class", "2"), ("envoy.http_conn_manager_prefix", "agent")]))
        #expect(producer.tags(for: "http.agent.downstream_rq_200")
            == tagged("http.downstream_rq", [("envoy.response_code", "200"), ("envoy.http_conn_manager_prefix", "agent")]))
        #expect(producer.tags(for: "listener.0.0.0.0_15006.http.inbound.downstream_rq_5xx")
            == tagged("listener.http.downstream_rq_xx", [
                ("envoy.response_code_class", "5"), ("envoy.http_conn_manager_prefix", "inbound"),
                ("envoy.listener_address", "0.0.0.0_15006"),
            ]))
    }

    @Test func routeConfigNamesWithDots() {
        // `[\w-\.]` in Envoy's pattern is rewritten for Swift Regex.
        #expect(producer.tags(for: "http.agent.rds.my-route.v1.update_success")
            == tagged("http.rds.update_success",
                      [("envoy.rds_route_config", "my-route.v1"), ("envoy.http_conn_manager_prefix", "agent")]))
    }

    @Test func virtualHostsAndRoutes() {
        #expect(producer.tags(for: "vhost.backend.route.r1.upstream_rq_completed")
            == tagged("vhost.route.upstream_rq_completed", [("envoy.virtual_host", "backend"), ("envoy.route", "r1")]))
        #expect(producer.tags(for: "vhost.backend.vcluster.other.upstream_rq_retry")
            == tagged("vhost.vcluster.upstream_rq_retry",
                      [("envoy.virtual_cluster", "other"), ("envoy.virtual_host", "backend")]))
    }

    @Test func serverStatsHaveNoTags() {
        #expect(producer.tags(for: "server.state") == tagged("server.state", []))
    }
}

@Suite struct TagExtractorRuleTests {
    @Test func oneCaptureGroupIsBothCutAndValue() throws {
        let producer = TagProducer([try TagExtractor(name: "service", regex: #"^(foo)\."#)])
        #expect(producer.tags(for: "foo.bar") == tagged(".bar", [("service", "foo")]))
    }

    @Test func regexWithoutCaptureGroupNeverExtracts() throws {
        let producer = TagProducer([try TagExtractor(name: "x", regex: "^foo")])
        #expect(producer.tags(for: "foo.bar") == tagged("foo.bar", []))
    }

    @Test func extractorsAllSeeTheOriginalName() throws {
        // The second regex needs the text the first one cuts: it still matches, as in Envoy.
        let producer = TagProducer([
            try TagExtractor(name: "a", regex: #"^x\.((\w+)\.)"#),
            try TagExtractor(name: "b", regex: #"^x\.\w+\.((\w+)\.)"#),
        ])
        #expect(producer.tags(for: "x.one.two.stat") == tagged("x.stat", [("a", "one"), ("b", "two")]))
    }

    @Test func firstMatchingExtractorOfANameWins() throws {
        let producer = TagProducer([
            try TagExtractor(name: "p", regex: #"^a\.((\w+)\.)"#),
            try TagExtractor(name: "p", regex: #"^a\.\w+\.((\w+)\.)"#),
        ])
        #expect(producer.tags(for: "a.b.c.d") == tagged("a.c.d", [("p", "b")]))
    }

    @Test func fixedValueTagsEveryStatWithoutCutting() throws {
        let producer = TagProducer(TagExtractor.envoyDefaults + [TagExtractor(name: "mesh", fixedValue: "m1")])
        #expect(producer.tags(for: "server.state") == tagged("server.state", [("mesh", "m1")]))
        // Unprefixed (the fixed value) before prefixed (cluster_name).
        #expect(producer.tags(for: "cluster.a.upstream_cx_total")
            == tagged("cluster.upstream_cx_total", [("mesh", "m1"), ("envoy.cluster_name", "a")]))
    }

    @Test func badRegexNamesTagAndPattern() {
        #expect {
            _ = try TagExtractor(name: "cluster_name", regex: "^cluster(")
        } throws: { error in
            let message = (error as? StatsError)?.message ?? ""
            return message.contains("tag 'cluster_name'") && message.contains("'^cluster('")
        }
    }

    @Test(arguments: [
        ("a.**.b.c.$", "a.x.b.b.c.d", "d", "a.x.b.b.c"),
        ("mongo.*.collection.$.**.query.*", "mongo.p.collection.users.x.y.query.total", "users",
         "mongo.p.collection.x.y.query.total"),
        ("$.http_local_rate_limit.**", "limiter.http_local_rate_limit.rate_limited", "limiter",
         "http_local_rate_limit.rate_limited"),
        ("vhost.*.route.$.**", "vhost.v.route.r.x", "r", "vhost.v.route.x"),
    ])
    func tokenPatterns(_ example: (String, String, String, String)) {
        let producer = TagProducer([TagExtractor(builtIn: "t", tokens: example.0)])
        #expect(producer.tags(for: example.1) == tagged(example.3, [("t", example.2)]))
    }

    @Test(arguments: [("tcp.$.**", "tcp.only"), ("vhost.*.route.$.**", "vhost.v.routes.r.x"), ("a.**.b.$", "a.x.c.d")])
    func tokenPatternsThatDoNotMatch(_ example: (String, String)) {
        let producer = TagProducer([TagExtractor(builtIn: "t", tokens: example.0)])
        #expect(producer.tags(for: example.1).tags.isEmpty)
    }
}

@Suite struct DefaultTagLookupTests {
    @Test func aTagWithoutRegexNamesEnvoysDefaults() throws {
        #expect(try TagExtractor.envoyDefaults(named: "envoy.http_conn_manager_prefix").count == 2)
        let producer = TagProducer(try TagExtractor.envoyDefaults(named: "envoy.cluster_name"))
        #expect(producer.tags(for: "cluster.a.upstream_cx_total")
            == tagged("cluster.upstream_cx_total", [("envoy.cluster_name", "a")]))
    }

    @Test func anUnknownNameIsAnError() {
        #expect {
            _ = try TagExtractor.envoyDefaults(named: "cluster_name")
        } throws: { error in
            let message = (error as? StatsError)?.message ?? ""
            return message.contains("'cluster_name'") && message.contains("envoy.cluster_name")
        }
    }
}
