import Capture
import Netfilter
import Sockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A service address on the peer that leads back to a backend, as kube-proxy's userspace mode did:
/// accept on `front` inside `namespace`, connect to `backend`, copy both ways. In the sidecar lab it
/// stands for the app's own Service: the app calls it, its sidecar forwards there, and the call comes
/// back into the pod through the inbound capture (the hairpin).
public final class LabTCPRelay: @unchecked Sendable {
    public let front: Endpoint
    public let backend: Endpoint
    private let listener: Int32
    private let namespace: NetworkNamespace
    private let stopped = Atomic<Bool>(false)
    private var acceptor: LabThread?

    public init(front: Endpoint, backend: Endpoint, in namespace: NetworkNamespace) throws {
        self.front = front
        self.backend = backend
        self.namespace = namespace
        listener = try namespace.run { try Posix.listeningSocket(on: front, backlog: 128) }
        acceptor = LabThread { self.acceptLoop() }
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        acceptor?.join()
        close(listener)
    }

    private func acceptLoop() {
        for _ in 0..<100_000 {
            let client = accept(listener, nil, nil)
            if stopped.load(ordering: .relaxed) {
                if client >= 0 { close(client) }
                return
            }
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let backend = self.backend
            guard let upstream = try? namespace.run({ () throws -> Int32 in
                let fd = try Posix.call("socket") { socket(backend.address.family == .ipv4 ? AF_INET : AF_INET6, Posix.socketType(.tcp), 0) }
                guard backend.withSocketAddress({ connect(fd, $0, $1) }) == 0 else {
                    close(fd)
                    throw SystemCallError(call: "connect \(backend)", errno: errno)
                }
                return fd
            }) else {
                close(client)
                continue
            }
            let pair = Pair(client, upstream)
            Self.spawnCopy(from: client, to: upstream, pair: pair)
            Self.spawnCopy(from: upstream, to: client, pair: pair)
        }
    }

    /// Both descriptors of one relayed connection, closed when both copies are done.
    private final class Pair: Sendable {
        let first: Int32
        let second: Int32
        private let finished = Atomic<Int>(0)

        init(_ first: Int32, _ second: Int32) {
            self.first = first
            self.second = second
        }

        func copyFinished() {
            if finished.add(1, ordering: .acquiringAndReleasing).newValue == 2 {
                close(first)
                close(second)
            }
        }
    }

    /// Copies until EOF and passes the FIN on.
    private static func spawnCopy(from: Int32, to: Int32, pair: Pair) {
        LabThread.detach {
            var buffer = [UInt8](repeating: 0, count: 16384)
            for _ in 0..<1_000_000 {
                let count = recv(from, &buffer, buffer.count, 0)
                guard count > 0 else { break }
                guard buffer.withUnsafeBytes({ send(to, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }) == count else { break }
            }
            shutdown(to, Int32(SHUT_WR))
            pair.copyFinished()
        }
    }
}
