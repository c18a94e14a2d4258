import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct HTTPClientRequest: Sendable {
    public enum OversizedBody: Sendable {
        /// Fail with `HTTPClientError.responseTooLarge`.
        case fail
        /// Keep the first `maximumResponseBodyBytes` bytes and stop reading (the probes' 10 KiB excerpt).
        case truncate
    }

    /// A host name or an IP literal (IPv6 without brackets).
    public var host: String
    public var port: Int
    public var method: String
    /// Path plus optional `?query`.
    public var target: String
    /// Sent as given, except that `Host` defaults to `host:port` and `Connection: close` is always set.
    public var headers: HTTPFields
    public var body: [UInt8]
    /// The source IP to bind before connecting (for probes: 127.0.0.6 / ::6), or nil for the kernel's choice.
    public var localAddress: String?
    /// Bounds the whole exchange: connecting, sending, and reading the complete response.
    public var timeout: Duration
    public var maximumResponseBodyBytes: Int
    public var oversizedBody: OversizedBody

    public init(
        host: String,
        port: Int,
        method: String = "GET",
        target: String = "/",
        headers: HTTPFields = [:],
        body: [UInt8] = [],
        localAddress: String? = nil,
        timeout: Duration = .seconds(10),
        maximumResponseBodyBytes: Int = 10 << 20,
        oversizedBody: OversizedBody = .fail
    ) {
        self.host = host
        self.port = port
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.localAddress = localAddress
        self.timeout = timeout
        self.maximumResponseBodyBytes = maximumResponseBodyBytes
        self.oversizedBody = oversizedBody
    }

    public var address: String { IPAddressText.hostPort(host, port) }
}

public enum HTTPClientError: Error, CustomStringConvertible, Equatable {
    /// Nothing listens at the address (ECONNREFUSED).
    case connectionRefused(address: String)
    /// The exchange did not complete within the request's timeout.
    case timedOut(address: String, after: Duration)
    /// The peer sent something that is not a valid HTTP/1.1 response, or closed too early.
    case protocolError(address: String, detail: String)
    case responseTooLarge(address: String, limit: Int)
    /// The requested source address is not configured on this host (EADDRNOTAVAIL on bind).
    case sourceAddressUnavailable(source: String, detail: String)
    /// Any other failure to connect (unreachable network, name resolution, ...).
    case connectFailed(address: String, detail: String)

    public var description: String {
        switch self {
        case .connectionRefused(let address):
            return "connection to \(address) refused: nothing listens there"
        case .timedOut(let address, let after):
            return "request to \(address) timed out after \(after)"
        case .protocolError(let address, let detail):
            return "invalid HTTP response from \(address): \(detail)"
        case .responseTooLarge(let address, let limit):
            return "response from \(address) is larger than \(limit) bytes"
        case .sourceAddressUnavailable(let source, let detail):
            return "cannot bind source address \(source): \(detail)"
        case .connectFailed(let address, let detail):
            return "cannot connect to \(address): \(detail)"
        }
    }
}

/// One request per connection (`Connection: close`), as Istio's probes and admin calls do by default.
public enum HTTPClient {
    public static func send(_ request: HTTPClientRequest, group: any EventLoopGroup) async throws(HTTPClientError) -> HTTPResponse {
        let eventLoop = group.next()
        let deadline = NIODeadline.now() + TimeAmount(request.timeout)
        let responsePromise = eventLoop.makePromise(of: HTTPResponse.self)
        let head = requestHead(for: request)
        let body = request.body
        let limit = request.maximumResponseBodyBytes
        let oversized = request.oversizedBody
        let address = request.address

        let timeoutTask = eventLoop.scheduleTask(deadline: deadline) {
            responsePromise.fail(HTTPClientError.timedOut(address: address, after: request.timeout))
        }
        defer { timeoutTask.cancel() }

        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(request.timeout))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        ResponseCollector(
                            head: head, body: body, promise: responsePromise, address: address,
                            limit: limit, oversized: oversized))
                }
            }
        let channel: any Channel
        do {
            channel = try await connect(bootstrap, request: request)
        } catch {
            let mapped = mapConnectError(error, request: request)
            responsePromise.fail(mapped)
            throw mapped
        }
        // The timeout closes the connection too, so a silent peer cannot hold the channel open.
        responsePromise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        do {
            return try await responsePromise.futureResult.get()
        } catch let error as HTTPClientError {
            throw error
        } catch {
            throw .protocolError(address: address, detail: String(describing: error))
        }
    }

    /// Opens a TCP connection and closes it again: the kubelet's `tcpSocket` probe.
    public static func checkConnect(
        host: String, port: Int, localAddress: String? = nil, timeout: Duration, group: any EventLoopGroup
    ) async throws(HTTPClientError) {
        let request = HTTPClientRequest(host: host, port: port, localAddress: localAddress, timeout: timeout)
        let bootstrap = ClientBootstrap(group: group.next()).connectTimeout(TimeAmount(timeout))
        do {
            let channel = try await connect(bootstrap, request: request)
            try? await channel.close()
        } catch {
            throw mapConnectError(error, request: request)
        }
    }

    private static func connect(_ bootstrap: ClientBootstrap, request: HTTPClientRequest) async throws -> any Channel {
        var bootstrap = bootstrap
        var host = request.host
        if let source = request.localAddress {
            guard let sourceAddress = try? SocketAddress(ipAddress: source, port: 0) else {
                throw HTTPClientError.sourceAddressUnavailable(source: source, detail: "not an IP address")
            }
            bootstrap = bootstrap.bind(to: sourceAddress)
            // A bound source fixes the family; resolving "localhost" could otherwise pick the other one.
            if host == "localhost" {
                host = IPAddressText.isIPv6(source) ? "::1" : "127.0.0.1"
            }
        }
        if IPAddressText.isIPLiteral(host), let target = try? SocketAddress(ipAddress: host, port: request.port) {
            return try await bootstrap.connect(to: target).get()
        }
        return try await bootstrap.connect(host: host, port: request.port).get()
    }

    private static func mapConnectError(_ error: any Error, request: HTTPClientRequest) -> HTTPClientError {
        let address = request.address
        if let error = error as? HTTPClientError { return error }
        var errors: [any Error] = [error]
        if let aggregate = error as? NIOConnectionError {
            errors = aggregate.connectionErrors.map(\.error)
            if let dnsError = aggregate.dnsAAAAError ?? aggregate.dnsAError, errors.isEmpty {
                return .connectFailed(address: address, detail: "cannot resolve \(request.host): \(dnsError)")
            }
        }
        for error in errors {
            if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                return .timedOut(address: address, after: request.timeout)
            }
            guard let ioError = error as? IOError else { continue }
            switch ioError.errnoCode {
            case ECONNREFUSED:
                return .connectionRefused(address: address)
            case EADDRNOTAVAIL where request.localAddress != nil:
                return .sourceAddressUnavailable(
                    source: request.localAddress ?? "", detail: "the address is not configured on this host")
            case ETIMEDOUT:
                return .timedOut(address: address, after: request.timeout)
            default:
                continue
            }
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return .timedOut(address: address, after: request.timeout)
        }
        return .connectFailed(address: address, detail: String(describing: error))
    }

    private static func requestHead(for request: HTTPClientRequest) -> HTTPRequestHead {
        var headers = HTTPHeaders(request.headers.map { ($0.name, $0.value) })
        if !headers.contains(name: "host") {
            headers.add(name: "Host", value: hostHeader(request.host, request.port))
        }
        headers.remove(name: "transfer-encoding")
        headers.replaceOrAdd(name: "Connection", value: "close")
        if !request.body.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method.uppercased()) {
            headers.replaceOrAdd(name: "Content-Length", value: String(request.body.count))
        } else {
            headers.remove(name: "content-length")
        }
        return HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: request.method.uppercased()),
            uri: request.target.isEmpty ? "/" : request.target, headers: headers)
    }

    private static func hostHeader(_ host: String, _ port: Int) -> String {
        IPAddressText.hostPort(host, port)
    }
}

/// Sends the request once connected and collects the response into the promise.
private final class ResponseCollector: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead
    private let body: [UInt8]
    private let promise: EventLoopPromise<HTTPResponse>
    private let address: String
    private let limit: Int
    private let oversized: HTTPClientRequest.OversizedBody
    private var responseHead: HTTPResponseHead?
    private var responseBody: [UInt8] = []
    private var finished = false

    init(
        head: HTTPRequestHead, body: [UInt8], promise: EventLoopPromise<HTTPResponse>, address: String,
        limit: Int, oversized: HTTPClientRequest.OversizedBody
    ) {
        self.head = head
        self.body = body
        self.promise = promise
        self.address = address
        self.limit = limit
        self.oversized = oversized
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx interim responses are skipped by NIO's decoder except 101, which we never ask for.
            responseHead = head
        case .body(var chunk):
            let room = limit - responseBody.count
            if chunk.readableBytes > room {
                switch oversized {
                case .fail:
                    finish(context: context, .failure(HTTPClientError.responseTooLarge(address: address, limit: limit)))
                case .truncate:
                    responseBody += chunk.readBytes(length: room) ?? []
                    finish(context: context, .success(makeResponse()))
                }
                return
            }
            responseBody += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            finish(context: context, .success(makeResponse()))
        }
    }

    private func makeResponse() -> HTTPResponse {
        let head = responseHead ?? HTTPResponseHead(version: .http1_1, status: .ok)
        return HTTPResponse(
            status: Int(head.status.code),
            headers: HTTPFields(head.headers.map { ($0.name, $0.value) }),
            body: responseBody)
    }

    private func finish(context: ChannelHandlerContext, _ result: Result<HTTPResponse, any Error>) {
        guard !finished else { return }
        finished = true
        promise.completeWith(result)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            let detail = responseHead == nil
                ? "connection closed before a response arrived"
                : "connection closed before the response was complete"
            promise.fail(HTTPClientError.protocolError(address: address, detail: detail))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let detail: String
        if let ioError = error as? IOError, ioError.errnoCode == ECONNRESET {
            detail = "connection reset by peer"
        } else {
            detail = String(describing: error)
        }
        finish(context: context, .failure(HTTPClientError.protocolError(address: address, detail: detail)))
    }
}
