#if canImport(Glibc)
import Glibc
#endif

/// A process could not be started, signalled or waited for.
///
/// `executableNotFound`, `notExecutable` and `workingDirectoryNotFound` are configuration errors
/// (the caller exits 2); `systemCall` is a runtime error (exit 1).
public enum ProcessError: Error, Hashable, CustomStringConvertible, Sendable {
    case executableNotFound(path: String)
    case notExecutable(path: String, reason: String)
    case workingDirectoryNotFound(path: String)
    /// A system call failed: the call as a person would type it and its errno.
    case systemCall(call: String, errno: Int32)

    public var isConfigurationError: Bool {
        switch self {
        case .executableNotFound, .notExecutable, .workingDirectoryNotFound: true
        case .systemCall: false
        }
    }

    public var description: String {
        switch self {
        case .executableNotFound(let path):
            "cannot run \(path): no such file; give the path of an installed executable"
        case .notExecutable(let path, let reason):
            "cannot run \(path): \(reason); give the path of an executable regular file"
        case .workingDirectoryNotFound(let path):
            "cannot start a process in \(path): not a directory; give an existing working directory"
        case .systemCall(let call, let errno):
            "\(call): \(Posix.errorText(errno))"
        }
    }
}

/// The supervisor's only door to the kernel: every call goes through here, so `EINTR` is retried in
/// one place and every errno becomes a `ProcessError` naming the call.
enum Posix {
    /// A signal can interrupt a call any number of times; a bounded number of retries keeps a signal
    /// storm from hanging the caller.
    static let interruptRetryLimit = 1000

    /// For calls that return -1 and set errno.
    @discardableResult
    static func call<Result: BinaryInteger>(_ name: @autoclosure () -> String,
                                            _ body: () -> Result) throws(ProcessError) -> Result {
        var result = body()
        var attempts = 1
        while result < 0, errno == EINTR, attempts < interruptRetryLimit {
            result = body()
            attempts += 1
        }
        if result >= 0 { return result }
        throw .systemCall(call: name(), errno: errno)
    }

    /// For calls that return the error number itself (`posix_spawn*`, `pthread_*`).
    static func callReturningError(_ name: @autoclosure () -> String, _ body: () -> Int32) throws(ProcessError) {
        var result = body()
        var attempts = 1
        while result == EINTR, attempts < interruptRetryLimit {
            result = body()
            attempts += 1
        }
        if result != 0 { throw .systemCall(call: name(), errno: result) }
    }

    static func errorText(_ number: Int32) -> String {
        String(cString: strerror(number))
    }

    /// `waitpid`, retrying EINTR. Returns the pid and raw status, 0 when nothing has exited (WNOHANG),
    /// or the errno when the call failed (ECHILD: no such child).
    static func waitForChild(_ pid: pid_t, options: Int32) -> (pid: pid_t, status: Int32, errno: Int32) {
        var status: Int32 = 0
        var attempts = 0
        while attempts < interruptRetryLimit {
            attempts += 1
            let result = waitpid(pid, &status, options)
            if result >= 0 { return (result, status, 0) }
            if errno != EINTR { return (-1, 0, errno) }
        }
        return (-1, 0, EINTR)
    }

    /// `kill`; false when the process no longer exists (ESRCH).
    static func sendSignal(_ signal: Int32, to pid: pid_t) throws(ProcessError) -> Bool {
        if kill(pid, signal) == 0 { return true }
        let number = errno
        if number == ESRCH { return false }
        throw .systemCall(call: "kill(\(pid), \(signalName(signal)))", errno: number)
    }

    /// `<sys/prctl.h>`'s PR_SET_CHILD_SUBREAPER (Linux 3.4).
    static let setChildSubreaper: Int32 = 36

    /// `prctl` is variadic in C, and Swift cannot call C variadic functions; its arguments are all
    /// integers, which the x86-64 and AArch64 Linux calling conventions pass in the same registers
    /// whether or not the callee is variadic, so it is called through a fixed five-argument type.
    @discardableResult
    static func processControl(_ option: Int32, _ argument: UInt) throws(ProcessError) -> Int32 {
        typealias ProcessControl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        guard let processControl = GlibcSymbol.lookUp("prctl", as: ProcessControl.self) else {
            throw .systemCall(call: "dlsym(prctl)", errno: ENOSYS)
        }
        return try call("prctl(\(option), \(argument))") { processControl(option, argument, 0, 0, 0) }
    }
}

/// glibc functions that Swift's Glibc module does not import: the `_np` spawn actions are declared
/// only under `_GNU_SOURCE`, which the module is not built with. Looked up once, by name.
enum GlibcSymbol {
    static func lookUp<Function>(_ name: String, as type: Function.Type) -> Function? {
        // RTLD_DEFAULT is a null handle in glibc: search the process's global symbols.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }

    typealias SpawnCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias SpawnChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>,
                                                     UnsafePointer<CChar>) -> Int32

    /// glibc 2.34+.
    static let spawnCloseFrom = lookUp("posix_spawn_file_actions_addclosefrom_np", as: SpawnCloseFrom.self)
    /// glibc 2.29+.
    static let spawnChangeDirectory = lookUp("posix_spawn_file_actions_addchdir_np", as: SpawnChangeDirectory.self)
}

/// Names for the signals a supervisor meets, for logs (`SIGKILL`, not `9`).
func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGHUP: "SIGHUP"
    case SIGINT: "SIGINT"
    case SIGQUIT: "SIGQUIT"
    case SIGILL: "SIGILL"
    case SIGTRAP: "SIGTRAP"
    case SIGABRT: "SIGABRT"
    case SIGBUS: "SIGBUS"
    case SIGFPE: "SIGFPE"
    case SIGKILL: "SIGKILL"
    case SIGUSR1: "SIGUSR1"
    case SIGSEGV: "SIGSEGV"
    case SIGUSR2: "SIGUSR2"
    case SIGPIPE: "SIGPIPE"
    case SIGALRM: "SIGALRM"
    case SIGTERM: "SIGTERM"
    case SIGCHLD: "SIGCHLD"
    case SIGSYS: "SIGSYS"
    default: "signal \(signal)"
    }
}
