import ProxyStats

/// The stats one forwarding listener updates, created once, with Envoy's names:
/// `listener.<stat>.…` for accepted connections, `tcp.<prefix>.…` for the tcp_proxy filter and
/// `cluster.<stat>.…` for the upstream leg. Counters are atomics, so workers share them.
final class ListenerStats: Sendable {
    let downstreamTotal: Counter
    let downstreamActive: Gauge
    let downstreamDestroy: Counter
    let downstreamOverloadReject: Counter
    let workerTotal: [Counter]
    let workerActive: [Gauge]

    let tcpDownstreamTotal: Counter
    let tcpNoRoute: Counter
    let tcpReceivedBytes: Counter
    let tcpSentBytes: Counter
    let tcpIdleTimeout: Counter

    let upstreamTotal: Counter
    let upstreamActive: Gauge
    let upstreamConnectFail: Counter
    let upstreamConnectTimeout: Counter
    let upstreamOverflow: Counter
    let upstreamDestroy: Counter
    let upstreamDestroyLocal: Counter
    let upstreamDestroyRemote: Counter
    let upstreamReceivedBytes: Counter
    let upstreamSentBytes: Counter

    init(listener: ForwardingListener, workers: Int, store: StatsStore) {
        let scope = "listener.\(listener.statName)."
        downstreamTotal = store.counter(scope + "downstream_cx_total")
        downstreamActive = store.gauge(scope + "downstream_cx_active")
        downstreamDestroy = store.counter(scope + "downstream_cx_destroy")
        downstreamOverloadReject = store.counter(scope + "downstream_cx_overload_reject")
        workerTotal = (0..<workers).map { store.counter(scope + "worker_\($0).downstream_cx_total") }
        workerActive = (0..<workers).map { store.gauge(scope + "worker_\($0).downstream_cx_active") }

        let tcp = "tcp.\(listener.tcpStatPrefix)."
        tcpDownstreamTotal = store.counter(tcp + "downstream_cx_total")
        tcpNoRoute = store.counter(tcp + "downstream_cx_no_route")
        tcpReceivedBytes = store.counter(tcp + "downstream_cx_rx_bytes_total")
        tcpSentBytes = store.counter(tcp + "downstream_cx_tx_bytes_total")
        tcpIdleTimeout = store.counter(tcp + "idle_timeout")

        let cluster = "cluster.\(listener.cluster.statName)."
        upstreamTotal = store.counter(cluster + "upstream_cx_total")
        upstreamActive = store.gauge(cluster + "upstream_cx_active")
        upstreamConnectFail = store.counter(cluster + "upstream_cx_connect_fail")
        upstreamConnectTimeout = store.counter(cluster + "upstream_cx_connect_timeout")
        upstreamOverflow = store.counter(cluster + "upstream_cx_overflow")
        upstreamDestroy = store.counter(cluster + "upstream_cx_destroy")
        upstreamDestroyLocal = store.counter(cluster + "upstream_cx_destroy_local")
        upstreamDestroyRemote = store.counter(cluster + "upstream_cx_destroy_remote")
        upstreamReceivedBytes = store.counter(cluster + "upstream_cx_rx_bytes_total")
        upstreamSentBytes = store.counter(cluster + "upstream_cx_tx_bytes_total")
    }
}
