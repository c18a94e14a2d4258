import Netfilter
#if canImport(Glibc)
import Glibc
#endif

/// What a finished child process left behind.
public struct ProcessOutput: Sendable, Hashable, CustomStringConvertible {
    /// The exit code, or 128 + signal number when a signal ended it (as shells report it).
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
    /// True when the child outlived its timeout and was killed.
    public var timedOut: Bool

    public var description: String {
        "exit \(status)\(timedOut ? " (killed after timeout)" : "")\nstdout:\n\(standardOutput)stderr:\n\(standardError)"
    }
}

/// Runs programs inside a namespace without `nsenter`: the child is spawned from a thread that entered
/// the namespace, and a child starts in the namespaces of the thread that created it.
public enum Subprocess {
    /// What an init container's tools need and no more: a fixed PATH, nothing inherited from the tests.
    public static let defaultEnvironment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]

    public static func run(_ executable: String, _ arguments: [String], in namespace: NetworkNamespace,
                           environment: [String: String] = defaultEnvironment,
                           timeout: Duration = .seconds(20)) throws -> ProcessOutput {
        try namespace.run {
            let (pid, output, error) = try spawn(executable, arguments, environment: environment)
            return try collect(pid: pid, output: output, error: error, name: executable, timeout: timeout)
        }
    }

    private static func spawn(_ executable: String, _ arguments: [String],
                              environment: [String: String]) throws -> (pid_t, Int32, Int32) {
        let outputPipe = try Posix.pipe()
        let errorPipe: (read: Int32, write: Int32)
        do {
            errorPipe = try Posix.pipe()
        } catch {
            close(outputPipe.read)
            close(outputPipe.write)
            throw error
        }
        // Under the lock, so the child cannot inherit a pipe another thread has not yet marked CLOEXEC.
        return try Posix.descriptorCreationLock.withLock { _ in
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 1)
            posix_spawn_file_actions_adddup2(&actions, errorPipe.write, 2)
            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { (argv + envp).forEach { free($0) } }
            var pid = pid_t()
            let status = posix_spawn(&pid, executable, &actions, nil, argv, envp)
            close(outputPipe.write)
            close(errorPipe.write)
            guard status == 0 else {
                close(outputPipe.read)
                close(errorPipe.read)
                throw SystemCallError(call: "posix_spawn \(executable)", errno: status)
            }
            return (pid, outputPipe.read, errorPipe.read)
        }
    }

    private static func collect(pid: pid_t, output: Int32, error: Int32, name: String,
                                timeout: Duration) throws -> ProcessOutput {
        defer {
            close(output)
            close(error)
        }
        let deadline = ContinuousClock.now + timeout
        var collected: [Int32: [UInt8]] = [output: [], error: []]
        var open: Set<Int32> = [output, error]
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var timedOut = false
        // Bounded by the deadline; each pass either reads, sees EOF, or waits in poll.
        while !open.isEmpty {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { timedOut = true; break }
            var descriptors = open.sorted().map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&descriptors, nfds_t(descriptors.count), Int32(clamping: remaining.components.seconds * 1000 + 10))
            if ready < 0 && errno != EINTR { throw SystemCallError(call: "poll \(name) output", errno: errno) }
            for descriptor in descriptors where descriptor.revents != 0 {
                let count = read(descriptor.fd, &buffer, buffer.count)
                if count > 0 {
                    collected[descriptor.fd]! += buffer[0..<count]
                } else if count == 0 || errno != EINTR {
                    open.remove(descriptor.fd)
                }
            }
        }
        var status: Int32 = 0
        // A child may close its output and keep running: wait for it only until the deadline, then kill
        // it (our own child, by pid), after which the blocking wait is short.
        var exited = false
        while !timedOut && !exited {
            exited = try Posix.call("waitpid \(pid) (\(name))") { waitpid(pid, &status, WNOHANG) } == pid
            if !exited {
                if ContinuousClock.now >= deadline { timedOut = true } else { usleep(5_000) }
            }
        }
        if !exited {
            kill(pid, SIGKILL)
            try Posix.call("waitpid \(pid) (\(name))") { waitpid(pid, &status, 0) }
        }
        let signal = status & 0x7f
        return ProcessOutput(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal,
                             standardOutput: String(decoding: collected[output]!, as: UTF8.self),
                             standardError: String(decoding: collected[error]!, as: UTF8.self),
                             timedOut: timedOut)
    }
}
