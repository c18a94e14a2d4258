import Testing
@testable import Supervisor

@Suite struct RestartPolicyTests {
    @Test func delaysDoubleFromTheInitialDelayUpToTheCap() {
        let policy = RestartPolicy()
        #expect(policy.delay(forFailure: 1) == .milliseconds(200))
        #expect(policy.delay(forFailure: 2) == .milliseconds(400))
        #expect(policy.delay(forFailure: 3) == .milliseconds(800))
        #expect(policy.delay(forFailure: 8) == .milliseconds(25_600))
        #expect(policy.delay(forFailure: 9) == .seconds(30))
        #expect(policy.delay(forFailure: 10_000) == .seconds(30))
        #expect(policy.delay(forFailure: 0) == .milliseconds(200))
    }

    @Test func aStableRunResetsTheFailureCount() {
        var tracker = RestartTracker(policy: RestartPolicy())
        tracker.recordStart(at: .zero)
        #expect(tracker.recordExit(at: .seconds(1)) == .restart(after: .milliseconds(200)))
        tracker.recordStart(at: .milliseconds(1200))
        #expect(tracker.recordExit(at: .seconds(2)) == .restart(after: .milliseconds(400)))
        tracker.recordStart(at: .milliseconds(2400))
        #expect(tracker.recordExit(at: .seconds(3)) == .restart(after: .milliseconds(800)))
        #expect(tracker.consecutiveFailures == 3)
        // Ran 60 s: counted as stable, so this exit is the first failure again.
        tracker.recordStart(at: .seconds(4))
        #expect(tracker.recordExit(at: .seconds(64)) == .restart(after: .milliseconds(200)))
        #expect(tracker.consecutiveFailures == 1)
        // 59.9 s is not stable.
        tracker.recordStart(at: .seconds(65))
        #expect(tracker.recordExit(at: .milliseconds(124_900)) == .restart(after: .milliseconds(400)))
    }

    @Test func givesUpAfterTheRestartBudget() {
        var tracker = RestartTracker(policy: RestartPolicy(maximumConsecutiveRestarts: 2))
        tracker.recordStart(at: .zero)
        #expect(tracker.recordExit(at: .seconds(1)) == .restart(after: .milliseconds(200)))
        tracker.recordStart(at: .seconds(2))
        #expect(tracker.recordExit(at: .seconds(3)) == .restart(after: .milliseconds(400)))
        tracker.recordStart(at: .seconds(4))
        #expect(tracker.recordExit(at: .seconds(5)) == .giveUp)
    }
}
