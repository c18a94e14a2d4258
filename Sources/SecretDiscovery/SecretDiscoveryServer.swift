import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
import Logging
import NIOCore
import NIOPosix

/// The SDS server on the workload socket: gRPC over HTTP/2 on a Unix socket, every connection's peer
/// credentials checked before a byte of HTTP/2 is read.
public final class SecretDiscoveryServer: Sendable {
    public let socketPath: String
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    /// Who may connect: the proxy user (the agent's own uid) and root. Istio relies on the directory's
    /// permissions alone; a second check costs one getsockopt per connection and names the intruder.
    public struct PeerPolicy: Sendable {
        public var allowedUIDs: Set<UInt32>
        public init(allowedUIDs: Set<UInt32>) { self.allowedUIDs = allowedUIDs }
        /// The agent's effective uid and root.
        public static var proxyAndRoot: PeerPolicy { PeerPolicy(allowedUIDs: [geteuid(), 0]) }
    }

    /// Binds the socket (see `WorkloadSocket.prepare`) and builds the server; `run()` serves.
    /// Returns nil when another SDS server already answers on `socketPath`.
    /// `filesOnly`: serve only `file-cert:`/`file-root:` resources (the fallback beside another SDS server).
    public init?(socketPath: String, store: SecretStore, peers: PeerPolicy = .proxyAndRoot, filesOnly: Bool = false,
                 group: MultiThreadedEventLoopGroup, logger: Logger) throws(WorkloadSocket.SetupError) {
        guard case .listening(let descriptor) = try WorkloadSocket.prepare(path: socketPath) else { return nil }
        self.socketPath = socketPath
        let config = HTTP2ServerTransport.Posix.Config.defaults { config in
            // Istio's MaxConcurrentStreams(100000): one stream per secret per data plane worker adds up.
            config.http2.maxConcurrentStreams = 100_000
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                Self.checkPeer(channel, peers: peers, socketPath: socketPath, logger: logger)
            }
        }
        let transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(descriptor), transportSecurity: .plaintext,
                                                   config: config, eventLoopGroup: group)
        server = GRPCServer(transport: transport, services: [SecretDiscoveryService(store: store, filesOnly: filesOnly, logger: logger)])
    }

    /// Serves until `shutdown()`; removes the socket file when done.
    public func run() async throws {
        defer { unlink(socketPath) }
        try await server.serve()
    }

    /// Stops accepting; open streams end.
    public func shutdown() {
        server.beginGracefulShutdown()
    }

    /// SO_PEERCRED holds the credentials of the process that connected, fixed at connect time.
    private static func checkPeer(_ channel: any Channel, peers: PeerPolicy, socketPath: String, logger: Logger) -> EventLoopFuture<Void> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerRefused(reason: "no socket options on this channel"))
        }
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: .socket, name: .init(rawValue: SO_PEERCRED))
        return credentials.flatMap { peer in
            if peers.allowedUIDs.contains(peer.uid) { return channel.eventLoop.makeSucceededVoidFuture() }
            let allowed = peers.allowedUIDs.sorted().map(String.init).joined(separator: ", ")
            logger.warning("SDS: refused a connection on \(socketPath) from pid \(peer.pid) uid \(peer.uid) gid \(peer.gid): only uid \(allowed) may fetch workload secrets")
            return channel.close().flatMapThrowing { throw PeerRefused(reason: "uid \(peer.uid) is not allowed") }
        }
    }

    /// `struct ucred` from <sys/socket.h>, which Swift's Glibc module hides behind _GNU_SOURCE: three
    /// 32-bit fields, laid out as C lays them.
    struct PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    struct PeerRefused: Error, CustomStringConvertible {
        var reason: String
        var description: String { "SDS peer refused: \(reason)" }
    }
}
