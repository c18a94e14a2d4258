import Synchronization
import Testing
@testable import ProxyStats

@Suite struct StatsStoreTests {
    @Test func sameNameGivesSameInstance() {
        let store = StatsStore()
        #expect(store.counter("server.x") === store.counter("server.x"))
        #expect(store.gauge("server.state") === store.gauge("server.state"))
        #expect(store.counter("a") !== store.counter("b"))
    }

    @Test func counterAndGaugeMayShareAName() {
        let store = StatsStore()
        store.counter("x").increment(by: 2)
        store.gauge("x").set(5)
        #expect(store.snapshot() == [
            StatValue(name: "x", kind: .counter, value: 2, used: true),
            StatValue(name: "x", kind: .gauge, value: 5, used: true),
        ])
    }

    @Test func snapshotIsSortedByNameBytes() {
        let store = StatsStore()
        for name in ["tcp.b.x", "cluster.xds-grpc.y", "cluster.xds.y", "Z.upper", "cluster_manager.z"] {
            store.counter(name).increment()
        }
        store.gauge("listener.a.downstream_cx_active").increment()
        #expect(store.snapshot().map(\.name) == [
            "Z.upper", "cluster.xds-grpc.y", "cluster.xds.y", "cluster_manager.z", "listener.a.downstream_cx_active",
            "tcp.b.x",
        ])
    }

    @Test func snapshotReportsValuesAndUse() {
        let store = StatsStore()
        let idle = store.counter("cluster.a.upstream_cx_total")
        let active = store.gauge("cluster.a.upstream_cx_active")
        active.increment(by: 3)
        active.decrement()
        #expect(store.snapshot() == [
            StatValue(name: "cluster.a.upstream_cx_active", kind: .gauge, value: 2, used: true),
            StatValue(name: "cluster.a.upstream_cx_total", kind: .counter, value: 0, used: false),
        ])
        idle.increment(by: UInt64.max)
        #expect(store.snapshot().last?.value == Int64.max)
    }

    @Test func rejectedStatsWorkButAreNeverShown() throws {
        let store = StatsStore(inclusion: try IstioBootstrap.inclusion(), tagExtractors: try IstioBootstrap.tagExtractors())
        let rejected = store.counter("listener.0.0.0.0_15001.downstream_cx_total")
        rejected.increment(by: 7)
        #expect(rejected.value == 7)
        #expect(store.counter("listener.0.0.0.0_15001.downstream_cx_total") === rejected)
        let rejectedGauge = store.gauge("listener.0.0.0.0_15001.downstream_cx_active")
        rejectedGauge.set(1)
        #expect(store.gauge("listener.0.0.0.0_15001.downstream_cx_active") === rejectedGauge)

        store.gauge("server.state").set(0)
        store.counter("cluster.xds-grpc.upstream_cx_total").increment()
        #expect(store.snapshot().map(\.name) == ["cluster.xds-grpc.upstream_cx_total", "server.state"])
        for format in [StatsFormat.text, .json, .prometheus] {
            #expect(!store.render(format, query: StatsQuery()).contains("15001"))
        }
        #expect(store.tags(ofStatNamed: "listener.0.0.0.0_15001.downstream_cx_total") == nil)
    }

    @Test func rejectAllKeepsNothing() {
        let store = StatsStore(inclusion: .none)
        store.counter("server.x").increment()
        #expect(store.snapshot().isEmpty)
        #expect(store.render(.json, query: StatsQuery()) == #"{"stats":[]}"#)
    }

    @Test func tagsAreExtractedOnceAtCreation() {
        let store = StatsStore()
        _ = store.counter("cluster.PassthroughCluster.upstream_cx_total")
        #expect(store.tags(ofStatNamed: "cluster.PassthroughCluster.upstream_cx_total")
            == TaggedStatName(extractedName: "cluster.upstream_cx_total",
                              tags: [StatTag(name: "envoy.cluster_name", value: "PassthroughCluster")]))
    }

    @Test func concurrentCreationYieldsOneInstancePerName() {
        let store = StatsStore()
        let names = (0..<200).map { "cluster.c\($0).upstream_cx_total" }
        let seen = Mutex<[[ObjectIdentifier]]>([[], []])
        runOnThreads(2) { thread in
            let ids = names.map { name in
                let counter = store.counter(name)
                counter.increment()
                return ObjectIdentifier(counter)
            }
            seen.withLock { $0[thread] = ids }
        }
        let (first, second) = seen.withLock { ($0[0], $0[1]) }
        #expect(first == second)
        #expect(store.snapshot().count == 200)
        #expect(store.snapshot().allSatisfy { $0.value == 2 })
    }
}
