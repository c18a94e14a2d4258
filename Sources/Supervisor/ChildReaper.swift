import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the reaper's wake-up pipe, -1 until the reaper thread starts. Read from the
/// SIGCHLD handler, so a lock-free atomic.
private let wakeUpDescriptor = Atomic<Int32>(-1)

/// Runs in signal context, on whichever thread the kernel picked: one non-blocking `write` (a full
/// pipe already means "wake up"), errno preserved.
private func childSignalArrived(_ signal: Int32) {
    let savedErrno = errno
    let descriptor = wakeUpDescriptor.load(ordering: .acquiring)
    if descriptor >= 0 {
        var byte: UInt8 = 1
        _ = write(descriptor, &byte, 1)
    }
    errno = savedErrno
}

/// The single place in the process that calls `waitpid`.
///
/// A dedicated thread sleeps in `poll` on a self-pipe that a SIGCHLD handler writes to, then reaps.
/// The textbook alternative, `sigtimedwait(SIGCHLD)` with SIGCHLD blocked in every thread, cannot
/// work in an async `main`: Swift's async main ends in libdispatch's `dispatch_main`, which parks
/// the main thread in `sigsuspend` with an *empty* mask, so SIGCHLD is delivered to it and
/// discarded, and `sigtimedwait` would only ever time out (measured: every exit seen after the full
/// second). A handler works whichever thread the kernel picks, in the agent and in a test process
/// alike, and the self-pipe is race-free: a signal between a sweep and the next `poll` leaves a
/// byte that ends that `poll` at once. The 1 s `poll` timeout is a backstop should another library
/// replace the handler.
///
/// `blockChildSignal()` (first thing in `main`) still helps: the reaper thread unblocks SIGCHLD
/// for itself, so with every other thread blocking it the handler runs on the reaper thread (or on
/// dispatch's parked main thread) and never interrupts another thread's system call with EINTR.
///
/// Which children it reaps:
/// - As PID 1 or a child subreaper (`becomeSubreaper()`), orphans of the data plane's descendants
///   are re-parented to this process and must be reaped by it, so it reaps *every* child with
///   `waitpid(-1, WNOHANG)`, counting the unregistered ones in `reapedOrphans`.
/// - Otherwise no orphan can reach this process, and it only reaps the pids it spawned or was asked
///   about (`waitpid(pid, WNOHANG)` each), so code that spawns and waits for its own children in
///   the same process (a test harness) keeps their exit statuses.
public final class ChildReaper: Sendable {
    /// One reaper per process: two would steal each other's exit statuses.
    public static let shared = ChildReaper()

    /// Blocks SIGCHLD in the calling thread. Call it first thing in `main`, before any thread exists,
    /// so every thread inherits the mask and none but the reaper's is interrupted by SIGCHLD.
    /// Children spawned by `ProcessSpawner` get an empty mask back.
    public static func blockChildSignal() {
        var childSignal = sigset_t()
        sigemptyset(&childSignal)
        sigaddset(&childSignal, SIGCHLD)
        pthread_sigmask(SIG_BLOCK, &childSignal, nil)
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<ExitStatus?, Never>
    }

    private struct State {
        /// Pids whose exit someone awaits or will ask about, with the waiters so far.
        var registered: [pid_t: [Waiter]] = [:]
        /// Waiters whose continuation is not stored yet, and those cancelled in that window.
        var pendingWaiters: Set<UInt64> = []
        var cancelledWaiters: Set<UInt64> = []
        /// The latest exit statuses, so a waiter who asks after the child exited still gets it.
        var finished: [pid_t: ExitStatus] = [:]
        var finishedOrder: [pid_t] = []
        var nextWaiterID: UInt64 = 0
        var reapedOrphans = 0
        var reapsAllChildren = getpid() == 1
        var threadStarted = false
    }

    /// Enough to cover every status a caller may still ask for; bounded so orphans cannot grow it.
    private static let finishedCapacity = 256
    /// The backstop: how long the thread sleeps when no SIGCHLD wakes it.
    private static let backstopWaitMilliseconds: Int32 = 1000

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger = Logger(label: "sluice.supervisor.reaper")) {
        self.logger = logger
    }

    /// How many children this process reaped that nobody had registered: orphans re-parented to it.
    public var reapedOrphans: Int { state.withLock { $0.reapedOrphans } }

    /// True as PID 1 or a subreaper: every child is reaped, not only the registered ones.
    public var reapsAllChildren: Bool { state.withLock { $0.reapsAllChildren } }

    /// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphaned descendants are
    /// re-parented to it instead of to PID 1, and from now on it reaps every child.
    public func becomeSubreaper() throws(ProcessError) {
        try Posix.processControl(Posix.setChildSubreaper, 1)
        state.withLock { $0.reapsAllChildren = true }
        startIfNeeded()
    }

    /// Undoes `becomeSubreaper()` (tests); as PID 1 every child is still reaped.
    public func stopBeingSubreaper() throws(ProcessError) {
        try Posix.processControl(Posix.setChildSubreaper, 0)
        state.withLock { $0.reapsAllChildren = getpid() == 1 }
    }

    /// Spawns `launch` and registers its pid in one step, so its exit status is kept even if it
    /// exits before anyone asks for it.
    public func spawn(_ launch: ProcessLaunch) throws(ProcessError) -> pid_t {
        startIfNeeded()
        // Under the lock: the reaping thread records a status under the same lock, so it cannot
        // see this pid's exit before the pid is registered and mistake it for an orphan.
        return try state.withLock { (state: inout State) throws(ProcessError) -> pid_t in
            let pid = try ProcessSpawner.spawn(launch)
            state.registered[pid] = []
            if state.finished.removeValue(forKey: pid) != nil {
                state.finishedOrder.removeAll { $0 == pid }
            }
            return pid
        }
    }

    /// Sends `signal` to `pid` only while it is a registered child not yet reaped (a zombie still
    /// holds its pid), so a recycled pid is never signalled. False when it has already been reaped.
    @discardableResult
    public func signal(_ pid: pid_t, _ signal: Int32) throws(ProcessError) -> Bool {
        try state.withLock { (state: inout State) throws(ProcessError) -> Bool in
            guard state.registered[pid] != nil else { return false }
            return try Posix.sendSignal(signal, to: pid)
        }
    }

    /// Waits until `pid` exits and returns how; returns at once if it already has. Cancellation does
    /// not end the wait (use `exitStatusUnlessCancelled(of:)` for that).
    public func exitStatus(of pid: pid_t) async -> ExitStatus {
        // A wait that ignores cancellation: the inner task is unstructured, so the caller's
        // cancellation does not reach it.
        await Task { await self.exitStatusUnlessCancelled(of: pid) ?? .unavailable }.value
    }

    /// Waits until `pid` exits and returns how, or nil as soon as the calling task is cancelled.
    public func exitStatusUnlessCancelled(of pid: pid_t) async -> ExitStatus? {
        startIfNeeded()
        let id = state.withLock { state in
            state.nextWaiterID += 1
            state.pendingWaiters.insert(state.nextWaiterID)
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ExitStatus?, Never>) in
                let immediate: ExitStatus?? = state.withLock { state in
                    state.pendingWaiters.remove(id)
                    let cancelled = state.cancelledWaiters.remove(id) != nil
                    if let status = state.finished[pid] { return .some(status) }
                    if cancelled { return .some(nil) }
                    state.registered[pid, default: []].append(Waiter(id: id, continuation: continuation))
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let continuation: CheckedContinuation<ExitStatus?, Never>? = state.withLock { state in
                if let index = state.registered[pid]?.firstIndex(where: { $0.id == id }) {
                    return state.registered[pid]?.remove(at: index).continuation
                }
                // Not stored yet: the operation finds the mark. Otherwise it has already resumed.
                if state.pendingWaiters.contains(id) { state.cancelledWaiters.insert(id) }
                return nil
            }
            continuation?.resume(returning: nil)
        }
    }

    // MARK: - The reaping thread

    private func startIfNeeded() {
        let start = state.withLock { state in
            defer { state.threadStarted = true }
            return !state.threadStarted
        }
        guard start else { return }
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            let reaper = Unmanaged<ChildReaper>.fromOpaque(context!).takeRetainedValue()
            reaper.reapForever()
            return nil
        }, context)
        if result == 0 {
            pthread_detach(thread)
        } else {
            // Without the thread nothing would ever be reaped: a process that cannot create one
            // thread cannot supervise anything either.
            fatalError("ChildReaper: pthread_create failed: \(Posix.errorText(result))")
        }
    }

    private func reapForever() {
        let wakeUp = openWakeUpPipe()
        var childSignal = sigset_t()
        sigemptyset(&childSignal)
        sigaddset(&childSignal, SIGCHLD)
        pthread_sigmask(SIG_UNBLOCK, &childSignal, nil)
        var drained = [UInt8](repeating: 0, count: 64)
        while true {
            // Children may have exited before the handler was in place: sweep first, then wait.
            sweep()
            guard let wakeUp else {
                usleep(50_000)
                continue
            }
            var descriptor = pollfd(fd: wakeUp, events: Int16(POLLIN), revents: 0)
            // EINTR (the handler ran on this thread) and a timeout both lead to a sweep, like a byte.
            _ = poll(&descriptor, 1, Self.backstopWaitMilliseconds)
            while read(wakeUp, &drained, drained.count) > 0 {}
        }
    }

    /// Creates the self-pipe and installs the SIGCHLD handler; nil (and a 50 ms poll instead) if
    /// either fails, so reaping never stops.
    private func openWakeUpPipe() -> Int32? {
        do {
            var ends: [Int32] = [-1, -1]
            try Posix.call("pipe") { pipe(&ends) }
            for end in ends {
                let flags = try Posix.call("fcntl(F_GETFL)") { fcntl(end, F_GETFL) }
                try Posix.call("fcntl(F_SETFL, O_NONBLOCK)") { fcntl(end, F_SETFL, flags | O_NONBLOCK) }
                try Posix.call("fcntl(F_SETFD, FD_CLOEXEC)") { fcntl(end, F_SETFD, FD_CLOEXEC) }
            }
            wakeUpDescriptor.store(ends[1], ordering: .releasing)
            var action = sigaction()
            action.__sigaction_handler.sa_handler = childSignalArrived
            sigemptyset(&action.sa_mask)
            // SA_RESTART: other threads' blocking calls resume instead of failing with EINTR.
            // SA_NOCLDSTOP: stopped children need no sweep.
            action.sa_flags = SA_RESTART | SA_NOCLDSTOP
            try Posix.call("sigaction(SIGCHLD)") { sigaction(SIGCHLD, &action, nil) }
            return ends[0]
        } catch {
            logger.error("reaper falls back to polling every 50 ms", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// What one sweep found, delivered after the lock is released.
    private struct SweepResult {
        var delivered: [(ExitStatus, [Waiter])] = []
        var orphans: [(pid_t, ExitStatus)] = []
        var lost: [(pid_t, [Waiter])] = []
        var waitError: Int32?
    }

    /// Reaps what has exited. `waitpid` runs under the lock (with WNOHANG it never blocks), so
    /// `signal` can never see a pid that is reaped but still registered — a pid the kernel may
    /// already have recycled. Bounded per sweep so a storm of orphans cannot starve the waiters.
    func sweep() {
        let result = state.withLock { state in
            var result = SweepResult()
            if state.reapsAllChildren {
                for _ in 0..<10_000 {
                    let (pid, status, number) = Posix.waitForChild(-1, options: WNOHANG)
                    guard pid > 0 else {
                        if pid < 0 && number != ECHILD { result.waitError = number }
                        break
                    }
                    record(pid, ExitStatus(waitStatus: status), in: &state, into: &result)
                }
            }
            for pid in Array(state.registered.keys) {
                let (reaped, status, number) = Posix.waitForChild(pid, options: WNOHANG)
                if reaped > 0 {
                    record(pid, ExitStatus(waitStatus: status), in: &state, into: &result)
                } else if reaped < 0 && number == ECHILD {
                    // Not (or no longer) our child: someone else reaped it, or it never was ours.
                    let waiters = state.registered.removeValue(forKey: pid) ?? []
                    remember(pid, .unavailable, in: &state)
                    result.lost.append((pid, waiters))
                }
            }
            return result
        }
        for (status, waiters) in result.delivered {
            for waiter in waiters { waiter.continuation.resume(returning: status) }
        }
        for (pid, status) in result.orphans {
            logger.debug("reaped orphan process", metadata: ["pid": "\(pid)", "status": "\(status)"])
        }
        for (pid, waiters) in result.lost {
            logger.warning("pid is not a child of this process or was reaped elsewhere; its exit status is lost",
                           metadata: ["pid": "\(pid)"])
            for waiter in waiters { waiter.continuation.resume(returning: .unavailable) }
        }
        if let number = result.waitError {
            logger.error("waitpid(-1) failed: \(Posix.errorText(number))")
        }
    }

    private func record(_ pid: pid_t, _ status: ExitStatus, in state: inout State, into result: inout SweepResult) {
        if let waiters = state.registered.removeValue(forKey: pid) {
            result.delivered.append((status, waiters))
        } else {
            state.reapedOrphans += 1
            result.orphans.append((pid, status))
        }
        remember(pid, status, in: &state)
    }

    private func remember(_ pid: pid_t, _ status: ExitStatus, in state: inout State) {
        if state.finished.updateValue(status, forKey: pid) == nil {
            state.finishedOrder.append(pid)
        }
        if state.finishedOrder.count > Self.finishedCapacity {
            state.finished.removeValue(forKey: state.finishedOrder.removeFirst())
        }
    }
}
