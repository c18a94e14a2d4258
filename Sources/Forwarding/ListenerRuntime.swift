import Capture

/// A forwarding listener at run time: its configuration, its stats, and its bound sockets.
final class ListenerRuntime: Sendable {
    let index: Int
    let config: ForwardingListener
    let stats: ListenerStats

    init(index: Int, config: ForwardingListener, stats: ListenerStats) {
        self.index = index
        self.config = config
        self.stats = stats
    }
}

/// One listening socket (a listener has one per address).
struct ListenSocket: Sendable {
    let fd: Int32
    let listener: ListenerRuntime
    /// The address actually bound (port 0 resolved).
    let bound: Endpoint
}
