import Logging
import NIOPosix
import SecretDiscovery
import ServiceLifecycle

/// SDS as one service of the agent's group: the secret store's background work (warm-up, rotation,
/// file checks) and the gRPC server on the workload socket. It starts before the data plane and stops
/// after it, so the data plane never loses its secrets while it drains.
struct SecretsService: Service {
    let store: SecretStore
    let servers: [SecretDiscoveryServer]

    /// Binds the workload socket now, before the data plane is started, so its first connection queues
    /// rather than fails. When another SDS server (SPIRE) already serves there, Istio's fallback: serve
    /// only file secrets on the credential socket.
    static func start(_ plan: SecretsPlan, group: MultiThreadedEventLoopGroup, logger: Logger) throws -> SecretsService {
        let store = SecretStore(configuration: plan.store, logger: Logger(label: "sds"))
        logger.info("SDS: workload certificate: \(plan.summary)")
        if let server = try SecretDiscoveryServer(socketPath: plan.socketPath, store: store, group: group, logger: Logger(label: "sds")) {
            logger.info("SDS server listening on \(plan.socketPath)")
            return SecretsService(store: store, servers: [server])
        }
        logger.warning("SDS: another server already answers on \(plan.socketPath) (SPIRE?); serving only file secrets on \(plan.filesSocketPath)")
        guard let filesServer = try SecretDiscoveryServer(socketPath: plan.filesSocketPath, store: store, filesOnly: true,
                                                         group: group, logger: Logger(label: "sds")) else {
            throw SecretsServiceError(description: "SDS: other servers answer on both \(plan.socketPath) and \(plan.filesSocketPath)")
        }
        return SecretsService(store: store, servers: [filesServer])
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                for server in servers { group.addTask { try await server.run() } }
                // The servers end on shutdown; the store's loops end when cancelled.
                for _ in servers { try await group.next() }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            for server in servers { server.shutdown() }
        }
    }
}

struct SecretsServiceError: Error, CustomStringConvertible {
    var description: String
}
