import Capture
import CSockets
import Logging
import Sockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One forwarding worker: a thread running its own epoll loop (Envoy's worker model, one per
/// --concurrency). Listening sockets are shared, registered with EPOLLEXCLUSIVE so one worker wakes
/// per connection; a connection lives on the worker that accepted it. Everything but `commands` is
/// touched only on the worker's thread.
final class Worker: @unchecked Sendable {
    enum Command {
        case stopAccepting(Set<Int32>)
        /// Resets the open connections of the listeners with these indices.
        case closeConnections(Set<Int>)
        case stop
    }

    let index: Int
    private let shared: EngineShared
    private let epoll: Int32
    private let wake: Int32
    private let commands = Mutex<[Command]>([])
    private let logger: Logger

    private var connections: [Connection?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private var pool: PipePool
    private var listenSockets: [Int32: ListenSocket] = [:]
    /// Listening sockets paused after EMFILE/ENFILE, with when to resume: a level-triggered listener
    /// that cannot accept would otherwise wake the loop forever.
    private var pausedListeners: [Int32: ContinuousClock.Instant] = [:]
    /// Connections whose pump stopped on its byte budget while both ends were still ready.
    private var pending: [(slot: Int, generation: UInt32)] = []
    private var running = true
    private var now = ContinuousClock.now
    private var nextIdleSweep = ContinuousClock.now

    /// Bytes one pump call may move before yielding to other connections.
    private static let pumpBudget = 4 << 20
    private static let wakeToken: UInt64 = 0

    init(index: Int, shared: EngineShared, logger: Logger) throws(ForwardingError) {
        self.index = index
        self.shared = shared
        self.logger = logger
        self.pool = PipePool(capacity: shared.configuration.pipeCapacity)
        epoll = sluice_epoll_create()
        wake = sluice_eventfd()
        guard epoll >= 0, wake >= 0 else {
            throw ForwardingError("worker \(index): cannot create its event loop: \(SocketCalls.errnoText(errno))")
        }
        _ = sluice_epoll_add(epoll, wake, SLUICE_EPOLLIN, Self.wakeToken)
        for socket in shared.listenSockets {
            listenSockets[socket.fd] = socket
            _ = sluice_epoll_add(epoll, socket.fd, SLUICE_EPOLLIN | SLUICE_EPOLLEXCLUSIVE, Self.listenToken(socket.fd))
        }
    }

    func post(_ command: Command) {
        commands.withLock { $0.append(command) }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    // MARK: - Tokens: what an epoll event is about

    private enum Target {
        case wake
        case listener(Int32)
        case downstream(slot: Int, generation: UInt32)
        case upstream(slot: Int, generation: UInt32)
    }

    private static func listenToken(_ fd: Int32) -> UInt64 { UInt64(UInt32(bitPattern: fd)) << 2 | 1 }
    private static func connectionToken(slot: Int, generation: UInt32, upstream: Bool) -> UInt64 {
        UInt64(generation) << 32 | UInt64(slot) << 2 | (upstream ? 3 : 2)
    }

    private static func target(of token: UInt64) -> Target {
        switch token & 3 {
        case 0: return .wake
        case 1: return .listener(Int32(truncatingIfNeeded: token >> 2))
        case 2: return .downstream(slot: Int((token >> 2) & 0x3FFF_FFFF), generation: UInt32(token >> 32))
        default: return .upstream(slot: Int((token >> 2) & 0x3FFF_FFFF), generation: UInt32(token >> 32))
        }
    }

    // MARK: - The loop

    func run() {
        var tokens = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while running {
            let timeout = pending.isEmpty ? nextTimeoutMilliseconds() : 0
            let count = sluice_epoll_wait(epoll, &tokens, &events, 256, timeout)
            now = .now
            if count < 0 && errno != EINTR {
                logger.critical("worker \(index): epoll_wait failed: \(SocketCalls.errnoText(errno))")
                break
            }
            for position in 0..<max(0, Int(count)) {
                handle(token: tokens[position], events: events[position])
            }
            resumePending()
            handleTimers()
        }
        closeEverything()
    }

    private func handle(token: UInt64, events: UInt32) {
        switch Self.target(of: token) {
        case .wake:
            var value: UInt64 = 0
            _ = read(wake, &value, 8)
            runCommands()
        case .listener(let fd):
            if let socket = listenSockets[fd] { accept(on: socket) }
        case .downstream(let slot, let generation):
            guard let connection = connection(slot, generation) else { return }
            if !connection.connected {
                // The client went away before the upstream answered.
                if events & (SLUICE_EPOLLERR | SLUICE_EPOLLHUP) != 0 { abort(connection, reason: "downstream closed while connecting") }
                return
            }
            // Readable (or closed, or failed): bytes to move upstream. Writable: room for bytes from upstream.
            relay(connection, toUpstream: events & ~SLUICE_EPOLLOUT != 0, toDownstream: events & SLUICE_EPOLLOUT != 0)
        case .upstream(let slot, let generation):
            guard let connection = connection(slot, generation) else { return }
            if !connection.connected {
                finishConnect(connection)
                return
            }
            relay(connection, toUpstream: events & SLUICE_EPOLLOUT != 0, toDownstream: events & ~SLUICE_EPOLLOUT != 0)
        }
    }

    private func runCommands() {
        let batch = commands.withLock { queued in
            defer { queued.removeAll() }
            return queued
        }
        for command in batch {
            switch command {
            case .stopAccepting(let fds):
                for fd in fds where listenSockets.removeValue(forKey: fd) != nil {
                    if pausedListeners.removeValue(forKey: fd) == nil { _ = sluice_epoll_remove(epoll, fd) }
                }
            case .closeConnections(let listeners):
                for case let connection? in connections where listeners.contains(connection.listener.index) {
                    close(connection, reset: true, remoteFirst: false)
                }
            case .stop:
                running = false
            }
        }
    }

    // MARK: - Accepting

    private func accept(on socket: ListenSocket) {
        // Bounded so one busy listener cannot starve the connections already open.
        for _ in 0..<64 {
            let fd = sluice_accept(socket.fd)
            if fd < 0 {
                switch errno {
                case EAGAIN, EINTR, ECONNABORTED, EINVAL:
                    return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    logger.error("\(socket.listener.config.name): cannot accept: \(SocketCalls.errnoText(errno)); pausing this listener for 500 ms")
                    // EPOLLEXCLUSIVE registrations cannot be modified, only removed and added again.
                    _ = sluice_epoll_remove(epoll, socket.fd)
                    pausedListeners[socket.fd] = now + .milliseconds(500)
                    return
                default:
                    logger.error("\(socket.listener.config.name): accept failed: \(SocketCalls.errnoText(errno))")
                    return
                }
            }
            admit(fd, on: socket)
        }
    }

    private func admit(_ fd: Int32, on socket: ListenSocket) {
        let listener = socket.listener
        let config = listener.config
        let stats = listener.stats
        if let limit = shared.configuration.maxActiveDownstreamConnections, shared.activeConnections.load(ordering: .relaxed) >= limit {
            stats.downstreamOverloadReject.increment()
            SocketCalls.closeWithReset(fd)
            return
        }
        shared.activeConnections.add(1, ordering: .relaxed)
        stats.downstreamTotal.increment()
        stats.downstreamActive.increment()
        stats.workerTotal[index].increment()
        stats.workerActive[index].increment()
        stats.tcpDownstreamTotal.increment()
        SocketCalls.setNoDelay(fd)

        guard let destination = originalDestination(of: fd, socket: socket) else {
            refuse(fd, listener: listener, reason: "no original destination")
            return
        }
        if shared.configuration.ownPorts.contains(destination.port), shared.localAddresses.isLocal(destination.address, now: now) {
            refuse(fd, listener: listener, reason: "original destination \(destination) is this proxy's own listener; forwarding it would loop")
            return
        }
        if let limit = config.cluster.maxConnections, stats.upstreamActive.value >= Int64(limit) {
            stats.upstreamOverflow.increment()
            refuse(fd, listener: listener, reason: "cluster \(config.cluster.name) is at max_connections \(limit)")
            return
        }
        let peer = config.originalSourceMark != nil ? Endpoint.remote(of: fd) : nil
        let source = peer?.address ?? config.cluster.sourceAddress(for: destination.address.family)
        stats.upstreamTotal.increment()
        let upstream: Int32
        switch SocketCalls.startConnect(
            to: destination, from: source, transparent: config.originalSourceMark != nil, mark: config.originalSourceMark
        ) {
        case .success(let connecting):
            upstream = connecting
        case .failure(let failure):
            stats.upstreamConnectFail.increment()
            logger.debug("\(config.name): connect to \(destination) failed: \(failure.text)")
            count(downstreamClosed: listener)
            SocketCalls.closeWithReset(fd)
            return
        }
        stats.upstreamActive.increment()
        let slot = freeSlots.popLast() ?? {
            connections.append(nil)
            generations.append(0)
            return connections.count - 1
        }()
        generations[slot] &+= 1
        let connection = Connection(
            slot: slot, generation: generations[slot], listener: listener, downstream: fd, upstream: upstream,
            destination: destination, now: now)
        connections[slot] = connection
        let events = SLUICE_EPOLLIN | SLUICE_EPOLLOUT | SLUICE_EPOLLRDHUP | SLUICE_EPOLLET
        _ = sluice_epoll_add(epoll, fd, events, Self.connectionToken(slot: slot, generation: connection.generation, upstream: false))
        _ = sluice_epoll_add(epoll, upstream, events, Self.connectionToken(slot: slot, generation: connection.generation, upstream: true))
        logger.trace("\(config.name): \(Endpoint.remote(of: fd).map(String.init(describing:)) ?? "?") -> \(destination)")
    }

    /// A connection that never gets an upstream leg: counted as accepted and destroyed, closed with RST.
    private func refuse(_ fd: Int32, listener: ListenerRuntime, reason: String) {
        listener.stats.tcpNoRoute.increment()
        logger.debug("\(listener.config.name): refused: \(reason)")
        count(downstreamClosed: listener)
        SocketCalls.closeWithReset(fd)
    }

    /// The original_dst listener filter: conntrack's pre-NAT destination (REDIRECT), else the local
    /// address the connection arrived on (TPROXY, or a connection that was not redirected at all).
    private func originalDestination(of fd: Int32, socket: ListenSocket) -> Endpoint? {
        if socket.listener.config.useOriginalDestination,
           let original = Endpoint.originalDestination(of: fd, family: socket.bound.address.family) {
            return original
        }
        return Endpoint.local(of: fd)
    }

    // MARK: - Connecting and relaying

    private func finishConnect(_ connection: Connection) {
        let stats = connection.listener.stats
        let error = SocketCalls.pendingError(connection.upstream)
        if error == EINPROGRESS || error == EALREADY { return }
        guard error == 0 else {
            stats.upstreamConnectFail.increment()
            logger.debug("\(connection.listener.config.name): connect to \(connection.destination) failed: \(SocketCalls.errnoText(error))")
            close(connection, reset: true, remoteFirst: true)
            return
        }
        connection.connected = true
        relay(connection)
    }

    /// Moves what can move in the directions an event concerns (both when unsure): pumping a
    /// direction whose source has nothing costs a system call for nothing, on every small request.
    private func relay(_ connection: Connection, toUpstream pumpUp: Bool = true, toDownstream pumpDown: Bool = true) {
        let stats = connection.listener.stats
        connection.lastActivity = now
        let upstreamOutcome: RelayDirection.Outcome = pumpUp ? connection.toUpstream.pump(
            from: connection.downstream, to: connection.upstream, pool: &pool, budget: Self.pumpBudget,
            received: { stats.tcpReceivedBytes.increment(by: UInt64($0)) },
            sent: { stats.upstreamSentBytes.increment(by: UInt64($0)) }) : .waiting
        let downstreamOutcome: RelayDirection.Outcome = pumpDown ? connection.toDownstream.pump(
            from: connection.upstream, to: connection.downstream, pool: &pool, budget: Self.pumpBudget,
            received: { stats.upstreamReceivedBytes.increment(by: UInt64($0)) },
            sent: { stats.tcpSentBytes.increment(by: UInt64($0)) }) : .waiting
        switch (upstreamOutcome, downstreamOutcome) {
        case (.sourceFailed, _), (_, .destinationFailed):
            // The downstream reset (or vanished): pass the reset to the upstream.
            close(connection, reset: true, remoteFirst: false)
        case (.destinationFailed, _), (_, .sourceFailed):
            close(connection, reset: true, remoteFirst: true)
        default:
            if connection.isFinished {
                close(connection, reset: false, remoteFirst: connection.toDownstream.sourceFinished && !connection.toUpstream.sourceFinished)
            } else if upstreamOutcome == .budgetExhausted || downstreamOutcome == .budgetExhausted {
                pending.append((connection.slot, connection.generation))
            }
        }
    }

    private func resumePending() {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        for (slot, generation) in batch {
            if let connection = connection(slot, generation), connection.connected { relay(connection) }
        }
    }

    private func connection(_ slot: Int, _ generation: UInt32) -> Connection? {
        guard slot < connections.count, let connection = connections[slot], connection.generation == generation else { return nil }
        return connection
    }

    private func abort(_ connection: Connection, reason: String) {
        logger.debug("\(connection.listener.config.name): \(reason) (\(connection.destination))")
        close(connection, reset: true, remoteFirst: false)
    }

    /// Ends a connection: both sockets closed (with RST when `reset`, so each side sees what the
    /// other did), pipes returned, stats updated. `remoteFirst`: the upstream ended it.
    private func close(_ connection: Connection, reset: Bool, remoteFirst: Bool) {
        connections[connection.slot] = nil
        freeSlots.append(connection.slot)
        let stats = connection.listener.stats
        for fd in [connection.downstream, connection.upstream] {
            _ = sluice_epoll_remove(epoll, fd)
            if reset { SocketCalls.closeWithReset(fd) } else { Glibc.close(fd) }
        }
        connection.toUpstream.releasePipe(into: &pool)
        connection.toDownstream.releasePipe(into: &pool)
        stats.upstreamActive.decrement()
        stats.upstreamDestroy.increment()
        (remoteFirst ? stats.upstreamDestroyRemote : stats.upstreamDestroyLocal).increment()
        count(downstreamClosed: connection.listener)
    }

    private func count(downstreamClosed listener: ListenerRuntime) {
        listener.stats.downstreamDestroy.increment()
        shared.activeConnections.subtract(1, ordering: .relaxed)
        listener.stats.downstreamActive.decrement()
        listener.stats.workerActive[index].decrement()
    }

    // MARK: - Timers: connect timeouts, idle timeouts, paused listeners

    private func nextTimeoutMilliseconds() -> Int32 {
        // A coarse tick: connect timeouts and idle timeouts are checked once per tick.
        var timeout: Duration = .milliseconds(250)
        for (_, resume) in pausedListeners { timeout = min(timeout, max(.zero, resume - now)) }
        let (seconds, attoseconds) = timeout.components
        return Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    private func handleTimers() {
        for (fd, resume) in pausedListeners where resume <= now {
            pausedListeners[fd] = nil
            if listenSockets[fd] != nil {
                _ = sluice_epoll_add(epoll, fd, SLUICE_EPOLLIN | SLUICE_EPOLLEXCLUSIVE, Self.listenToken(fd))
            }
        }
        guard now >= nextIdleSweep else { return }
        nextIdleSweep = now + .milliseconds(250)
        for case let connection? in connections {
            if !connection.connected {
                if now >= connection.connectDeadline {
                    connection.listener.stats.upstreamConnectTimeout.increment()
                    connection.listener.stats.upstreamConnectFail.increment()
                    abort(connection, reason: "connect timeout after \(connection.listener.config.cluster.connectTimeout)")
                }
            } else if let idle = connection.listener.config.idleTimeout, now - connection.lastActivity >= idle {
                connection.listener.stats.tcpIdleTimeout.increment()
                logger.debug("\(connection.listener.config.name): idle for \(idle), closing (\(connection.destination))")
                close(connection, reset: false, remoteFirst: false)
            }
        }
    }

    private func closeEverything() {
        for case let connection? in connections {
            close(connection, reset: true, remoteFirst: false)
        }
        pool.closeAll()
        Glibc.close(epoll)
        Glibc.close(wake)
    }
}
