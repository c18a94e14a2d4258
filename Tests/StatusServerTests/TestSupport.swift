import AgentHTTP
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

let testGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

/// Records what a test server saw; shared between its handler and the test.
final class Recorder<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    func append(_ value: Value) {
        storage.withLock { $0.append(value) }
    }

    var values: [Value] { storage.withLock { $0 } }
    var count: Int { storage.withLock { $0.count } }
}

/// A value a test changes while a server reads it.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    init(_ value: Value) {
        storage = Mutex(value)
    }

    var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }

    func update<T>(_ body: (inout Value) -> T) -> T {
        storage.withLock { body(&$0) }
    }
}

/// A server on 127.0.0.1 with an ephemeral port, closed by the caller.
func startServer(
    host: String = "127.0.0.1", _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
) async throws -> HTTPServer {
    try await HTTPServer.start(host: host, port: 0, group: testGroup, handler: handler)
}

/// A port that nothing listens on: bound by a server that is closed again.
func closedPort() async throws -> Int {
    let server = try await startServer { _ in HTTPResponse(status: 200) }
    let port = server.port
    await server.close()
    return port
}

/// Log messages captured for assertions.
final class CapturedLogs: Sendable {
    let messages = Recorder<String>()

    var logger: Logger {
        let messages = self.messages
        var logger = Logger(label: "test") { _ in CapturingLogHandler(messages: messages) }
        logger.logLevel = .trace
        return logger
    }
}

struct CapturingLogHandler: LogHandler {
    let messages: Recorder<String>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        messages.append("\(event.level): \(event.message)")
    }
}

/// A plain TCP connection for what HTTPClient deliberately cannot do (keep-alive, malformed requests).
final class RawConnection: Sendable {
    private let channel: any Channel
    private let received: Shared<[UInt8]>
    private let closed: Shared<Bool>

    private init(channel: any Channel, received: Shared<[UInt8]>, closed: Shared<Bool>) {
        self.channel = channel
        self.received = received
        self.closed = closed
    }

    static func connect(port: Int, host: String = "127.0.0.1") async throws -> RawConnection {
        let received = Shared<[UInt8]>([])
        let closed = Shared(false)
        let channel = try await ClientBootstrap(group: testGroup)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(received: received, closed: closed))
                }
            }
            .connect(host: host, port: port).get()
        return RawConnection(channel: channel, received: received, closed: closed)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Waits (bounded) until the received text satisfies `predicate`, then returns it all.
    func receive(timeout: Duration = .seconds(3), until predicate: (String) -> Bool) async -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = String(decoding: received.value, as: UTF8.self)
            if predicate(text) { return text }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return String(decoding: received.value, as: UTF8.self)
    }

    func waitUntilClosed(timeout: Duration = .seconds(3)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if closed.value { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return closed.value
    }

    func close() async {
        try? await channel.close()
    }
}

private final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received: Shared<[UInt8]>
    let closed: Shared<Bool>

    init(received: Shared<[UInt8]>, closed: Shared<Bool>) {
        self.received = received
        self.closed = closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        received.update { $0 += bytes }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.value = true
        context.fireChannelInactive()
    }
}

/// A TCP server that answers every connection with fixed bytes (or nothing) — for protocol errors
/// and silent peers.
final class RawServer: Sendable {
    private let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// - Parameter reply: sent once connected; nil keeps the connection open and silent.
    static func start(reply: String?) async throws -> RawServer {
        let channel = try await ServerBootstrap(group: testGroup)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FixedReply(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawServer(channel: channel)
    }

    func close() async {
        try? await channel.close()
    }
}

private final class FixedReply: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: String?

    init(reply: String?) {
        self.reply = reply
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        guard let reply else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Time a block, for bounds on timeouts.
func measure<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, ContinuousClock.now - start)
}

/// True when this host has the IPv6 loopback (some CI sandboxes disable IPv6).
var hasIPv6Loopback: Bool {
    guard let text = try? String(contentsOfProcFile: "/proc/net/if_inet6") else { return false }
    return text.contains("00000000000000000000000000000001")
}

extension String {
    init(contentsOfProcFile path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "open \(path)") }
        defer { Glibc.close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<256 {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
