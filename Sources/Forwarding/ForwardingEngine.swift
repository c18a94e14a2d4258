import Capture
import CSockets
import Logging
import ProxyStats
import Sockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What every worker shares: configuration, the listening sockets, and the live connection count.
final class EngineShared: Sendable {
    let configuration: ForwardingConfiguration
    let listenSockets: [ListenSocket]
    let activeConnections = Atomic<Int>(0)
    let localAddresses = LocalAddressCache()

    init(configuration: ForwardingConfiguration, listenSockets: [ListenSocket]) {
        self.configuration = configuration
        self.listenSockets = listenSockets
    }
}

/// The transparent L4 path of sluice-proxy: Envoy's `original_dst` + `tcp_proxy` to an ORIGINAL_DST
/// cluster, for the captured connections on 15001 and 15006.
///
/// Not SwiftNIO, deliberately: bytes move socket → pipe → socket with splice(2), so the proxy never
/// copies payload through user space, and NIO cannot hand its sockets to splice. Each worker is one
/// thread with one epoll loop, as Envoy's workers are.
public final class ForwardingEngine: Sendable {
    private let shared: EngineShared
    private let workers: [Worker]
    private let threads: Mutex<[pthread_t]>
    private let stopped = Mutex<Set<Int32>>([])

    /// Binds every address of every listener; nothing is accepted until `start()`. A bind failure
    /// closes what was bound and names the listener and address.
    public init(configuration: ForwardingConfiguration, stats: StatsStore, logger: Logger) throws(ForwardingError) {
        var sockets: [ListenSocket] = []
        func closeBound() { for socket in sockets { close(socket.fd) } }
        for (index, config) in configuration.listeners.enumerated() {
            let runtime = ListenerRuntime(
                index: index, config: config,
                stats: ListenerStats(listener: config, workers: configuration.workers, store: stats))
            for address in config.addresses {
                switch SocketCalls.listen(on: address, transparent: config.transparent) {
                case .success(let fd):
                    sockets.append(ListenSocket(fd: fd, listener: runtime, bound: Endpoint.local(of: fd) ?? address))
                case .failure(let failure):
                    closeBound()
                    let hint = failure.code == EPERM && config.transparent
                        ? " (a transparent listener needs CAP_NET_ADMIN)" : ""
                    throw ForwardingError("listener \(config.name): cannot listen on \(address): \(failure.text)\(hint)")
                }
            }
        }
        shared = EngineShared(configuration: configuration, listenSockets: sockets)
        var made: [Worker] = []
        do {
            for index in 0..<configuration.workers {
                made.append(try Worker(index: index, shared: shared, logger: logger))
            }
        } catch {
            closeBound()
            throw error
        }
        workers = made
        threads = Mutex([])
    }

    /// Starts the worker threads.
    public func start() throws(ForwardingError) {
        for worker in workers {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(worker).toOpaque()
            let status = pthread_create(&thread, nil, { context in
                let worker = Unmanaged<Worker>.fromOpaque(context!).takeRetainedValue()
                worker.run()
                return nil
            }, context)
            guard status == 0 else {
                Unmanaged<Worker>.fromOpaque(context).release()
                throw ForwardingError("cannot start forwarding worker \(worker.index): \(SocketCalls.errnoText(status))")
            }
            threads.withLock { $0.append(thread) }
        }
    }

    /// Every bound address per listener name, in bootstrap order (ports as bound).
    public var boundAddresses: [(listener: String, addresses: [Endpoint])] {
        var result: [(listener: String, addresses: [Endpoint])] = []
        for socket in shared.listenSockets {
            if let last = result.last, last.listener == socket.listener.config.name {
                result[result.count - 1].addresses.append(socket.bound)
            } else {
                result.append((socket.listener.config.name, [socket.bound]))
            }
        }
        return result
    }

    /// Listener names still accepting connections.
    public var acceptingListeners: [String] {
        let stopped = self.stopped.withLock { $0 }
        var names: [String] = []
        for socket in shared.listenSockets where !stopped.contains(socket.fd) && !names.contains(socket.listener.config.name) {
            names.append(socket.listener.config.name)
        }
        return names
    }

    /// Downstream connections open now, across workers and listeners.
    public var activeConnections: Int {
        shared.activeConnections.load(ordering: .relaxed)
    }

    /// Stops accepting on the listeners `which` selects. The kernel refuses new connections at once
    /// (shutdown of a listening socket resets its queue and answers further SYNs with RST); open
    /// connections carry on.
    public func stopAccepting(where which: (ForwardingListener) -> Bool) {
        let fds = Set(shared.listenSockets.filter { which($0.listener.config) }.map(\.fd))
        let fresh = stopped.withLock { stopped in
            let fresh = fds.subtracting(stopped)
            stopped.formUnion(fresh)
            return fresh
        }
        guard !fresh.isEmpty else { return }
        for fd in fresh { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        for worker in workers { worker.post(.stopAccepting(fresh)) }
    }

    /// Resets the open connections of the listeners `which` selects (the end of a drain).
    public func closeConnections(where which: (ForwardingListener) -> Bool) {
        let indices = Set(shared.configuration.listeners.indices.filter { which(shared.configuration.listeners[$0]) })
        guard !indices.isEmpty else { return }
        for worker in workers { worker.post(.closeConnections(indices)) }
    }

    /// Stops the workers (open connections are reset), waits for their threads, closes the listeners.
    public func shutdown() {
        for worker in workers { worker.post(.stop) }
        let joined = threads.withLock { threads in
            defer { threads.removeAll() }
            return threads
        }
        for thread in joined { pthread_join(thread, nil) }
        for socket in shared.listenSockets { close(socket.fd) }
    }
}

/// "Is this address one of ours?" for the loop check, from getifaddrs, refreshed at most once a
/// second: the check only runs for connections to the proxy's own ports, which are rare, but a loop
/// flood must not turn into a getifaddrs flood.
final class LocalAddressCache: Sendable {
    private let state = Mutex<(addresses: Set<IPAddress>, readAt: ContinuousClock.Instant?)>(([], nil))

    func isLocal(_ address: IPAddress, now: ContinuousClock.Instant) -> Bool {
        if address.isLoopback || address.bytes.allSatisfy({ $0 == 0 }) { return true }
        return state.withLock { state in
            if state.readAt.map({ now - $0 > .seconds(1) }) ?? true {
                state.addresses = Set(InterfaceAddress.all().map(\.address))
                state.readAt = now
            }
            return state.addresses.contains(address)
        }
    }
}
