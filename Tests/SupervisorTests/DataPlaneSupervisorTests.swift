import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DataPlaneSupervisorTests {
    private let sleeper = ProcessLaunch(executablePath: "/bin/sleep", arguments: ["30"], environment: [:])

    /// Waits until the supervisor has a running data plane.
    private func runningPID(_ supervisor: DataPlaneSupervisor) async throws -> pid_t {
        var pid: pid_t?
        let started = await eventually { pid = await supervisor.currentPID; return pid != nil }
        guard started, let pid else { throw TimedOut(what: "data plane start") }
        return pid
    }

    @Test func withoutRestartRunReturnsTheDataPlanesStatus() async throws {
        let supervisor = DataPlaneSupervisor()
        let status = try await withTimeout(.seconds(20), "run") {
            try await supervisor.run(launch: shell("exit 3"), restart: nil)
        }
        #expect(status == .exited(code: 3))
        #expect(status.shellCode == 3)
        #expect(await supervisor.startCount == 1)
        #expect(await supervisor.currentPID == nil)
        #expect(await supervisor.stopRequested == false)
    }

    @Test func aCrashingDataPlaneIsRestartedWithBackoffUntilTheBudgetRunsOut() async throws {
        let supervisor = DataPlaneSupervisor()
        let policy = RestartPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(80),
                                   stableRunDuration: .seconds(60), maximumConsecutiveRestarts: 4)
        let started = ContinuousClock.now
        let status = try await withTimeout(.seconds(30), "restart loop") {
            try await supervisor.run(launch: shell("exit 3"), restart: policy)
        }
        let elapsed = ContinuousClock.now - started
        #expect(status == .exited(code: 3))
        #expect(await supervisor.startCount == 5)
        // 20 + 40 + 80 + 80 ms of backoff at least.
        #expect(elapsed >= .milliseconds(220))
        #expect(elapsed < .seconds(20))
    }

    @Test func cancellingTheTaskKillsAndReapsTheDataPlane() async throws {
        let supervisor = DataPlaneSupervisor()
        let policy = RestartPolicy(initialDelay: .milliseconds(10))
        let sleeper = self.sleeper
        let task = Task { try await supervisor.run(launch: sleeper, restart: policy) }
        let pid = try await runningPID(supervisor)
        task.cancel()
        let result = try await withTimeout(.seconds(10), "cancelled run") { await task.result }
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(!processExists(pid) || processStatus(pid)?.parent != getpid(), "data plane \(pid) survived cancellation")
        #expect(await supervisor.startCount == 1)
    }

    @Test func stopSignalsTheDataPlaneAndEndsTheLoop() async throws {
        let supervisor = DataPlaneSupervisor()
        let sleeper = self.sleeper
        let task = Task { try await supervisor.run(launch: sleeper, restart: RestartPolicy(initialDelay: .milliseconds(10))) }
        _ = try await runningPID(supervisor)
        #expect(await supervisor.stop(signal: SIGTERM))
        let status = try await withTimeout(.seconds(10), "stopped run") { try await task.value }
        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
        #expect(await supervisor.stopRequested)
        #expect(await supervisor.startCount == 1)
    }

    @Test func stopDuringTheRestartDelayEndsTheLoopAtOnce() async throws {
        let supervisor = DataPlaneSupervisor()
        let policy = RestartPolicy(initialDelay: .seconds(60))
        let task = Task { try await supervisor.run(launch: shell("exit 4"), restart: policy) }
        // Started once and exited: now in the 60 s restart delay.
        #expect(await eventually {
            let starts = await supervisor.startCount
            let pid = await supervisor.currentPID
            return starts == 1 && pid == nil
        })
        try await Task.sleep(for: .milliseconds(50))
        let started = ContinuousClock.now
        #expect(await supervisor.stop() == false)
        let status = try await withTimeout(.seconds(10), "stopped loop") { try await task.value }
        #expect(status == .exited(code: 4))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await supervisor.startCount == 1)
    }

    @Test func drainRunsTheSequenceAndTheLoopReturnsTheKill() async throws {
        let supervisor = DataPlaneSupervisor()
        let sleeper = self.sleeper
        let task = Task { try await supervisor.run(launch: sleeper, restart: RestartPolicy(initialDelay: .milliseconds(10))) }
        _ = try await runningPID(supervisor)
        let admin = FakeAdmin()
        let sequence = DrainSequence(plan: DrainPlan(isSidecar: true, terminationDrainDuration: .milliseconds(200)), admin: admin)
        let started = ContinuousClock.now
        let report = try await withTimeout(.seconds(15), "drain") { await supervisor.drain(sequence) }
        let elapsed = ContinuousClock.now - started
        #expect(admin.calls.map(\.0) == [.drain(inboundOnly: true, graceful: true, skipExit: false)])
        #expect(report.ending == .drainDurationElapsed)
        #expect(report.signalsSent == [SIGKILL])
        #expect(report.exitStatus == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .seconds(10))
        let status = try await withTimeout(.seconds(10), "drained run") { try await task.value }
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(await supervisor.startCount == 1)
    }

    @Test func aMissingBinaryIsThrownFromRun() async throws {
        let supervisor = DataPlaneSupervisor()
        await #expect(throws: ProcessError.executableNotFound(path: "/nonexistent/envoy")) {
            try await supervisor.run(launch: ProcessLaunch(executablePath: "/nonexistent/envoy"), restart: RestartPolicy())
        }
        #expect(await supervisor.startCount == 0)
    }

    @Test func drainBeforeTheStartMeansNoStart() async throws {
        let supervisor = DataPlaneSupervisor()
        let report = await supervisor.drain(DrainSequence(plan: DrainPlan(isSidecar: true), admin: FakeAdmin()))
        #expect(report.ending == .notRunning)
        #expect(await supervisor.stopRequested)
        let sleeper = self.sleeper
        await #expect(throws: CancellationError.self) { try await supervisor.run(launch: sleeper, restart: nil) }
        #expect(await supervisor.startCount == 0)
    }

    /// The supervisor, the drain sequence and the test data plane together: the drain request
    /// reaches the data plane first, the kill comes a termination drain duration later.
    @Test func drainingTheTestDataPlane() async throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let bootstrap = directory + "/envoy-rev.json"
        let log = directory + "/dataplane.log"
        try #"{"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}"#
            .write(toFile: bootstrap, atomically: true, encoding: .utf8)
        let launch = ProcessLaunch(executablePath: try testDataPlanePath(), arguments: ["-c", bootstrap],
                                   environment: ["SLUICE_TEST_DATAPLANE_LOG": log])
        let supervisor = DataPlaneSupervisor()
        let task = Task { try await supervisor.run(launch: launch, restart: nil) }
        var port: Int?
        #expect(await eventually {
            port = logEvents(log).first { $0["kind"] as? String == "admin" }?["port"] as? Int
            return port != nil
        })
        let adminPort = try #require(port)
        let sequence = DrainSequence(plan: DrainPlan(isSidecar: false, terminationDrainDuration: .milliseconds(300)),
                                     admin: LoopbackAdmin(port: adminPort))
        let report = try await withTimeout(.seconds(15), "drain") { await supervisor.drain(sequence) }
        let drainedAt = monotonicMilliseconds()
        #expect(report.ending == .drainDurationElapsed)
        #expect(!report.drainRequestFailed)
        let status = try await withTimeout(.seconds(10), "run") { try await task.value }
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
        let requests = logEvents(log).filter { $0["event"] as? String == "request" }
        #expect(requests.map { $0["path"] as? String } == ["/drain_listeners"])
        #expect(requests.first?["query"] as? String == "graceful")
        let requestedAt = try #require(requests.first?["monotonic_ms"] as? Int)
        #expect(drainedAt - requestedAt >= 300, "killed before the termination drain duration passed")
    }
}
