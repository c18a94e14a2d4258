import Glibc
import PodLab
import SecretDiscovery
import Testing

/// Who may reach the workload socket: the proxy user and root, by file permissions first and by
/// SO_PEERCRED on every connection.
@Suite(.serialized) struct PeerCredentialTests {
    /// What a client running as `uid` saw after sending the HTTP/2 preface.
    enum Outcome: Int32, Equatable {
        /// The server answered (its SETTINGS frame): accepted.
        case answered = 0
        /// The server closed the connection without a byte.
        case closed = 1
        /// connect(2) failed (permissions).
        case cannotConnect = 2
        case cannotSwitchUser = 3
        case timedOut = 4
    }

    /// Connects from a child process running as `uid`/`gid`: SO_PEERCRED reports the effective uid of the
    /// process that called connect, so a thread-level switch cannot stand in for a real other user. The
    /// child only makes system calls on memory prepared before the fork.
    static func connect(to path: String, uid: UInt32, gid: UInt32) -> Outcome {
        var address = WorkloadSocket.address(path)
        // HTTP/2 connection preface and an empty SETTINGS frame.
        let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        var buffer = [UInt8](repeating: 0, count: 256)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        let pid = fork()
        if pid == 0 {
            if setgroups(0, nil) != 0 || setgid(gid) != 0 || setuid(uid) != 0 { _exit(Outcome.cannotSwitchUser.rawValue) }
            let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if connected != 0 { _exit(Outcome.cannotConnect.rawValue) }
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = preface.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 { _exit(Outcome.answered.rawValue) }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { _exit(Outcome.timedOut.rawValue) }
            _exit(Outcome.closed.rawValue)
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let code = (status >> 8) & 0xff
        return Outcome(rawValue: code) ?? .cannotSwitchUser
    }

    @Test func socketIsOwnerOnlyInAPrivateDirectory() async throws {
        let harness = try SDSHarness(name: "perms")
        var status = stat()
        #expect(stat(harness.socketPath, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(status.st_uid == geteuid())
        #expect(stat(harness.scratch.file("sds"), &status) == 0)
        #expect(status.st_mode & 0o777 == 0o750)
        #expect(Self.connect(to: harness.socketPath, uid: 1000, gid: 1000) == .cannotConnect)
        #expect(Self.connect(to: harness.socketPath, uid: 0, gid: 0) == .answered)
        await harness.stop()
    }

    @Test func anotherUserIsRefusedEvenWhenPermissionsAreOpened() async throws {
        let harness = try SDSHarness(name: "peercred", peers: .init(allowedUIDs: [1337, 0]))
        // An operator loosening the permissions must not open the secrets to everyone.
        #expect(chmod(harness.scratch.file("sds"), 0o755) == 0)
        #expect(chmod(harness.scratch.path, 0o755) == 0)
        #expect(chmod(harness.socketPath, 0o666) == 0)
        #expect(Self.connect(to: harness.socketPath, uid: 1000, gid: 1000) == .closed)
        #expect(harness.log.contains("refused a connection on \(harness.socketPath) from pid"))
        #expect(harness.log.contains("uid 1000 gid 1000: only uid 0, 1337 may fetch workload secrets"))
        #expect(Self.connect(to: harness.socketPath, uid: 1337, gid: 1337) == .answered)
        await harness.stop()
    }

    @Test func staleSocketIsReplacedAndALiveServerIsLeftAlone() async throws {
        let scratch = try TemporaryDirectory(prefix: "sluice-sds-stale")
        defer { scratch.remove() }
        let path = scratch.file("sds/socket")
        guard case .listening(let first) = try WorkloadSocket.prepare(path: path) else {
            Issue.record("no socket")
            return
        }
        // Someone listens: a second server must not take the path.
        #expect(try WorkloadSocket.prepare(path: path) == .servedByAnother)
        close(first)
        // The file stays behind after its server is gone: stale, replaced.
        #expect(access(path, F_OK) == 0)
        guard case .listening(let second) = try WorkloadSocket.prepare(path: path) else {
            Issue.record("the stale socket was not replaced")
            return
        }
        #expect(WorkloadSocket.isServed(path))
        close(second)
    }
}
