import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The data plane's admin API, as far as draining needs it (Envoy's `/drain_listeners` and the
/// active-connection stats). The agent's admin client conforms to it; tests use a fake.
public protocol DataPlaneAdmin: Sendable {
    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async throws
    /// The sum of the listeners' `downstream_cx_active`, or nil when the stat does not exist.
    func activeDownstreamConnections() async throws -> Int?
}

/// How to stop the data plane when the agent is asked to stop (AGENT.md §6).
public struct DrainPlan: Sendable, Hashable {
    /// When the wait after the drain request ends.
    public enum Ending: Sendable, Hashable {
        /// Wait this long (`terminationDrainDuration`) unless the data plane exits first.
        case afterDuration(Duration)
        /// `EXIT_ON_ZERO_ACTIVE_CONNECTIONS`: wait `minimumDuration`, then check every `pollInterval`
        /// until no connection is active, the stat is missing, or `maximumConsecutiveErrors` checks
        /// in a row failed.
        case onZeroActiveConnections(minimumDuration: Duration, pollInterval: Duration, maximumConsecutiveErrors: Int)
    }

    /// Sidecars drain inbound listeners only (`drain_listeners?inboundonly&graceful`): outbound
    /// connections of an application still shutting down keep working. Routers drain everything.
    public var inboundOnly: Bool
    public var ending: Ending
    /// True after `/quitquitquit` or `/drain` on the status port: stop at once, no drain and no wait.
    public var skipDrain: Bool
    /// Istio stops Envoy with Go's `Process.Kill`, which is SIGKILL.
    public var stopSignal: Int32
    /// With a stop signal other than SIGKILL: how long to wait for the exit before sending SIGKILL.
    public var stopGracePeriod: Duration

    public init(inboundOnly: Bool, ending: Ending, skipDrain: Bool = false,
                stopSignal: Int32 = SIGKILL, stopGracePeriod: Duration = .seconds(5)) {
        self.inboundOnly = inboundOnly
        self.ending = ending
        self.skipDrain = skipDrain
        self.stopSignal = stopSignal
        self.stopGracePeriod = stopGracePeriod
    }

    /// The plan from ProxyConfig and the agent's environment, with Istio's defaults.
    /// - Parameters:
    ///   - isSidecar: proxy type `sidecar` (every other type drains all listeners).
    ///   - terminationDrainDuration: ProxyConfig `terminationDrainDuration` (5 s).
    ///   - exitOnZeroActiveConnections: `EXIT_ON_ZERO_ACTIVE_CONNECTIONS`.
    ///   - minimumDrainDuration: `MINIMUM_DRAIN_DURATION` (5 s).
    public init(isSidecar: Bool, terminationDrainDuration: Duration = .seconds(5),
                exitOnZeroActiveConnections: Bool = false, minimumDrainDuration: Duration = .seconds(5),
                skipDrain: Bool = false, stopSignal: Int32 = SIGKILL) {
        self.init(inboundOnly: isSidecar,
                  ending: exitOnZeroActiveConnections
                      ? .onZeroActiveConnections(minimumDuration: minimumDrainDuration, pollInterval: .seconds(1),
                                                 maximumConsecutiveErrors: 5)
                      : .afterDuration(terminationDrainDuration),
                  skipDrain: skipDrain, stopSignal: stopSignal)
    }
}

/// What a drain did, for logs and tests.
public struct DrainReport: Sendable, Hashable {
    public enum Ending: Sendable, Hashable {
        /// `skipDrain`: stopped without draining.
        case skipped
        /// The data plane exited during the wait; it was not signalled.
        case dataPlaneExited
        case drainDurationElapsed
        case noActiveConnections
        case activeConnectionStatMissing
        case tooManyStatErrors
        /// The task running the drain was cancelled: stopped at once.
        case cancelled
        /// No data plane was running (not started yet, or between restarts): nothing to drain.
        case notRunning
    }

    public var ending: Ending
    /// The drain request failed (logged; the sequence went on).
    public var drainRequestFailed: Bool
    /// Signals sent to stop the data plane, in order.
    public var signalsSent: [Int32]
    /// The data plane's exit, when it was seen.
    public var exitStatus: ExitStatus?
}

/// Runs a `DrainPlan` against a data plane: drain request, wait, stop. The clock is injected so
/// tests run Istio's second-scale timings in virtual time.
public struct DrainSequence<C: Clock>: Sendable where C.Duration == Duration {
    public var plan: DrainPlan
    public var admin: any DataPlaneAdmin
    public var clock: C
    public var logger: Logger
    /// After the last signal (SIGKILL), how long to wait for the exit before reporting it unseen.
    public var killWait: Duration = .seconds(10)

    public init(plan: DrainPlan, admin: any DataPlaneAdmin, clock: C,
                logger: Logger = Logger(label: "sluice.supervisor.drain")) {
        self.plan = plan
        self.admin = admin
        self.clock = clock
        self.logger = logger
    }

    /// For `/drain` on the status port (native-sidecar `preStop`): drain without letting the data
    /// plane exit; the agent then sets `skipDrain` so the later SIGTERM stops it at once.
    public func requestDrainWithoutExit() async throws {
        try await admin.drainListeners(inboundOnly: plan.inboundOnly, graceful: true, skipExit: true)
    }

    /// Runs the plan.
    /// - Parameters:
    ///   - waitForExit: returns the data plane's exit status when it exits, nil when cancelled.
    ///   - sendSignal: signals the data plane.
    public func run(waitForExit: @escaping @Sendable () async -> ExitStatus?,
                    sendSignal: @escaping @Sendable (Int32) async -> Void) async -> DrainReport {
        var report = DrainReport(ending: .skipped, drainRequestFailed: false, signalsSent: [], exitStatus: nil)
        if plan.skipDrain {
            logger.info("skipping drain: stopping the data plane at once")
            await stop(&report, waitForExit: waitForExit, sendSignal: sendSignal)
            return report
        }

        logger.info("draining the data plane's listeners", metadata: ["inboundOnly": "\(plan.inboundOnly)"])
        do {
            try await admin.drainListeners(inboundOnly: plan.inboundOnly, graceful: true, skipExit: false)
        } catch {
            // Istio logs and goes on: the wait still gives open requests their time.
            report.drainRequestFailed = true
            logger.warning("drain request failed; waiting anyway", metadata: ["error": "\(error)"])
        }

        switch plan.ending {
        case .afterDuration(let duration):
            logger.info("graceful termination period starting", metadata: ["duration": "\(duration)"])
            if let status = await exit(within: duration, waitForExit) {
                return exitedEarly(status, &report)
            }
            report.ending = Task.isCancelled ? .cancelled : .drainDurationElapsed
        case .onZeroActiveConnections(let minimum, let interval, let maximumErrors):
            logger.info("draining, then waiting for active connections to close", metadata: ["minimum": "\(minimum)"])
            if let status = await exit(within: minimum, waitForExit) {
                return exitedEarly(status, &report)
            }
            var consecutiveErrors = 0
            // No upper bound, as in Istio: the kubelet's SIGKILL after the grace period is the bound.
            while true {
                if let status = await exit(within: interval, waitForExit) {
                    return exitedEarly(status, &report)
                }
                if Task.isCancelled {
                    report.ending = .cancelled
                    break
                }
                do {
                    let active = try await admin.activeDownstreamConnections()
                    consecutiveErrors = 0
                    guard let active else {
                        logger.info("no downstream_cx_active stat found; stopping the data plane")
                        report.ending = .activeConnectionStatMissing
                        break
                    }
                    if active == 0 {
                        logger.info("no active connections left; stopping the data plane")
                        report.ending = .noActiveConnections
                        break
                    }
                    logger.info("connections still active", metadata: ["active": "\(active)"])
                } catch {
                    consecutiveErrors += 1
                    logger.warning("reading active connections failed",
                                   metadata: ["error": "\(error)", "consecutiveErrors": "\(consecutiveErrors)"])
                    if consecutiveErrors >= maximumErrors {
                        report.ending = .tooManyStatErrors
                        break
                    }
                }
            }
        }
        await stop(&report, waitForExit: waitForExit, sendSignal: sendSignal)
        return report
    }

    private func exitedEarly(_ status: ExitStatus, _ report: inout DrainReport) -> DrainReport {
        logger.info("data plane exited during the drain", metadata: ["status": "\(status)"])
        report.ending = .dataPlaneExited
        report.exitStatus = status
        return report
    }

    /// Sends the stop signal; escalates to SIGKILL if the data plane outlives the grace period.
    private func stop(_ report: inout DrainReport, waitForExit: @escaping @Sendable () async -> ExitStatus?,
                      sendSignal: @escaping @Sendable (Int32) async -> Void) async {
        var signal = plan.stopSignal
        while true {
            logger.info("stopping the data plane", metadata: ["signal": "\(signalName(signal))"])
            await sendSignal(signal)
            report.signalsSent.append(signal)
            let wait = signal == SIGKILL ? killWait : plan.stopGracePeriod
            if let status = await exit(within: wait, waitForExit) {
                report.exitStatus = status
                return
            }
            if signal == SIGKILL {
                logger.error("data plane did not exit after SIGKILL", metadata: ["waited": "\(wait)"])
                return
            }
            signal = SIGKILL
        }
    }

    /// The exit status if the data plane exits within `duration`; nil when the time runs out first
    /// or the task is cancelled. When both happen together, the exit wins: a test clock's sleeps
    /// return at once, and a process that is already gone must not be reported as still running.
    func exit(within duration: Duration, _ waitForExit: @escaping @Sendable () async -> ExitStatus?) async -> ExitStatus? {
        let clock = self.clock
        return await withTaskGroup(of: ExitStatus?.self) { group in
            group.addTask { await waitForExit() }
            group.addTask {
                try? await clock.sleep(until: clock.now.advanced(by: duration), tolerance: nil)
                return nil
            }
            var exit: ExitStatus?
            if let first = await group.next(), let status = first {
                exit = status
            }
            group.cancelAll()
            for await result in group {
                if let result { exit = exit ?? result }
            }
            return exit
        }
    }
}

extension DrainSequence where C == ContinuousClock {
    public init(plan: DrainPlan, admin: any DataPlaneAdmin, logger: Logger = Logger(label: "sluice.supervisor.drain")) {
        self.init(plan: plan, admin: admin, clock: ContinuousClock(), logger: logger)
    }
}
