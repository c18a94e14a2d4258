import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The server could not listen. The description names the address and the cause.
public struct HTTPServerError: Error, CustomStringConvertible {
    public enum Cause: Sendable, Equatable {
        case addressInUse
        case addressNotAvailable
        case permissionDenied
        case other(String)
    }

    /// `host:port` as asked for.
    public var address: String
    public var cause: Cause

    public init(address: String, cause: Cause) {
        self.address = address
        self.cause = cause
    }

    public var description: String {
        switch cause {
        case .addressInUse:
            return "\(address) is already in use: another process listens there; stop it or choose another port"
        case .addressNotAvailable:
            return "\(address) is not an address of this host: listen on one of its addresses or on 0.0.0.0 / ::"
        case .permissionDenied:
            return "\(address) cannot be bound: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"
        case .other(let detail):
            return "cannot listen on \(address): \(detail)"
        }
    }
}

/// A small HTTP/1.1 server: keep-alive and pipelining, a request body cap, malformed requests answered
/// 400, and one async handler per request.
public final class HTTPServer: Sendable {
    /// Requests with a larger body are answered 413 and the connection is closed.
    public static let maximumRequestBodyBytes = 1 << 20

    private let serverChannel: any Channel
    private let connections: ConnectionSet
    /// The bound address as `host:port`.
    public let localAddress: String
    /// The bound port (the kernel's choice when started with port 0).
    public let port: Int

    private init(serverChannel: any Channel, connections: ConnectionSet) {
        self.serverChannel = serverChannel
        self.connections = connections
        let bound = serverChannel.localAddress
        self.port = bound?.port ?? 0
        self.localAddress = IPAddressText.hostPort(bound?.ipAddress ?? "?", bound?.port ?? 0)
    }

    public static func start(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) async throws(HTTPServerError) -> HTTPServer {
        try await start(host: host, port: port, group: group, options: HTTPServerOptions(), handler: handler)
    }

    public static func start(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        options: HTTPServerOptions,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) async throws(HTTPServerError) -> HTTPServer {
        let connections = ConnectionSet()
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        if options.ipv6Only, IPAddressText.isIPv6(host) {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        let honorsConnectionClose = options.closesWhenResponseSaysClose
        let onOpened = options.onConnectionOpened
        let onClosed = options.onConnectionClosed
        bootstrap = bootstrap
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                connections.insert(channel)
                if let onOpened {
                    onOpened()
                    if let onClosed {
                        channel.closeFuture.whenComplete { _ in onClosed() }
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestHandler(
                            handler: handler, remote: channel.remoteAddress,
                            honorsConnectionClose: honorsConnectionClose))
                }
            }
        let address = IPAddressText.hostPort(host, port)
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw HTTPServerError(address: address, cause: HTTPServerError.Cause(error))
        }
        return HTTPServer(serverChannel: channel, connections: connections)
    }

    /// Stops listening (the socket closes on its event loop right after this returns); open
    /// connections carry on until they end, as in a drain.
    public func stopAccepting() {
        serverChannel.close(promise: nil)
    }

    /// False once `stopAccepting()` or `close()` has closed the listening socket.
    public var isAccepting: Bool { serverChannel.isActive }

    /// Stops listening at once, then closes every open connection (in-flight handlers finish, but
    /// their responses are dropped).
    public func close() async {
        try? await serverChannel.close()
        for channel in connections.removeAll() {
            try? await channel.close()
        }
    }
}

/// What `HTTPServer.start(host:port:group:options:handler:)` adds to the plain `start`; every default
/// keeps the plain behaviour.
public struct HTTPServerOptions: Sendable {
    /// Sets IPV6_V6ONLY on an IPv6 listening socket, so `[::]:p` and `0.0.0.0:p` can both be bound
    /// (as Envoy binds its dual-stack listeners). Ignored for IPv4 hosts.
    public var ipv6Only = false
    /// Called on the connection's event loop as each connection is accepted (for connection counters).
    public var onConnectionOpened: (@Sendable () -> Void)?
    /// Called once as each connection closes; only when `onConnectionOpened` is set too.
    public var onConnectionClosed: (@Sendable () -> Void)?
    /// When a handler's response carries `Connection: close`, the connection is closed after it
    /// (an HTTP/1.1 proxy that drains tells clients this way). Off: the header is sent but ignored.
    public var closesWhenResponseSaysClose = false

    public init() {}
}

extension HTTPServerError.Cause {
    init(_ error: any Error) {
        if let ioError = error as? IOError {
            switch ioError.errnoCode {
            case EADDRINUSE: self = .addressInUse
            case EADDRNOTAVAIL: self = .addressNotAvailable
            case EACCES, EPERM: self = .permissionDenied
            default: self = .other(String(describing: ioError))
            }
        } else {
            self = .other(String(describing: error))
        }
    }
}

/// The open connections of one server, so `close()` can end them.
private final class ConnectionSet: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func insert(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.channels.withLock { $0.removeValue(forKey: key) }
        }
    }

    func removeAll() -> [any Channel] {
        channels.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
    }
}

/// Collects one request at a time (the pipelining handler holds back the next until our response
/// ends), runs the async handler, writes the response.
private final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The body grew past the cap; the rest of the request is dropped and the connection closed.
        case discarding
        case responding
    }

    private let handler: @Sendable (HTTPRequest) async -> HTTPResponse
    private let remote: SocketAddress?
    private let honorsConnectionClose: Bool
    private var state = State.idle

    init(
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse, remote: SocketAddress?,
        honorsConnectionClose: Bool = false
    ) {
        self.handler = handler
        self.remote = remote
        self.honorsConnectionClose = honorsConnectionClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init),
               declared > HTTPServer.maximumRequestBodyBytes {
                rejectOversizedBody(context: context, version: head.version)
                return
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .receiving(let head, var body)):
            guard body.readableBytes + chunk.readableBytes <= HTTPServer.maximumRequestBodyBytes else {
                rejectOversizedBody(context: context, version: head.version)
                return
            }
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case (.end, .receiving(let head, var body)):
            state = .responding
            let request = HTTPRequest(
                method: head.method.rawValue,
                target: head.uri,
                headers: HTTPFields(head.headers.map { ($0.name, $0.value) }),
                body: body.readBytes(length: body.readableBytes) ?? [],
                remoteAddress: remote?.ipAddress,
                remotePort: remote?.port
            )
            respond(context: context, to: request, head: head)
        case (_, .discarding), (_, .responding):
            // Only after a response that closes the connection: whatever follows is dropped.
            break
        default:
            // The pipelining handler never interleaves requests; anything else is a decoder bug.
            context.close(promise: nil)
        }
    }

    private func respond(context: ChannelHandlerContext, to request: HTTPRequest, head: HTTPRequestHead) {
        let promise = context.eventLoop.makePromise(of: HTTPResponse.self)
        let handler = self.handler
        promise.completeWithTask { await handler(request) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            var keepAlive = head.isKeepAlive
            if self.honorsConnectionClose,
               response.headers.values(for: "connection").contains(where: { $0.lowercased() == "close" }) {
                keepAlive = false
            }
            self.write(response, context: context, head: head, keepAlive: keepAlive)
        }
    }

    private func rejectOversizedBody(context: ChannelHandlerContext, version: HTTPVersion) {
        state = .discarding
        let response = HTTPResponse.text(
            413, "request body larger than \(HTTPServer.maximumRequestBodyBytes) bytes\n")
        let head = HTTPRequestHead(version: version, method: .POST, uri: "/")
        write(response, context: context, head: head, keepAlive: false)
    }

    private func write(_ response: HTTPResponse, context: ChannelHandlerContext, head: HTTPRequestHead, keepAlive: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
        headers.remove(name: "transfer-encoding")
        if !keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD, !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        // The pipelining handler hands us the next buffered request from inside this write, so the
        // state must already accept it.
        if keepAlive, case .responding = state { state = .idle }
        let written = context.writeAndFlushOutbound(.end(nil))
        if !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushOutbound(_ part: HTTPServerResponsePart) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(NIOAny(part), promise: promise)
        return promise.futureResult
    }
}
