#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended, as `waitpid` reported it.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// The process called `exit(code)`.
    case exited(code: Int32)
    /// A signal ended the process.
    case signaled(signal: Int32, coreDumped: Bool)
    /// The process was not a child of this one, or something else reaped it first: its status is lost.
    case unavailable

    /// The code a shell would report: the exit code, or 128 + the signal number. The agent exits
    /// with this when its data plane exits on its own. 255 when the status is lost.
    public var shellCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal, _): 128 + signal
        case .unavailable: 255
        }
    }

    /// Decodes a `waitpid` status word (the `WIFEXITED`/`WTERMSIG` macros, which Swift does not import).
    init(waitStatus status: Int32) {
        let terminatingSignal = status & 0x7f
        if terminatingSignal == 0 {
            self = .exited(code: (status >> 8) & 0xff)
        } else {
            self = .signaled(signal: terminatingSignal, coreDumped: status & 0x80 != 0)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal, let coreDumped):
            "killed by \(signalName(signal))\(coreDumped ? " (core dumped)" : "")"
        case .unavailable: "exit status unavailable (not a child of this process, or reaped elsewhere)"
        }
    }
}
