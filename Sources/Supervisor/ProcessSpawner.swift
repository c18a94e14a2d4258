#if canImport(Glibc)
import Glibc
#endif

/// What to run: the executable, its arguments (without argv[0], which is the executable path),
/// its whole environment and where it starts.
public struct ProcessLaunch: Sendable, Hashable {
    public var executablePath: String
    public var arguments: [String]
    /// The child's entire environment: nothing else is inherited.
    public var environment: [String: String]
    /// nil: the caller's working directory.
    public var workingDirectory: String?

    public init(executablePath: String, arguments: [String] = [],
                environment: [String: String] = ProcessLaunch.currentEnvironment(),
                workingDirectory: String? = nil) {
        self.executablePath = executablePath
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// This process's environment, as Istio passes the agent's environment to Envoy.
    public static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        // /proc/self/environ would miss setenv calls; environ is the live table.
        var entry: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }

    /// The command line for logs.
    public var commandLine: String {
        ([executablePath] + arguments).map { argument in
            argument.isEmpty || argument.contains(where: { " \"'\\$`".contains($0) })
                ? "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'" : argument
        }.joined(separator: " ")
    }

    /// posix_spawn applies the working-directory change before exec, so a relative executable path
    /// would be looked up in the new directory; resolve it against ours, where it was checked.
    var resolvedExecutablePath: String {
        guard workingDirectory != nil, !executablePath.hasPrefix("/") else { return executablePath }
        guard let current = getcwd(nil, 0) else { return executablePath }
        defer { free(current) }
        return String(cString: current) + "/" + executablePath
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// Starts processes with `posix_spawn`.
public enum ProcessSpawner {
    /// Spawns `launch` and returns its pid; the caller must arrange for it to be reaped (use
    /// `ChildReaper.spawn`, which also registers the pid before the child can be reaped).
    ///
    /// The child starts with an empty signal mask and every signal at its default disposition: the
    /// agent blocks SIGCHLD and its shutdown handling sets SIGTERM/SIGINT to SIG_IGN, and both the
    /// mask and ignored dispositions survive exec — a data plane inheriting them would ignore the
    /// SIGTERM a user sends it. stdin is /dev/null; stdout/stderr are inherited (Istio's choice);
    /// every other descriptor is closed so the data plane holds none of the agent's sockets.
    public static func spawn(_ launch: ProcessLaunch) throws(ProcessError) -> pid_t {
        let path = launch.resolvedExecutablePath
        try checkExecutable(path)
        if let directory = launch.workingDirectory {
            var information = stat()
            guard stat(directory, &information) == 0, information.st_mode & S_IFMT == S_IFDIR else {
                throw .workingDirectoryNotFound(path: directory)
            }
        }

        var attributes = posix_spawnattr_t()
        try Posix.callReturningError("posix_spawnattr_init") { posix_spawnattr_init(&attributes) }
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        try Posix.callReturningError("posix_spawnattr_setsigmask") { posix_spawnattr_setsigmask(&attributes, &noSignals) }
        try Posix.callReturningError("posix_spawnattr_setsigdefault") { posix_spawnattr_setsigdefault(&attributes, &everySignal) }
        let flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        try Posix.callReturningError("posix_spawnattr_setflags") { posix_spawnattr_setflags(&attributes, flags) }

        var actions = posix_spawn_file_actions_t()
        try Posix.callReturningError("posix_spawn_file_actions_init") { posix_spawn_file_actions_init(&actions) }
        defer { posix_spawn_file_actions_destroy(&actions) }
        try Posix.callReturningError("posix_spawn_file_actions_addopen(0, /dev/null)") {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if let closeFrom = GlibcSymbol.spawnCloseFrom {
            try Posix.callReturningError("posix_spawn_file_actions_addclosefrom_np(3)") { closeFrom(&actions, 3) }
        }
        if let directory = launch.workingDirectory {
            guard let changeDirectory = GlibcSymbol.spawnChangeDirectory else {
                throw .systemCall(call: "posix_spawn_file_actions_addchdir_np(\(directory))", errno: ENOSYS)
            }
            try Posix.callReturningError("posix_spawn_file_actions_addchdir_np(\(directory))") {
                changeDirectory(&actions, directory)
            }
        }

        let argv = ([launch.executablePath] + launch.arguments).map { strdup($0) } + [nil]
        let envp = launch.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        try Posix.callReturningError("posix_spawn \(path)") { posix_spawn(&pid, path, &actions, &attributes, argv, envp) }
        return pid
    }

    /// Fails with the path before anything is spawned, so a missing data plane is a configuration
    /// error rather than a child that exits 127.
    static func checkExecutable(_ path: String) throws(ProcessError) {
        var information = stat()
        guard stat(path, &information) == 0 else {
            let number = errno
            if number == ENOENT || number == ENOTDIR { throw .executableNotFound(path: path) }
            throw .notExecutable(path: path, reason: Posix.errorText(number))
        }
        guard information.st_mode & S_IFMT == S_IFREG else {
            throw .notExecutable(path: path, reason: "not a regular file")
        }
        guard access(path, X_OK) == 0 else {
            throw .notExecutable(path: path, reason: "no execute permission (\(Posix.errorText(errno)))")
        }
    }
}
