import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs the data plane: spawns it, waits for it through the reaper, restarts it per policy, and
/// stops or drains it on request.
///
/// Exit codes: when the data plane exits on its own and restart is off (or gives up), `run`
/// returns its status and the agent exits with `shellCode` — Sluice's documented choice; Istio's
/// agent exits 0 (AGENT.md §3.6). After `stop` or `drain`, `run` returns the status too and
/// `stopRequested` is true, so the caller can tell an ordered shutdown from a crash.
public actor DataPlaneSupervisor {
    private let reaper: ChildReaper
    private let forwardsSignals: Bool
    private let logger: Logger
    private let clock = ContinuousClock()

    /// The running data plane's pid; nil before it starts, between restarts and after it exited.
    public private(set) var currentPID: pid_t?
    /// How many times the data plane was started.
    public private(set) var startCount = 0
    /// True once `stop` or `drain` was called: the data plane is not restarted any more.
    public private(set) var stopRequested = false
    private var running = false
    private var restartWait: Task<Void, Never>?

    /// - Parameter forwardsSignals: point `SignalForwarder` at the data plane while it runs (the
    ///   caller installs the forwarder).
    public init(reaper: ChildReaper = .shared, forwardsSignals: Bool = false,
                logger: Logger = Logger(label: "sluice.supervisor")) {
        self.reaper = reaper
        self.forwardsSignals = forwardsSignals
        self.logger = logger
    }

    /// Runs the data plane until it exits for good, and returns how it ended.
    ///
    /// Throws the `ProcessError` of a failed spawn (a missing binary is a configuration error), and
    /// `CancellationError` when the surrounding task is cancelled — after killing the data plane
    /// and reaping it, so no child is left behind — or when `stop`/`drain` came before the start.
    public func run(launch: ProcessLaunch, restart: RestartPolicy?) async throws -> ExitStatus {
        precondition(!running, "DataPlaneSupervisor.run is already running")
        running = true
        defer { running = false }
        let origin = clock.now
        var tracker = restart.map(RestartTracker.init(policy:))

        while true {
            try Task.checkCancellation()
            if stopRequested { throw CancellationError() }
            let pid = try reaper.spawn(launch)
            currentPID = pid
            startCount += 1
            if forwardsSignals { SignalForwarder.target = pid }
            tracker?.recordStart(at: origin.duration(to: clock.now))
            logger.info("data plane started", metadata: ["pid": "\(pid)", "command": "\(launch.commandLine)"])

            let status = await waitForExit(pid)
            if forwardsSignals { SignalForwarder.target = nil }
            currentPID = nil
            guard let status else {
                throw CancellationError()
            }

            if stopRequested {
                logger.info("data plane stopped", metadata: ["pid": "\(pid)", "status": "\(status)"])
                return status
            }
            guard var restartTracker = tracker else {
                logger.warning("data plane exited", metadata: ["pid": "\(pid)", "status": "\(status)"])
                return status
            }
            let decision = restartTracker.recordExit(at: origin.duration(to: clock.now))
            tracker = restartTracker
            guard case .restart(let delay) = decision else {
                logger.error("data plane exited; giving up after restarting it too often in a row",
                             metadata: ["pid": "\(pid)", "status": "\(status)",
                                        "failures": "\(restartTracker.consecutiveFailures)"])
                return status
            }
            logger.warning("data plane exited; restarting", metadata: [
                "pid": "\(pid)", "status": "\(status)", "delay": "\(delay)",
                "failures": "\(restartTracker.consecutiveFailures)",
            ])
            await waitBeforeRestart(delay)
            try Task.checkCancellation()
            if stopRequested { return status }
        }
    }

    /// Signals the data plane and stops restarting it. Returns false when none was running.
    @discardableResult
    public func stop(signal: Int32 = SIGKILL) -> Bool {
        stopRequested = true
        restartWait?.cancel()
        guard let pid = currentPID else { return false }
        logger.info("stopping data plane", metadata: ["pid": "\(pid)", "signal": "\(signalName(signal))"])
        return (try? reaper.signal(pid, signal)) ?? false
    }

    /// Drains and stops the data plane per `sequence` (AGENT.md §6) and stops restarting it.
    /// Returns once the data plane has exited (or the sequence gave up waiting for it).
    public func drain<C: Clock>(_ sequence: DrainSequence<C>) async -> DrainReport where C.Duration == Duration {
        stopRequested = true
        restartWait?.cancel()
        guard let pid = currentPID else {
            logger.info("drain requested while no data plane runs")
            return DrainReport(ending: .notRunning, drainRequestFailed: false, signalsSent: [], exitStatus: nil)
        }
        let reaper = self.reaper
        let logger = self.logger
        return await sequence.run(
            waitForExit: { await reaper.exitStatusUnlessCancelled(of: pid) },
            sendSignal: { signal in
                do {
                    try reaper.signal(pid, signal)
                } catch {
                    logger.error("signalling the data plane failed", metadata: ["pid": "\(pid)", "error": "\(error)"])
                }
            })
    }

    /// nil when the task was cancelled; the data plane is then killed and reaped first.
    private func waitForExit(_ pid: pid_t) async -> ExitStatus? {
        if let status = await reaper.exitStatusUnlessCancelled(of: pid) { return status }
        logger.notice("supervisor cancelled; killing the data plane", metadata: ["pid": "\(pid)"])
        _ = try? reaper.signal(pid, SIGKILL)
        let status = await reaper.exitStatus(of: pid)
        logger.info("data plane stopped", metadata: ["pid": "\(pid)", "status": "\(status)"])
        return nil
    }

    /// Sleeps `delay`, ending early when `stop`/`drain` is called or the task is cancelled.
    private func waitBeforeRestart(_ delay: Duration) async {
        let clock = self.clock
        let wait = Task<Void, Never> { _ = try? await clock.sleep(for: delay) }
        restartWait = wait
        await withTaskCancellationHandler {
            await wait.value
        } onCancel: {
            wait.cancel()
        }
        restartWait = nil
    }
}
