import Synchronization
import WorkloadIdentity

/// Wall-clock time for certificate validity and rotation, injectable so tests can move time on.
public protocol SecretClock: Sendable {
    func now() -> WallClockTime
    /// Returns at or after `deadline`; throws when the task is cancelled.
    func sleep(until deadline: WallClockTime) async throws
}

/// The system's clock.
public struct SystemSecretClock: SecretClock {
    /// Long waits are taken in steps and re-checked against the wall clock, so a certificate still rotates
    /// on time after the machine was suspended or its clock was stepped (a monotonic sleep would not see it).
    static let longestStep: Duration = .seconds(30)

    public init() {}

    public func now() -> WallClockTime { .now() }

    public func sleep(until deadline: WallClockTime) async throws {
        while true {
            let remaining = deadline - now()
            if remaining <= .zero { return }
            try await Task.sleep(for: min(remaining, Self.longestStep))
        }
    }
}

/// Wall-clock time moved by hand, for tests and benchmarks: rotation timers fire when the caller says so.
public final class ManualSecretClock: SecretClock {
    private struct Sleeper {
        var deadline: WallClockTime
        var continuation: CheckedContinuation<Void, any Error>
    }
    private let state: Mutex<(now: WallClockTime, sleepers: [Int: Sleeper], next: Int)>

    public init(_ start: WallClockTime = .now()) {
        state = Mutex((start, [:], 0))
    }

    public func now() -> WallClockTime { state.withLock { $0.now } }

    public func sleep(until deadline: WallClockTime) async throws {
        let id = state.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Bool in
                    if deadline <= state.now || Task.isCancelled { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Moves time on and wakes every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let woken = state.withLock { state -> [Sleeper] in
            state.now = state.now + duration
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return Array(due.values)
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }
}
