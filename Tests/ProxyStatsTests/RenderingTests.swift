import Testing
@testable import ProxyStats

/// A small sidecar-like store with Istio's tags (no inclusion list, so everything shows).
private func istioStore() throws -> StatsStore {
    let store = StatsStore(tagExtractors: try IstioBootstrap.tagExtractors())
    store.counter("cluster.PassthroughCluster;.upstream_cx_total").increment(by: 3)
    _ = store.counter("cluster.BlackHoleCluster;.upstream_cx_total")
    store.counter("listener.0.0.0.0_15001.downstream_cx_total").increment(by: 5)
    store.counter("tcp.PassthroughCluster.downstream_cx_total").increment(by: 2)
    store.gauge("listener.0.0.0.0_15001.downstream_cx_active").increment()
    store.gauge("server.state").set(0)
    store.gauge("server.live").set(1)
    return store
}

@Suite struct TextRenderingTests {
    @Test func linesSortedByNameCountersAndGaugesTogether() throws {
        #expect(try istioStore().render(.text, query: StatsQuery()) == """
            cluster.BlackHoleCluster;.upstream_cx_total: 0
            cluster.PassthroughCluster;.upstream_cx_total: 3
            listener.0.0.0.0_15001.downstream_cx_active: 1
            listener.0.0.0.0_15001.downstream_cx_total: 5
            server.live: 1
            server.state: 0
            tcp.PassthroughCluster.downstream_cx_total: 2

            """)
    }

    @Test func usedOnlyFilterAndType() throws {
        let store = try istioStore()
        #expect(store.render(.text, query: StatsQuery(usedOnly: true)).split(separator: "\n").count == 6)
        #expect(store.render(.text, query: StatsQuery(filter: "PassthroughCluster")) == """
            cluster.PassthroughCluster;.upstream_cx_total: 3
            tcp.PassthroughCluster.downstream_cx_total: 2

            """)
        #expect(store.render(.text, query: StatsQuery(filter: "^server\\.")) == "server.live: 1\nserver.state: 0\n")
        #expect(store.render(.text, query: StatsQuery(type: .gauges)) == """
            listener.0.0.0.0_15001.downstream_cx_active: 1
            server.live: 1
            server.state: 0

            """)
        #expect(store.render(.text, query: StatsQuery(filter: "listener", type: .counters))
            == "listener.0.0.0.0_15001.downstream_cx_total: 5\n")
        #expect(store.render(.text, query: StatsQuery(type: .histograms)) == "")
        #expect(store.render(.text, query: StatsQuery(type: .textReadouts)) == "")
    }

    @Test func negativeGaugeAndLargeCounter() {
        let store = StatsStore()
        store.gauge("g").decrement()
        store.counter("c").increment(by: UInt64.max)
        #expect(store.render(.text, query: StatsQuery()) == "c: 18446744073709551615\ng: -1\n")
    }
}

@Suite struct JSONRenderingTests {
    @Test func envoysStatsArray() throws {
        let store = try istioStore()
        #expect(store.render(.json, query: StatsQuery(filter: "listener|tcp")) == #"{"stats":["#
            + #"{"name":"listener.0.0.0.0_15001.downstream_cx_active","value":1},"#
            + #"{"name":"listener.0.0.0.0_15001.downstream_cx_total","value":5},"#
            + #"{"name":"tcp.PassthroughCluster.downstream_cx_total","value":2}]}"#)
        #expect(store.render(.json, query: StatsQuery(type: .counters)).hasPrefix(
            #"{"stats":[{"name":"cluster.BlackHoleCluster;.upstream_cx_total","value":0},"#))
        #expect(store.render(.json, query: StatsQuery(type: .histograms)) == #"{"stats":[]}"#)
    }

    @Test func namesAreEscapedAsEnvoysJsonSanitizer() {
        let store = StatsStore(tagExtractors: [])
        store.counter("a\"b\\c\u{01}\td.é").increment()
        #expect(store.render(.json, query: StatsQuery()) == #"{"stats":[{"name":"a\"b\\c\u0001\td.é","value":1}]}"#)
    }
}

@Suite struct PrometheusRenderingTests {
    @Test func familiesWithIstioTags() throws {
        #expect(try istioStore().render(.prometheus, query: StatsQuery()) == """
            # TYPE envoy_cluster_upstream_cx_total counter
            envoy_cluster_upstream_cx_total{cluster_name="BlackHoleCluster"} 0
            envoy_cluster_upstream_cx_total{cluster_name="PassthroughCluster"} 3
            # TYPE envoy_listener_downstream_cx_total counter
            envoy_listener_downstream_cx_total{listener_address="0.0.0.0_15001"} 5
            # TYPE envoy_tcp_downstream_cx_total counter
            envoy_tcp_downstream_cx_total{tcp_prefix="PassthroughCluster"} 2
            # TYPE envoy_listener_downstream_cx_active gauge
            envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15001"} 1
            # TYPE envoy_server_live gauge
            envoy_server_live{} 1
            # TYPE envoy_server_state gauge
            envoy_server_state{} 0

            """)
    }

    @Test func usedOnlyAndFilterApplyTypeDoesNot() throws {
        let store = try istioStore()
        #expect(store.render(.prometheus, query: StatsQuery(filter: "^cluster\\.", usedOnly: true)) == """
            # TYPE envoy_cluster_upstream_cx_total counter
            envoy_cluster_upstream_cx_total{cluster_name="PassthroughCluster"} 3

            """)
        // Envoy's /stats/prometheus ignores type=.
        #expect(store.render(.prometheus, query: StatsQuery(filter: "server", type: .counters)) == """
            # TYPE envoy_server_live gauge
            envoy_server_live{} 1
            # TYPE envoy_server_state gauge
            envoy_server_state{} 0

            """)
        #expect(store.render(.prometheus, query: StatsQuery(filter: "nothing-matches")) == "")
    }

    @Test func envoyDefaultTagsWithSeveralLabels() {
        let store = StatsStore()
        store.counter("http.agent.downstream_rq_2xx").increment(by: 4)
        store.counter("http.admin.downstream_rq_2xx").increment()
        store.counter("http.agent.downstream_rq_5xx").increment()
        store.counter("listener.0.0.0.0_15001.worker_1.downstream_cx_total").increment()
        store.counter("listener.0.0.0.0_15001.worker_0.downstream_cx_total").increment()
        store.counter("cluster.xds.upstream_cx_total").increment()
        store.counter("cluster.xds-grpc.upstream_cx_total").increment()
        #expect(store.render(.prometheus, query: StatsQuery()) == """
            # TYPE envoy_cluster_upstream_cx_total counter
            envoy_cluster_upstream_cx_total{envoy_cluster_name="xds"} 1
            envoy_cluster_upstream_cx_total{envoy_cluster_name="xds-grpc"} 1
            # TYPE envoy_http_downstream_rq_xx counter
            envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="admin"} 1
            envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="agent"} 4
            envoy_http_downstream_rq_xx{envoy_response_code_class="5",envoy_http_conn_manager_prefix="agent"} 1
            # TYPE envoy_listener_worker_downstream_cx_total counter
            envoy_listener_worker_downstream_cx_total{envoy_worker_id="0",envoy_listener_address="0.0.0.0_15001"} 1
            envoy_listener_worker_downstream_cx_total{envoy_worker_id="1",envoy_listener_address="0.0.0.0_15001"} 1

            """)
    }

    @Test func namesAndLabelsAreSanitisedAndEscaped() {
        let store = StatsStore(tagExtractors: [TagExtractor(name: "mesh.id", fixedValue: "a\"b\\c\nd")])
        store.gauge("cluster_manager.cds.update-time:é").set(7)
        #expect(store.render(.prometheus, query: StatsQuery()) == """
            # TYPE envoy_cluster_manager_cds_update_time__ gauge
            envoy_cluster_manager_cds_update_time__{mesh_id="a\\"b\\\\c\\nd"} 7

            """)
    }

    @Test func familyShowsOnceForCountersAndOnceForGauges() {
        let store = StatsStore(tagExtractors: [])
        store.counter("x").increment()
        store.gauge("x").set(2)
        #expect(store.render(.prometheus, query: StatsQuery()) == "# TYPE envoy_x counter\nenvoy_x{} 1\n# TYPE envoy_x gauge\nenvoy_x{} 2\n")
    }
}
