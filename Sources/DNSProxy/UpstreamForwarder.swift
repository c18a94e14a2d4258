import Capture
import DNSWire
import NIOCore
import NIOPosix

/// Sends queries the table does not answer to the resolv.conf nameservers (DNS.md §5): over the
/// client's own protocol, one server after another in a shuffled order (or all at once with
/// `DNS_FORWARD_PARALLEL`), each with `DNS_FORWARD_TIMEOUT`; the first good answer wins, and when every
/// server fails the client gets SERVFAIL.
///
/// UDP goes out through a few long-lived sockets per family rather than one socket per query: opening
/// a socket per query would cost more than the answer itself at tens of thousands of queries a second.
/// Each query gets a fresh random ID on a randomly chosen socket (the client's ID is restored on the
/// way back), and an answer is only taken from the server it was sent to and only for the same
/// question, which is the protection per-query ports would give against forged answers.
///
/// Upstream answers are read into 64 KiB buffers, so an EDNS answer larger than 512 bytes arrives
/// whole (Istio's open istio#61371 loses them).
final class UpstreamForwarder: Sendable {
    static let socketsPerFamily = 4
    /// Enough for any DNS message over UDP.
    static let receiveBufferSize = 65536

    let upstreams: [Endpoint]
    /// The upstreams as NIO addresses, made once: parsing an address per query costs more than the lookup.
    private let socketAddresses: [Endpoint: SocketAddress]
    let forwardInParallel: Bool
    let timeout: Duration
    let eventLoop: any EventLoop
    private let udpPorts: [IPFamily: [UpstreamUDPPort]]
    private let metrics: DNSProxyMetrics

    private init(upstreams: [Endpoint], forwardInParallel: Bool, timeout: Duration, eventLoop: any EventLoop,
                 udpPorts: [IPFamily: [UpstreamUDPPort]], metrics: DNSProxyMetrics) {
        self.upstreams = upstreams
        var socketAddresses: [Endpoint: SocketAddress] = [:]
        for upstream in upstreams {
            socketAddresses[upstream] = try? SocketAddress(ipAddress: upstream.address.description, port: Int(upstream.port))
        }
        self.socketAddresses = socketAddresses
        self.forwardInParallel = forwardInParallel
        self.timeout = timeout
        self.eventLoop = eventLoop
        self.udpPorts = udpPorts
        self.metrics = metrics
    }

    /// Opens the UDP sockets for the families the upstreams use, all on `eventLoop`.
    static func start(upstreams: [Endpoint], forwardInParallel: Bool, timeout: Duration, eventLoop: any EventLoop,
                      metrics: DNSProxyMetrics) async throws -> UpstreamForwarder {
        var ports: [IPFamily: [UpstreamUDPPort]] = [:]
        for family in Set(upstreams.map(\.address.family)) {
            var familyPorts: [UpstreamUDPPort] = []
            for _ in 0..<socketsPerFamily {
                familyPorts.append(try await UpstreamUDPPort.open(family: family, eventLoop: eventLoop))
            }
            ports[family] = familyPorts
        }
        return UpstreamForwarder(upstreams: upstreams, forwardInParallel: forwardInParallel, timeout: timeout,
                                 eventLoop: eventLoop, udpPorts: ports, metrics: metrics)
    }

    func close() async {
        for port in udpPorts.values.joined() { try? await port.channel.close() }
    }

    /// The client's answer: an upstream's, sized for the client, or SERVFAIL when every upstream failed.
    /// Called on `eventLoop`, where the listeners run too.
    func forward(_ query: ForwardedQuery, transport: DNSTransport) -> EventLoopFuture<[UInt8]> {
        metrics.upstreamRequest()
        let started = ContinuousClock.now
        // Istio shuffles per query (istio#53419) so one slow server does not take every first try.
        let order = upstreams.count > 1 ? upstreams.shuffled() : upstreams
        let exchange: EventLoopFuture<[UInt8]?>
        if forwardInParallel {
            exchange = firstSuccess(of: order.map { self.exchange(query, with: $0, transport: transport) })
        } else {
            exchange = sequentially(order[...], query, transport: transport)
        }
        let metrics = self.metrics
        return exchange.map { answer in
            metrics.upstreamDuration(ContinuousClock.now - started)
            if let answer, let sized = query.clientResponse(from: answer) { return sized }
            metrics.upstreamFailure()
            return query.serverFailure
        }
    }

    private func sequentially(_ remaining: ArraySlice<Endpoint>, _ query: ForwardedQuery, transport: DNSTransport) -> EventLoopFuture<[UInt8]?> {
        guard let upstream = remaining.first else { return eventLoop.makeSucceededFuture(nil) }
        return exchange(query, with: upstream, transport: transport).flatMap { answer in
            if let answer { return self.eventLoop.makeSucceededFuture(answer) }
            return self.sequentially(remaining.dropFirst(), query, transport: transport)
        }
    }

    private func firstSuccess(of attempts: [EventLoopFuture<[UInt8]?>]) -> EventLoopFuture<[UInt8]?> {
        guard !attempts.isEmpty else { return eventLoop.makeSucceededFuture(nil) }
        let promise = eventLoop.makePromise(of: [UInt8]?.self)
        let outstanding = NIOLoopBoundBox(attempts.count, eventLoop: eventLoop)
        for attempt in attempts {
            attempt.hop(to: eventLoop).whenSuccess { answer in
                outstanding.value -= 1
                if let answer { promise.succeed(answer) } else if outstanding.value == 0 { promise.succeed(nil) }
            }
        }
        return promise.futureResult
    }

    /// One upstream's answer, or nil for a timeout, a network error or a malformed answer.
    private func exchange(_ query: ForwardedQuery, with upstream: Endpoint, transport: DNSTransport) -> EventLoopFuture<[UInt8]?> {
        switch transport {
        case .udp:
            guard let ports = udpPorts[upstream.address.family], let address = socketAddresses[upstream] else {
                return eventLoop.makeSucceededFuture(nil)
            }
            // One draw from the system's generator per query picks both the socket and the ID.
            let draw = UInt64.random(in: .min ... .max)
            return ports[Int(draw >> 32) % ports.count].exchange(query, with: address, timeout: timeout,
                                                                  preferredID: UInt16(truncatingIfNeeded: draw))
        case .tcp:
            guard let address = socketAddresses[upstream] else { return eventLoop.makeSucceededFuture(nil) }
            return UpstreamTCPExchange.run(query, with: address, timeout: timeout, eventLoop: eventLoop)
        }
    }
}

/// Whether `answer` answers `query`'s question (the same name ignoring case, type and class).
func answersQuestion(_ answer: DNSMessage, of query: DNSMessage) -> Bool {
    guard answer.header.isResponse, answer.questions.count == 1, let asked = query.questions.first else { return false }
    let answered = answer.questions[0]
    return answered.type == asked.type && answered.recordClass == asked.recordClass
        && answered.name.equalsIgnoringCase(asked.name)
}

/// One long-lived UDP socket towards the upstreams, with the queries waiting on it keyed by the ID
/// they were sent with.
final class UpstreamUDPPort: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<UpstreamAnswerHandler>

    private init(channel: any Channel, handler: NIOLoopBound<UpstreamAnswerHandler>) {
        self.channel = channel
        self.handler = handler
    }

    static func open(family: IPFamily, eventLoop: any EventLoop) async throws -> UpstreamUDPPort {
        // Made on the event loop's thread, in its network namespace (see DNSProxyServer).
        let (channel, handler) = try await eventLoop.flatSubmit {
            let handler = NIOLoopBound(UpstreamAnswerHandler(), eventLoop: eventLoop)
            return DatagramBootstrap(group: eventLoop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: UpstreamForwarder.receiveBufferSize))
                .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
                }
                .bind(host: family == .ipv4 ? "0.0.0.0" : "::", port: 0)
                .map { ($0, handler) }
        }.get()
        return UpstreamUDPPort(channel: channel, handler: handler)
    }

    /// Called on the event loop the listeners and this socket share.
    func exchange(_ query: ForwardedQuery, with address: SocketAddress, timeout: Duration,
                  preferredID: UInt16) -> EventLoopFuture<[UInt8]?> {
        let channel = self.channel
        channel.eventLoop.preconditionInEventLoop()
        let waiting = handler.value
        guard let id = waiting.freeID(preferring: preferredID) else { return channel.eventLoop.makeSucceededFuture(nil) }
        let promise = channel.eventLoop.makePromise(of: [UInt8]?.self)
        var bytes = query.bytes
        bytes[0] = UInt8(id >> 8)
        bytes[1] = UInt8(id & 0xFF)
        waiting.pending[id] = UpstreamAnswerHandler.Pending(query: query.query, upstream: address, promise: promise,
                                                           deadline: .now() + TimeAmount(timeout))
        waiting.startSweeping(channel.eventLoop, every: Self.sweepInterval(for: timeout))
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        let handler = self.handler
        channel.write(AddressedEnvelope(remoteAddress: address, data: buffer)).whenFailure { _ in
            handler.value.finish(id: id, with: nil)
        }
        // Queries forwarded while one batch of client datagrams is handled leave in one `sendmmsg`.
        waiting.queriesFlush.request(channel)
        return promise.futureResult
    }

    /// A tenth of the timeout (between 10 ms and 100 ms): how late a timed-out query may learn it.
    static func sweepInterval(for timeout: Duration) -> TimeAmount {
        min(.milliseconds(100), max(.milliseconds(10), TimeAmount(timeout / 10)))
    }
}

/// Matches answers to waiting queries; lives on the port's event loop.
final class UpstreamAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    struct Pending {
        /// The client's query, with the client's ID.
        var query: DNSMessage
        var upstream: SocketAddress
        var promise: EventLoopPromise<[UInt8]?>
        var deadline: NIODeadline
    }

    var pending: [UInt16: Pending] = [:]
    /// One repeating sweep for the queries' timeouts rather than a timer per query: at tens of thousands
    /// of queries a second, arming and cancelling a timer each costs more than the forwarding itself.
    private var sweep: RepeatedTask?

    func startSweeping(_ eventLoop: any EventLoop, every interval: TimeAmount) {
        guard sweep == nil else { return }
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        sweep = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            let now = NIODeadline.now()
            let this = handler.value
            for (id, waiting) in this.pending where waiting.deadline <= now { this.finish(id: id, with: nil) }
            if this.pending.isEmpty {
                task.cancel()
                this.sweep = nil
            }
        }
    }

    /// `preferred` (random) when no query on this socket waits under it, else the next free one; nil
    /// when the socket is nearly full.
    func freeID(preferring preferred: UInt16) -> UInt16? {
        guard pending.count < 60_000 else { return nil }
        var id = preferred
        for _ in 0..<1024 {
            if pending[id] == nil { return id }
            id &+= 1
        }
        return nil
    }

    let queriesFlush = DeferredFlush()

    func finish(id: UInt16, with answer: [UInt8]?) {
        guard let waiting = pending.removeValue(forKey: id) else { return }
        waiting.promise.succeed(answer)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var bytes = Array(envelope.data.readableBytesView)
        guard bytes.count >= 12 else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard let waiting = pending[id], waiting.upstream == envelope.remoteAddress else { return }
        // A malformed answer is that server's failure (the next one is tried); an answer to another
        // question is not ours at all, so the query keeps waiting for its own.
        guard let answer = try? DNSMessage.decode(bytes) else {
            finish(id: id, with: nil)
            return
        }
        guard answersQuestion(answer, of: waiting.query) else { return }
        bytes[0] = UInt8(waiting.query.header.id >> 8)
        bytes[1] = UInt8(waiting.query.header.id & 0xFF)
        finish(id: id, with: bytes)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable surfaces here on Linux; the waiting query times out or tries the next server.
    }

    func channelInactive(context: ChannelHandlerContext) {
        for id in Array(pending.keys) { finish(id: id, with: nil) }
        context.fireChannelInactive()
    }
}

/// One query over its own TCP connection, as miekg/dns's client makes it: connect, send the framed
/// query, read one framed answer, close.
enum UpstreamTCPExchange {
    static func run(_ query: ForwardedQuery, with upstream: SocketAddress, timeout: Duration,
                    eventLoop: any EventLoop) -> EventLoopFuture<[UInt8]?> {
        let promise = eventLoop.makePromise(of: [UInt8]?.self)
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) { promise.succeed(nil) }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        let connection = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamTCPAnswerHandler(query: query.query, promise: promise))
                }
            }
            .connect(to: upstream)
        connection.whenFailure { _ in promise.succeed(nil) }
        connection.whenSuccess { channel in
            var buffer = channel.allocator.buffer(capacity: query.bytes.count + 2)
            buffer.writeBytes(DNSTCPFraming.frame(query.bytes))
            channel.writeAndFlush(buffer, promise: nil)
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        return promise.futureResult
    }
}

final class UpstreamTCPAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let query: DNSMessage
    private let promise: EventLoopPromise<[UInt8]?>
    private var decoder = DNSStreamDecoder()

    init(query: DNSMessage, promise: EventLoopPromise<[UInt8]?>) {
        self.query = query
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data).readableBytesView)
        do {
            guard let message = try decoder.nextMessage() else { return }
            if let answer = try? DNSMessage.decode(message), answer.header.id == query.header.id, answersQuestion(answer, of: query) {
                promise.succeed(message)
            } else {
                promise.succeed(nil)
            }
        } catch {
            promise.succeed(nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(nil)
        context.close(promise: nil)
    }
}
