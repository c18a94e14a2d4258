/// When to start the data plane again after it exited on its own (`--restart-proxy`).
///
/// Istio restarts nothing since 1.4 (istio/istio#17460): the agent exits and Kubernetes restarts
/// the container. Sluice keeps that by default; this policy is the opt-in alternative, a capped
/// exponential backoff like Istio's pre-1.4 loop. Every exit the agent did not ask for counts as a
/// failure, a clean one included: a data plane that keeps exiting 0 should not be restarted in a
/// tight loop either.
public struct RestartPolicy: Sendable, Hashable {
    /// The wait before the first restart.
    public var initialDelay: Duration
    /// The wait never grows beyond this.
    public var maximumDelay: Duration
    /// A data plane that ran at least this long before exiting resets the failure count.
    public var stableRunDuration: Duration
    /// Restart at most this many times in a row (without a stable run between); the next exit ends
    /// the loop with the data plane's status. nil: restart forever.
    public var maximumConsecutiveRestarts: Int?

    public init(initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(30),
                stableRunDuration: Duration = .seconds(60), maximumConsecutiveRestarts: Int? = nil) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.stableRunDuration = stableRunDuration
        self.maximumConsecutiveRestarts = maximumConsecutiveRestarts
    }

    /// The wait before restarting after the `n`th failure in a row (n ≥ 1): the initial delay,
    /// doubled for each earlier failure, capped at the maximum.
    public func delay(forFailure n: Int) -> Duration {
        var delay = initialDelay
        for _ in 1..<max(1, n) {
            if delay >= maximumDelay { break }
            delay = delay * 2
        }
        return min(delay, maximumDelay)
    }
}

/// What to do after the data plane exited.
public enum RestartDecision: Sendable, Hashable {
    case restart(after: Duration)
    case giveUp
}

/// The restart loop's memory: when the data plane last started and how many times in a row it
/// failed. Times are offsets from any fixed origin the caller chooses, so tests need no clock.
public struct RestartTracker: Sendable, Hashable {
    public let policy: RestartPolicy
    public private(set) var consecutiveFailures = 0
    public private(set) var lastStart: Duration?

    public init(policy: RestartPolicy) {
        self.policy = policy
    }

    public mutating func recordStart(at time: Duration) {
        lastStart = time
    }

    /// Records an exit at `time` and decides what comes next.
    public mutating func recordExit(at time: Duration) -> RestartDecision {
        if let lastStart, time - lastStart >= policy.stableRunDuration {
            consecutiveFailures = 0
        }
        consecutiveFailures += 1
        if let limit = policy.maximumConsecutiveRestarts, consecutiveFailures > limit {
            return .giveUp
        }
        return .restart(after: policy.delay(forFailure: consecutiveFailures))
    }
}
