import Capture

/// One proxied TCP connection, owned by the worker that accepted it.
final class Connection {
    let slot: Int
    let generation: UInt32
    let listener: ListenerRuntime
    let downstream: Int32
    let destination: Endpoint
    var upstream: Int32
    var connected = false
    var toUpstream = RelayDirection()
    var toDownstream = RelayDirection()
    /// Worker clock reading of the last byte moved, for tcp_proxy's idle_timeout.
    var lastActivity: ContinuousClock.Instant
    let connectDeadline: ContinuousClock.Instant

    init(
        slot: Int, generation: UInt32, listener: ListenerRuntime, downstream: Int32, upstream: Int32,
        destination: Endpoint, now: ContinuousClock.Instant
    ) {
        self.slot = slot
        self.generation = generation
        self.listener = listener
        self.downstream = downstream
        self.upstream = upstream
        self.destination = destination
        self.lastActivity = now
        self.connectDeadline = now + listener.config.cluster.connectTimeout
    }

    /// Both FINs passed on and both pipes empty: nothing more will ever move.
    var isFinished: Bool {
        toUpstream.finishSent && toDownstream.finishSent
    }
}
