import GRPCCore
import GRPCNIOTransportHTTP2
import SDSProtos
import Synchronization

/// The data plane's side of SDS, for checking a running agent (the demo, the benchmark, the tests): one
/// gRPC connection to the workload socket, StreamSecrets streams driven request by request.
public final class SecretDiscoveryClient: Sendable {
    public typealias Transport = HTTP2ClientTransport.Posix
    let grpc: GRPCClient<Transport>
    let connections: Task<Void, any Error>
    public let service: Envoy_Service_Secret_V3_SecretDiscoveryService.Client<Transport>

    public init(socketPath: String) throws {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
        let grpc = GRPCClient(transport: transport)
        self.grpc = grpc
        connections = Task { try await grpc.runConnections() }
        service = Envoy_Service_Secret_V3_SecretDiscoveryService.Client(wrapping: grpc)
    }

    /// A new StreamSecrets stream; nothing is sent until `send`.
    public func openStream() -> SecretDiscoveryStream {
        SecretDiscoveryStream(service: service)
    }

    /// FetchSecrets for `names`.
    public func fetch(_ names: [String], nodeID: String = "sluice~client") async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        try await service.fetchSecrets(Envoy_Service_Discovery_V3_DiscoveryRequest.secrets(names, nodeID: nodeID))
    }

    public func close() async {
        grpc.beginGracefulShutdown()
        _ = try? await connections.value
    }
}

/// One StreamSecrets stream: requests go out as `send` is called; responses wait in order for `next`.
public final class SecretDiscoveryStream: Sendable {
    public enum Event: Sendable {
        case response(Envoy_Service_Discovery_V3_DiscoveryResponse)
        /// The server ended the stream (with its status when it was an error).
        case ended((any Error)?)
    }

    private let requests: AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.Continuation
    private let mailbox = Mailbox()
    private let call: Task<Void, Never>

    init(service: Envoy_Service_Secret_V3_SecretDiscoveryService.Client<SecretDiscoveryClient.Transport>) {
        let (requestStream, requests) = AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.makeStream()
        self.requests = requests
        let mailbox = self.mailbox
        call = Task {
            do {
                try await service.streamSecrets(
                    request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DiscoveryRequest.self) { writer in
                        for await request in requestStream { try await writer.write(request) }
                    },
                    onResponse: { response in
                        for try await message in response.messages { mailbox.deliver(.response(message)) }
                    })
                mailbox.deliver(.ended(nil))
            } catch {
                mailbox.deliver(.ended(error))
            }
        }
    }

    public func send(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest) {
        requests.yield(request)
    }

    /// The next response or the end of the stream; nil when nothing came within `timeout`.
    public func next(timeout: Duration) async -> Event? {
        await mailbox.next(timeout: timeout)
    }

    /// Ends the request side; the server then ends the stream.
    public func close() {
        requests.finish()
    }

    public func cancel() {
        requests.finish()
        call.cancel()
    }

    /// Events in arrival order, handed to one waiter at a time; a waiter that times out leaves the
    /// stream intact (cancelling a wait on the stream itself would end it).
    private final class Mailbox: Sendable {
        private struct State {
            var queue: [Event] = []
            var waiter: (id: Int, continuation: CheckedContinuation<Event?, Never>)?
            var nextWaiter = 0
        }
        private let state = Mutex(State())

        func deliver(_ event: Event) {
            let waiter = state.withLock { state -> CheckedContinuation<Event?, Never>? in
                if let waiter = state.waiter {
                    state.waiter = nil
                    return waiter.continuation
                }
                state.queue.append(event)
                return nil
            }
            waiter?.resume(returning: event)
        }

        func next(timeout: Duration) async -> Event? {
            await withCheckedContinuation { continuation in
                let id = state.withLock { state -> Int? in
                    if !state.queue.isEmpty {
                        continuation.resume(returning: state.queue.removeFirst())
                        return nil
                    }
                    state.nextWaiter += 1
                    state.waiter = (state.nextWaiter, continuation)
                    return state.nextWaiter
                }
                guard let id else { return }
                Task {
                    try? await Task.sleep(for: timeout)
                    let expired = self.state.withLock { state -> CheckedContinuation<Event?, Never>? in
                        guard let waiter = state.waiter, waiter.id == id else { return nil }
                        state.waiter = nil
                        return waiter.continuation
                    }
                    expired?.resume(returning: nil)
                }
            }
        }
    }
}

extension Envoy_Service_Discovery_V3_DiscoveryRequest {
    /// A request as Envoy sends it for SDS: node on the first message, the Secret type URL.
    public static func secrets(_ names: [String], nodeID: String? = nil, responseNonce: String = "",
                               versionInfo: String = "", errorMessage: String? = nil) -> Self {
        var request = Self()
        if let nodeID { request.node.id = nodeID }
        request.typeURL = SecretStreamState.secretTypeURL
        request.resourceNames = names
        request.responseNonce = responseNonce
        request.versionInfo = versionInfo
        if let errorMessage {
            request.errorDetail.code = 3
            request.errorDetail.message = errorMessage
        }
        return request
    }
}

extension Envoy_Service_Discovery_V3_DiscoveryResponse {
    /// The secrets in the response, decoded.
    public func secrets() throws -> [Envoy_Extensions_TransportSockets_Tls_V3_Secret] {
        try resources.map { try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: $0) }
    }
}
