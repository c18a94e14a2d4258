import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

/// AGENT.md §6, in virtual time: the order of admin calls and signals and when each came.
@Suite struct DrainSequenceTests {
    private func drain(_ plan: DrainPlan, admin answers: [FakeAdmin.Answer] = [], drainFails: Bool = false,
                       exitsOn: Set<Int32> = [SIGKILL, SIGTERM])
        async throws -> (DrainReport, [(FakeAdmin.Call, Duration)], [(Int32, Duration)]) {
        let clock = VirtualClock()
        let admin = FakeAdmin(answers: answers, drainFails: drainFails, clock: clock)
        let dataPlane = FakeDataPlane(exitsOn: exitsOn, clock: clock)
        let sequence = DrainSequence(plan: plan, admin: admin, clock: clock)
        let report = try await withTimeout(.seconds(30), "drain sequence") {
            await sequence.run(waitForExit: { await dataPlane.waitForExit() },
                               sendSignal: { await dataPlane.sendSignal($0) })
        }
        return (report, admin.calls, dataPlane.signals)
    }

    private let drainCall = FakeAdmin.Call.drain(inboundOnly: true, graceful: true, skipExit: false)

    @Test func sidecarDrainsInboundListenersThenKillsAfterTheTerminationDrainDuration() async throws {
        let (report, calls, signals) = try await drain(DrainPlan(isSidecar: true))
        #expect(calls.map(\.0) == [drainCall])
        #expect(calls.map(\.1) == [.zero])
        #expect(signals.map(\.0) == [SIGKILL])
        #expect(signals.map(\.1) == [.seconds(5)])
        #expect(report.ending == .drainDurationElapsed)
        #expect(report.exitStatus == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(!report.drainRequestFailed)
    }

    @Test func routerDrainsEveryListener() async throws {
        let (_, calls, signals) = try await drain(DrainPlan(isSidecar: false, terminationDrainDuration: .seconds(7)))
        #expect(calls.map(\.0) == [.drain(inboundOnly: false, graceful: true, skipExit: false)])
        #expect(signals.map(\.1) == [.seconds(7)])
    }

    @Test func aFailedDrainRequestIsLoggedAndTheSequenceGoesOn() async throws {
        let (report, calls, signals) = try await drain(DrainPlan(isSidecar: true), drainFails: true)
        #expect(report.drainRequestFailed)
        #expect(calls.map(\.0) == [drainCall])
        #expect(signals.map(\.0) == [SIGKILL])
        #expect(signals.map(\.1) == [.seconds(5)])
    }

    @Test func exitOnZeroWaitsTheMinimumThenPollsEverySecondUntilZero() async throws {
        let plan = DrainPlan(isSidecar: true, exitOnZeroActiveConnections: true)
        let (report, calls, signals) = try await drain(plan, admin: [.active(3), .active(1), .active(0)])
        #expect(calls.map(\.0) == [drainCall, .activeConnections, .activeConnections, .activeConnections])
        #expect(calls.map(\.1) == [.zero, .seconds(6), .seconds(7), .seconds(8)])
        #expect(signals.map(\.0) == [SIGKILL])
        #expect(signals.map(\.1) == [.seconds(8)])
        #expect(report.ending == .noActiveConnections)
    }

    @Test func exitOnZeroStopsAtOnceWhenTheStatIsMissing() async throws {
        let plan = DrainPlan(isSidecar: true, exitOnZeroActiveConnections: true, minimumDrainDuration: .seconds(2))
        let (report, calls, signals) = try await drain(plan, admin: [.active(2), .active(nil), .active(5)])
        #expect(calls.map(\.1) == [.zero, .seconds(3), .seconds(4)])
        #expect(signals.map(\.1) == [.seconds(4)])
        #expect(report.ending == .activeConnectionStatMissing)
    }

    @Test func exitOnZeroStopsAfterFiveConsecutiveErrors() async throws {
        let plan = DrainPlan(isSidecar: true, exitOnZeroActiveConnections: true)
        // A success in between resets the count: 2 errors, a success, then 5 errors.
        let answers: [FakeAdmin.Answer] = [.failure, .failure, .active(4), .failure, .failure, .failure, .failure, .failure, .active(0)]
        let (report, calls, signals) = try await drain(plan, admin: answers)
        #expect(calls.count == 1 + 8)
        #expect(calls.last?.1 == .seconds(13))
        #expect(signals.map(\.1) == [.seconds(13)])
        #expect(report.ending == .tooManyStatErrors)
    }

    @Test func skipDrainStopsAtOnceWithoutAdminCalls() async throws {
        let (report, calls, signals) = try await drain(DrainPlan(isSidecar: true, skipDrain: true))
        #expect(calls.isEmpty)
        #expect(signals.map(\.0) == [SIGKILL])
        #expect(signals.map(\.1) == [.zero])
        #expect(report.ending == .skipped)
    }

    @Test func aGentlerStopSignalEscalatesToSigkillAfterTheGracePeriod() async throws {
        var plan = DrainPlan(isSidecar: true, stopSignal: SIGTERM)
        plan.stopGracePeriod = .seconds(3)
        let (report, _, signals) = try await drain(plan, exitsOn: [SIGKILL])
        #expect(signals.map(\.0) == [SIGTERM, SIGKILL])
        #expect(signals.map(\.1) == [.seconds(5), .seconds(8)])
        #expect(report.signalsSent == [SIGTERM, SIGKILL])
        #expect(report.exitStatus == .signaled(signal: SIGKILL, coreDumped: false))

        let (gentle, _, gentleSignals) = try await drain(plan, exitsOn: [SIGTERM])
        #expect(gentleSignals.map(\.0) == [SIGTERM])
        #expect(gentle.exitStatus == .signaled(signal: SIGTERM, coreDumped: false))
    }

    @Test func preStopDrainKeepsTheDataPlaneRunning() async throws {
        let admin = FakeAdmin()
        try await DrainSequence(plan: DrainPlan(isSidecar: true), admin: admin).requestDrainWithoutExit()
        #expect(admin.calls.map(\.0) == [.drain(inboundOnly: true, graceful: true, skipExit: true)])
    }

    @Test func planDefaultsFollowIstio() {
        let plain = DrainPlan(isSidecar: true)
        #expect(plain.inboundOnly)
        #expect(plain.ending == .afterDuration(.seconds(5)))
        #expect(plain.stopSignal == SIGKILL)
        #expect(!plain.skipDrain)
        let zero = DrainPlan(isSidecar: false, exitOnZeroActiveConnections: true, minimumDrainDuration: .seconds(9))
        #expect(!zero.inboundOnly)
        #expect(zero.ending == .onZeroActiveConnections(minimumDuration: .seconds(9), pollInterval: .seconds(1),
                                                        maximumConsecutiveErrors: 5))
    }

    /// Real time and a real child: the wait ends when the data plane exits, which is not signalled.
    @Test func aDataPlaneExitingDuringTheWaitEndsItWithoutASignal() async throws {
        let reaper = ChildReaper.shared
        let pid = try reaper.spawn(ProcessLaunch(executablePath: "/bin/sleep", arguments: ["0.2"], environment: [:]))
        let admin = FakeAdmin()
        let sequence = DrainSequence(plan: DrainPlan(isSidecar: true, terminationDrainDuration: .seconds(20)), admin: admin)
        let started = ContinuousClock.now
        let report = try await withTimeout(.seconds(15), "drain") {
            await sequence.run(waitForExit: { await reaper.exitStatusUnlessCancelled(of: pid) },
                               sendSignal: { _ = try? reaper.signal(pid, $0) })
        }
        let elapsed = ContinuousClock.now - started
        #expect(report.ending == .dataPlaneExited)
        #expect(report.signalsSent.isEmpty)
        #expect(report.exitStatus == .exited(code: 0))
        #expect(elapsed < .seconds(10))
        #expect(admin.calls.map(\.0) == [drainCall])
    }

    /// Against the test data plane, over HTTP: 2 active connections drop one per second after the
    /// drain; the sequence polls until zero, then kills. The data plane's log gives the order.
    @Test func exitOnZeroAgainstTheTestDataPlane() async throws {
        let dataPlane = try await startTestDataPlane(environment: ["SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS": "2"])
        let reaper = ChildReaper.shared
        defer { dataPlane.stop() }
        let plan = DrainPlan(inboundOnly: true, ending: .onZeroActiveConnections(
            minimumDuration: .milliseconds(300), pollInterval: .milliseconds(250), maximumConsecutiveErrors: 5))
        let sequence = DrainSequence(plan: plan, admin: LoopbackAdmin(port: dataPlane.adminPort))
        let started = ContinuousClock.now
        let report = try await withTimeout(.seconds(30), "drain") {
            await sequence.run(waitForExit: { await reaper.exitStatusUnlessCancelled(of: dataPlane.pid) },
                               sendSignal: { _ = try? reaper.signal(dataPlane.pid, $0) })
        }
        let elapsed = ContinuousClock.now - started
        #expect(report.ending == .noActiveConnections)
        #expect(report.exitStatus == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(elapsed >= .seconds(2), "two connections take two seconds to close")
        #expect(elapsed < .seconds(20))

        let requests = logEvents(dataPlane.logPath).filter { $0["event"] as? String == "request" }
        let drain = try #require(requests.first)
        #expect(drain["path"] as? String == "/drain_listeners")
        #expect(drain["query"] as? String == "inboundonly&graceful")
        let polls = requests.dropFirst()
        #expect(polls.count >= 3)
        #expect(polls.allSatisfy { $0["path"] as? String == "/stats" })
        let drainTime = try #require(drain["monotonic_ms"] as? Int)
        let firstPoll = try #require(polls.first?["monotonic_ms"] as? Int)
        #expect(firstPoll - drainTime >= 300 + 250 - 20, "first poll only after the minimum drain duration and one interval")
    }
}
