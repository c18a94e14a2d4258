import Synchronization

/// One stat as Envoy's `/stats` shows it. `used` is Envoy's "written at least once" flag, which
/// `usedonly` filters on: a listener that never saw a connection has no used `downstream_cx_active`,
/// so Istio's exit-on-zero check reads "stat missing".
struct Stat: Sendable, Hashable {
    var name: String
    var value: Int
    var used: Bool
}

/// A bound listener: its bootstrap name, address and the port it really got (port 0 in the
/// bootstrap means any free port).
struct BoundListener: Sendable, Hashable {
    var name: String
    var address: String
    var port: Int

    /// Envoy's stat prefix for a listener: `listener.<address>_<port>`, with IPv6 addresses in
    /// brackets and their colons as underscores (`listener.[__]_15006`).
    var statPrefix: String {
        let host = address.contains(":") ? "[" + address.replacing(":", with: "_") + "]" : address
        return "listener.\(host)_\(port)"
    }
}

/// The data plane's mutable state, shared by the admin handlers on event-loop threads.
final class AdminState: Sendable {
    private struct Values {
        var listeners: [BoundListener] = []
        var accepted: [Int] = []
        var drainStartedAt: Int?
        var drainQueries: [String] = []
    }

    /// Connections reported active on the first application listener until a drain, then one
    /// fewer each second (`SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS`).
    let initialActiveConnections: Int
    let startedAt: Int
    private let values = Mutex(Values())

    init(initialActiveConnections: Int, startedAt: Int) {
        self.initialActiveConnections = initialActiveConnections
        self.startedAt = startedAt
    }

    func addListener(_ listener: BoundListener) {
        values.withLock { values in
            values.listeners.append(listener)
            values.accepted.append(0)
        }
    }

    func accepted(onListener index: Int) {
        values.withLock { values in
            if values.accepted.indices.contains(index) { values.accepted[index] += 1 }
        }
    }

    var listeners: [BoundListener] { values.withLock { $0.listeners } }

    var isDraining: Bool { values.withLock { $0.drainStartedAt != nil } }

    func startDrain(query: String, at now: Int) {
        values.withLock { values in
            values.drainQueries.append(query)
            if values.drainStartedAt == nil { values.drainStartedAt = now }
        }
    }

    /// The listener that carries the simulated active connections: the first one that is not one of
    /// the ports Istio leaves out of its sum (15021 readiness, 15090 Prometheus, 15000 admin).
    private static func connectionListenerIndex(_ listeners: [BoundListener]) -> Int? {
        listeners.firstIndex { ![15000, 15021, 15090].contains($0.port) } ?? (listeners.isEmpty ? nil : 0)
    }

    func activeConnections(at now: Int) -> Int {
        values.withLock { values in
            guard let drainStartedAt = values.drainStartedAt else { return initialActiveConnections }
            return max(0, initialActiveConnections - (now - drainStartedAt) / 1000)
        }
    }

    /// Every stat, sorted by name as Envoy prints them.
    func stats(at now: Int) -> [Stat] {
        let active = activeConnections(at: now)
        return values.withLock { values in
            let draining = values.drainStartedAt != nil
            var stats = [
                Stat(name: "server.state", value: draining ? 1 : 0, used: true),
                Stat(name: "server.live", value: draining ? 0 : 1, used: true),
                Stat(name: "server.uptime", value: max(0, now - startedAt) / 1000, used: true),
                Stat(name: "server.concurrency", value: 1, used: true),
                Stat(name: "listener_manager.workers_started", value: 1, used: true),
                Stat(name: "listener_manager.total_listeners_active", value: values.listeners.count, used: true),
                Stat(name: "listener_manager.total_listeners_draining", value: draining ? values.listeners.count : 0,
                     used: draining),
                // The request being answered is the admin listener's one connection.
                Stat(name: "listener.admin.downstream_cx_active", value: 1, used: true),
                Stat(name: "http.admin.downstream_cx_active", value: 1, used: true),
            ]
            let connectionListener = Self.connectionListenerIndex(values.listeners)
            for (index, listener) in values.listeners.enumerated() {
                let simulated = index == connectionListener ? initialActiveConnections : 0
                let current = index == connectionListener ? active : 0
                let used = values.accepted[index] > 0 || simulated > 0
                stats.append(Stat(name: "\(listener.statPrefix).downstream_cx_active", value: current, used: used))
                stats.append(Stat(name: "\(listener.statPrefix).downstream_cx_total",
                                  value: values.accepted[index] + simulated, used: used))
                // Istio's sum leaves per-worker stats out; they are here so that is tested.
                stats.append(Stat(name: "\(listener.statPrefix).worker_0.downstream_cx_active", value: current, used: used))
            }
            return stats.sorted { $0.name < $1.name }
        }
    }
}
