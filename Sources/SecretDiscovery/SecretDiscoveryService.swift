import GRPCCore
import Logging
import SDSProtos
import SwiftProtobuf
import WorkloadIdentity

/// `envoy.service.secret.v3.SecretDiscoveryService`: StreamSecrets with Envoy's state-of-the-world
/// semantics, FetchSecrets for one-shot requests, DeltaSecrets unimplemented (as in Istio).
struct SecretDiscoveryService: Envoy_Service_Secret_V3_SecretDiscoveryService.SimpleServiceProtocol {
    let store: SecretStore
    /// Beside another SDS server (SPIRE), only file-backed resources are served here.
    var filesOnly = false
    let logger: Logger

    private enum StreamEvent: Sendable {
        case request(Envoy_Service_Discovery_V3_DiscoveryRequest)
        case requestsEnded
        case requestsFailed(any Error)
        case update(SecretUpdate)
    }

    func deltaSecrets(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "DeltaSecrets is not implemented: use StreamSecrets (api_type GRPC)")
    }

    func fetchSecrets(request: Envoy_Service_Discovery_V3_DiscoveryRequest, context: ServerContext) async throws
        -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        guard request.typeURL.isEmpty || request.typeURL == SecretStreamState.secretTypeURL else {
            throw RPCError(code: .invalidArgument, message: "type_url \"\(request.typeURL)\" is not served here: this is SDS")
        }
        guard !request.resourceNames.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "FetchSecrets needs resource_names: SDS has no wildcard")
        }
        return try await makeResponse(for: request.resourceNames)
    }

    func streamSecrets(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
        context: ServerContext
    ) async throws {
        let (subscription, updates) = await store.subscribe()
        let (events, sink) = AsyncStream<StreamEvent>.makeStream(bufferingPolicy: .unbounded)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await message in request { sink.yield(.request(message)) }
                        sink.yield(.requestsEnded)
                    } catch {
                        sink.yield(.requestsFailed(error))
                    }
                }
                group.addTask {
                    for await update in updates { sink.yield(.update(update)) }
                }
                defer { group.cancelAll() }
                try await serve(events: events, response: response, peer: context.remotePeer)
            }
        } catch {
            await store.unsubscribe(subscription)
            throw error
        }
        await store.unsubscribe(subscription)
    }

    /// One stream's loop: requests and pushes in arrival order, so a push never overtakes the answer to
    /// the request before it.
    private func serve(events: AsyncStream<StreamEvent>, response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
                       peer: String) async throws {
        var state = SecretStreamState()
        var node = ""
        for await event in events {
            switch event {
            case .requestsEnded:
                return
            case .requestsFailed(let error):
                if Task.isCancelled { return }
                throw error
            case .update(let update):
                let names = state.watchedNames.filter { name in
                    (try? SecretResource(name: name))?.isAffected(by: update, systemBundleCandidates: store.configuration.systemBundleCandidates) ?? false
                }
                guard state.isWatching, !names.isEmpty else { continue }
                logger.info("SDS: pushing \(names.joined(separator: ", ")) to \(node)")
                state.sent(nonce: try await send(names, to: response))
            case .request(let request):
                if node.isEmpty, request.hasNode { node = request.node.id }
                let decision = state.receive(
                    nodeID: request.hasNode ? request.node.id : nil, typeURL: request.typeURL,
                    resourceNames: request.resourceNames, responseNonce: request.responseNonce,
                    errorMessage: request.hasErrorDetail ? request.errorDetail.message : nil)
                switch decision {
                case .fail(let error):
                    logger.warning("SDS: refusing a stream from \(peer): \(error)")
                    throw RPCError(code: .invalidArgument, message: error.description)
                case .ignore(.rejected(let message)):
                    logger.warning("SDS: \(node) rejected \(request.resourceNames.joined(separator: ", ")) (nonce \(request.responseNonce)): \(message); it keeps its previous secret")
                case .ignore(.staleNonce):
                    logger.debug("SDS: \(node) sent stale nonce \(request.responseNonce) (latest \(state.nonceSent)); ignored")
                case .ignore(.acknowledged):
                    logger.debug("SDS: \(node) acknowledged \(request.resourceNames.joined(separator: ", ")) (nonce \(request.responseNonce))")
                case .ignore(.unsubscribed):
                    logger.debug("SDS: \(node) stopped watching")
                case .respond(let names):
                    state.sent(nonce: try await send(names, to: response))
                    logger.info("SDS: sent \(names.joined(separator: ", ")) to \(node)")
                }
            }
        }
    }

    private func send(_ names: [String], to writer: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>) async throws -> String {
        let response = try await makeResponse(for: names)
        try await writer.write(response)
        return response.nonce
    }

    /// Any failure to produce a secret ends the stream with it (Istio does the same: Envoy reopens the
    /// stream with backoff, and the error is in both logs).
    private func makeResponse(for names: [String]) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        var response = Envoy_Service_Discovery_V3_DiscoveryResponse()
        response.typeURL = SecretStreamState.secretTypeURL
        for name in names {
            do {
                let resource = try SecretResource(name: name)
                if filesOnly, !resource.isFileBacked {
                    throw SecretRequestError("this socket serves only file-cert: and file-root: resources; the workload's own certificate comes from the SDS server on the workload socket")
                }
                let material = try await store.material(for: resource)
                response.resources.append(try Google_Protobuf_Any(message: material.secret(named: name)))
            } catch let error as SecretRequestError {
                logger.error("SDS: cannot serve \(name): \(error)")
                throw RPCError(code: .unavailable, message: "\(name): \(error)")
            }
        }
        response.versionInfo = await store.nextVersion()
        response.nonce = Nonce.make()
        return response
    }
}

/// Nonces are random UUIDs (version 4), as Istio's.
enum Nonce {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex = bytes.map { byte in
            let text = String(byte, radix: 16)
            return text.count == 1 ? "0" + text : text
        }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}
