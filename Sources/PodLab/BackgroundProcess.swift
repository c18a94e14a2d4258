import Netfilter
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// A long-running program started inside a namespace (a pilot-agent, a data plane), whose output goes
/// to a file so a test can read it while it runs, and which the test signals and waits for.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    public let outputPath: String
    private var exitStatus: Int32?

    /// Spawns `executable` from a thread inside `namespace`; stdin is /dev/null, stdout and stderr
    /// append to `outputPath`.
    public init(_ executable: String, _ arguments: [String], in namespace: NetworkNamespace,
                environment: [String: String], outputPath: String) throws {
        self.outputPath = outputPath
        pid = try namespace.run {
            try Posix.descriptorCreationLock.withLock { _ in
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
                // The test process may ignore or block signals; the child starts with the defaults.
                var attributes = posix_spawnattr_t()
                posix_spawnattr_init(&attributes)
                defer { posix_spawnattr_destroy(&attributes) }
                var everySignal = sigset_t()
                sigfillset(&everySignal)
                var noSignal = sigset_t()
                sigemptyset(&noSignal)
                posix_spawnattr_setsigdefault(&attributes, &everySignal)
                posix_spawnattr_setsigmask(&attributes, &noSignal)
                posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
                let argv = ([executable] + arguments).map { strdup($0) } + [nil]
                let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
                defer { (argv + envp).forEach { free($0) } }
                var pid = pid_t()
                let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
                guard status == 0 else { throw SystemCallError(call: "posix_spawn \(executable)", errno: status) }
                return pid
            }
        }
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    public func signal(_ number: Int32) {
        if exitStatus == nil { kill(pid, number) }
    }

    /// The exit code (128 + signal for a signal), or nil if it is still running at the deadline.
    public func waitForExit(timeout: Duration) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = ContinuousClock.now + timeout
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7f
                let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
                exitStatus = code
                return code
            }
            if result < 0 && errno != EINTR { return nil }
            if ContinuousClock.now >= deadline { return nil }
            usleep(5_000)
        }
    }

    public var isRunning: Bool { exitStatus == nil && waitForExit(timeout: .zero) == nil }

    /// Everything the process wrote so far.
    public func output() -> String {
        (try? TextFile.read(outputPath)) ?? ""
    }
}
