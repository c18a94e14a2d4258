import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The pid signals go to; 0 while no data plane runs. Read from the signal handler, so it is a
/// lock-free atomic.
private let forwardingTarget = Atomic<Int32>(0)
private let forwardedCount = Atomic<Int>(0)
private let droppedCount = Atomic<Int>(0)
private let installation = Mutex<Bool>(false)

/// Runs in signal context: only async-signal-safe work (an atomic load, `kill`), and errno is
/// restored so the interrupted code does not see `kill`'s.
private func forwardSignal(_ signal: Int32) {
    let savedErrno = errno
    let pid = forwardingTarget.load(ordering: .acquiring)
    if pid > 0 && kill(pid, signal) == 0 {
        forwardedCount.add(1, ordering: .relaxed)
    } else {
        droppedCount.add(1, ordering: .relaxed)
    }
    errno = savedErrno
}

/// Forwards SIGHUP, SIGUSR1 and SIGUSR2 sent to the agent to the current data plane process.
///
/// SIGTERM and SIGINT are not forwarded: they start the agent's drain, which stops the data plane
/// itself (AGENT.md §6). A signal handler rather than a `sigwait` thread because `sigwait` needs the
/// signals blocked in every thread, which only `main` can arrange before threads exist; a handler
/// works in any process, and `kill` is async-signal-safe. Signal dispositions are process-wide, so
/// this is a namespace, not an instance.
public enum SignalForwarder {
    public static let forwardedSignals: [Int32] = [SIGHUP, SIGUSR1, SIGUSR2]

    /// Installs the handlers (once; later calls do nothing). Until a target is set, the signals are
    /// dropped instead of taking their default action, which would end the agent.
    public static func install() throws(ProcessError) {
        try installation.withLock { (installed: inout Bool) throws(ProcessError) in
            guard !installed else { return }
            // Touch the globals before a handler can: their lazy initialisation is not signal-safe.
            _ = forwardingTarget.load(ordering: .relaxed)
            _ = forwardedCount.load(ordering: .relaxed)
            _ = droppedCount.load(ordering: .relaxed)
            for signal in forwardedSignals {
                var action = sigaction()
                action.__sigaction_handler.sa_handler = forwardSignal
                sigemptyset(&action.sa_mask)
                // SA_RESTART: the agent's own blocking calls must not fail with EINTR because a
                // user sent SIGHUP to the data plane.
                action.sa_flags = SA_RESTART
                try Posix.call("sigaction(\(signalName(signal)))") { sigaction(signal, &action, nil) }
            }
            installed = true
        }
    }

    /// The process that receives forwarded signals; nil stops forwarding.
    public static var target: pid_t? {
        get {
            let pid = forwardingTarget.load(ordering: .acquiring)
            return pid > 0 ? pid : nil
        }
        set { forwardingTarget.store(newValue ?? 0, ordering: .releasing) }
    }

    /// Signals delivered to the target so far.
    public static var forwarded: Int { forwardedCount.load(ordering: .relaxed) }
    /// Signals that arrived while no data plane ran (or it had just exited).
    public static var dropped: Int { droppedCount.load(ordering: .relaxed) }
}
