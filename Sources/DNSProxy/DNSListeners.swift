import DNSWire
import NIOCore
import NIOPosix

/// What both listeners share: the decision for each query and where misses go.
struct QueryPipeline: Sendable {
    let answerer: QueryAnswerer
    let store: LookupTableStore
    let forwarder: UpstreamForwarder
    let metrics: DNSProxyMetrics

    /// The answer for `bytes`, now (`.reply`/`.drop`) or once the upstreams have answered.
    func handle(_ bytes: [UInt8], transport: DNSTransport) -> QueryOutcome {
        switch answerer.decide(bytes, transport: transport, table: store.current) {
        case .drop:
            return .drop
        case .reply(let answer):
            metrics.request()
            return .now(answer)
        case .forward(let query):
            metrics.request()
            return .later(forwarder.forward(query, transport: transport))
        }
    }
}

enum QueryOutcome {
    case drop
    case now([UInt8])
    case later(EventLoopFuture<[UInt8]>)
}

/// The UDP listener. Answers from the table are written as they are decided and flushed once per batch
/// of reads, so the kernel gets them in one `sendmmsg`.
final class DNSDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// A query larger than this is not a query anyone sends (EDNS queries are a few hundred bytes at
    /// most); the receive buffer is one byte larger so an oversized datagram is seen as such and dropped.
    static let largestQuery = 4096
    /// Datagrams read per system call (`recvmmsg`) under load.
    static let datagramsPerRead = 32

    private let pipeline: QueryPipeline
    private var pendingFlush = false

    init(pipeline: QueryPipeline) {
        self.pipeline = pipeline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        // A datagram that filled its slot was cut short by the kernel: too large to be a query.
        guard envelope.data.readableBytes <= Self.largestQuery else { return }
        let bytes = Array(envelope.data.readableBytesView)
        switch pipeline.handle(bytes, transport: .udp) {
        case .drop:
            break
        case .now(let answer):
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer(answer, context.channel))),
                          promise: nil)
            pendingFlush = true
        case .later(let answer):
            let channel = context.channel
            let client = envelope.remoteAddress
            // Upstream answers that arrive in one batch go back to their clients in one `sendmmsg`.
            let flush = NIOLoopBound(answersFlush, eventLoop: context.eventLoop)
            answer.hop(to: context.eventLoop).whenSuccess { bytes in
                channel.write(AddressedEnvelope(remoteAddress: client, data: buffer(bytes, channel)), promise: nil)
                flush.value.request(channel)
            }
        }
    }

    private let answersFlush = DeferredFlush()

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A send to a client that went away (ICMP unreachable) must not close the listener.
    }
}

/// One TCP client connection (RFC 7766): length-framed queries, answered in whatever order they
/// complete. A connection that sends garbage is closed; so is one that sends nothing for 8 s or takes
/// longer than 2 s to finish a message it started (miekg/dns's idle and read timeouts), so a client that
/// stalls cannot hold a connection open.
final class DNSStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let idleTimeout: TimeAmount = .seconds(8)
    static let messageTimeout: TimeAmount = .seconds(2)
    /// Queries one connection may have waiting upstream at once; a client pipelining more is closed.
    static let maximumQueriesInFlight = 128

    private let pipeline: QueryPipeline
    private var decoder = DNSStreamDecoder()
    private var inFlight = 0
    private var idleTimer: Scheduled<Void>?
    private var messageTimer: Scheduled<Void>?

    init(pipeline: QueryPipeline) {
        self.pipeline = pipeline
    }

    func channelActive(context: ChannelHandlerContext) {
        restartIdleTimer(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data).readableBytesView)
        while true {
            let message: [UInt8]?
            do {
                message = try decoder.nextMessage()
            } catch {
                context.close(promise: nil)
                return
            }
            guard let message else { break }
            restartIdleTimer(context)
            answer(message, context: context)
        }
        if decoder.bufferedByteCount > 0 {
            if messageTimer == nil {
                let channel = context.channel
                messageTimer = context.eventLoop.scheduleTask(in: Self.messageTimeout) { channel.close(promise: nil) }
            }
        } else {
            messageTimer?.cancel()
            messageTimer = nil
        }
    }

    private func answer(_ message: [UInt8], context: ChannelHandlerContext) {
        switch pipeline.handle(message, transport: .tcp) {
        case .drop:
            break
        case .now(let answer):
            context.writeAndFlush(wrapOutboundOut(buffer(DNSTCPFraming.frame(answer), context.channel)), promise: nil)
        case .later(let answer):
            inFlight += 1
            guard inFlight <= Self.maximumQueriesInFlight else {
                context.close(promise: nil)
                return
            }
            let channel = context.channel
            let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
            answer.hop(to: context.eventLoop).whenSuccess { bytes in
                loopBoundSelf.value.inFlight -= 1
                channel.writeAndFlush(buffer(DNSTCPFraming.frame(bytes), channel), promise: nil)
            }
        }
    }

    private func restartIdleTimer(_ context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let channel = context.channel
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: Self.idleTimeout) {
            // Answers still on their way keep the connection; it is idle only once they are written.
            if loopBoundSelf.value.inFlight == 0 { channel.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        messageTimer?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Writes made while one batch of reads is handled leave together (one `sendmmsg` for datagrams): the
/// flush runs once, as a task after the batch, instead of a system call per write.
final class DeferredFlush {
    private var scheduled = false

    func request(_ channel: any Channel) {
        guard !scheduled else { return }
        scheduled = true
        let this = NIOLoopBound(self, eventLoop: channel.eventLoop)
        channel.eventLoop.execute {
            this.value.scheduled = false
            channel.flush()
        }
    }
}

private func buffer(_ bytes: [UInt8], _ channel: any Channel) -> ByteBuffer {
    var buffer = channel.allocator.buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    return buffer
}
