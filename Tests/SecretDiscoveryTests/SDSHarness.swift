import FoundationEssentials
import Glibc
import Logging
import NIOPosix
import PodLab
import SDSProtos
import SecretDiscovery
import Synchronization
import WorkloadIdentity

/// Log lines kept for assertions.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
    func record(_ line: String) { lines.withLock { $0.append(line) } }

    var logger: Logger {
        Logger(label: "sds-test") { _ in RecordingHandler(recorder: self) }
    }

    struct RecordingHandler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            recorder.record("\(level) \(message)")
        }
    }
}

/// A CA with a movable clock, a store and an SDS server on a socket in a scratch directory.
final class SDSHarness: Sendable {
    static let identity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "reviews")

    let scratch: TemporaryDirectory
    let clock: ManualSecretClock
    let authority: LocalCertificateAuthority
    let store: SecretStore
    let server: SecretDiscoveryServer
    let log = LogRecorder()
    let group: MultiThreadedEventLoopGroup
    let serving: Task<Void, any Error>
    let background: Task<Void, Never>

    var socketPath: String { server.socketPath }

    init(name: String, signer: (any CertificateSigner)? = nil, workload: SecretStoreConfiguration.WorkloadSource? = nil,
         outputDirectory: Bool = false, peers: SecretDiscoveryServer.PeerPolicy = .proxyAndRoot,
         ttl: Duration = .seconds(86400)) throws {
        scratch = try TemporaryDirectory(prefix: "sluice-sds-\(name)")
        let clock = ManualSecretClock()
        self.clock = clock
        authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { clock.now() })
        let signing = SecretStoreConfiguration.Signing(
            signer: signer ?? authority, signerName: "test CA", identity: Self.identity, keyAlgorithm: .ecdsaP256,
            ttl: ttl, rotation: try RotationPolicy(), preferredFiles: nil,
            retryFloor: .milliseconds(50), retryCeiling: .milliseconds(200))
        let configuration = SecretStoreConfiguration(
            workload: workload ?? .signing(signing), outputDirectory: outputDirectory ? scratch.file("out") : nil,
            fileCheckInterval: .milliseconds(50))
        store = SecretStore(configuration: configuration, clock: clock, logger: log.logger)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        guard let server = try SecretDiscoveryServer(socketPath: scratch.file("sds/socket"), store: store, peers: peers,
                                                     group: group, logger: log.logger) else {
            throw WorkloadIdentityError("another server on the scratch socket")
        }
        self.server = server
        serving = Task { try await server.run() }
        let store = self.store
        background = Task { await store.run() }
    }

    func client() throws -> SecretDiscoveryClient {
        try SecretDiscoveryClient(socketPath: socketPath)
    }

    func stop() async {
        server.shutdown()
        _ = try? await serving.value
        background.cancel()
        await background.value
        try? await group.shutdownGracefully()
        scratch.remove()
    }
}

extension SecretDiscoveryStream {
    /// The next response, or a failure naming what came instead.
    func response(within timeout: Duration = .seconds(10)) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        switch await next(timeout: timeout) {
        case .response(let response)?: return response
        case .ended(let error)?: throw WorkloadIdentityError("stream ended: \(error.map { "\($0)" } ?? "without error")")
        case nil: throw WorkloadIdentityError("no response within \(timeout)")
        }
    }

    /// True when nothing arrives for `quiet`.
    func staysQuiet(for quiet: Duration = .milliseconds(300)) async -> Bool {
        await next(timeout: quiet) == nil
    }
}

extension Envoy_Extensions_TransportSockets_Tls_V3_Secret {
    var chainPEM: String { String(decoding: tlsCertificate.certificateChain.inlineBytes, as: UTF8.self) }
    var keyPEM: String { String(decoding: tlsCertificate.privateKey.inlineBytes, as: UTF8.self) }
    var rootsPEM: String { String(decoding: validationContext.trustedCa.inlineBytes, as: UTF8.self) }
}
