import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ChildReaperTests {
    @Test func manyShortChildrenAreAllReapedWithTheirOwnStatus() async throws {
        let reaper = ChildReaper.shared
        let started = ContinuousClock.now
        var children: [(pid_t, Int32)] = []
        for index in 0..<40 {
            let code = Int32(index % 7)
            children.append((try reaper.spawn(shell("exit \(code)")), code))
        }
        let spawned = children
        let statuses = try await withTimeout(.seconds(30), "40 children") {
            await withTaskGroup(of: (pid_t, ExitStatus).self) { group in
                for (pid, _) in spawned {
                    group.addTask { (pid, await reaper.exitStatus(of: pid)) }
                }
                var statuses: [pid_t: ExitStatus] = [:]
                for await (pid, status) in group { statuses[pid] = status }
                return statuses
            }
        }
        for (pid, code) in children {
            #expect(statuses[pid] == .exited(code: code), "pid \(pid)")
            #expect(!processExists(pid) || processStatus(pid)?.parent != getpid(), "pid \(pid) left a zombie")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// SIGCHLD wakes the reaper: an exit is seen at once, not at the 1 s backstop.
    @Test func exitsAreSeenPromptly() async throws {
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let status = try await run(ProcessLaunch(executablePath: "/bin/sleep", arguments: ["0.1"], environment: [:]))
            #expect(status == .exited(code: 0))
            #expect(ContinuousClock.now - started < .milliseconds(800))
        }
    }

    @Test func statusIsKeptForAWaiterWhoAsksLate() async throws {
        let pid = try ChildReaper.shared.spawn(shell("exit 5"))
        #expect(await eventually { !processExists(pid) }, "the reaper did not reap \(pid)")
        let status = try await withTimeout(.seconds(5), "late waiter") { await ChildReaper.shared.exitStatus(of: pid) }
        #expect(status == .exited(code: 5))
    }

    @Test func cancelledWaiterReturnsNilAndTheChildIsStillReaped() async throws {
        let reaper = ChildReaper.shared
        let pid = try reaper.spawn(ProcessLaunch(executablePath: "/bin/sleep", arguments: ["30"], environment: [:]))
        let waiter = Task { await reaper.exitStatusUnlessCancelled(of: pid) }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let cancelled = try await withTimeout(.seconds(5), "cancelled waiter") { await waiter.value }
        #expect(cancelled == nil)
        #expect(try reaper.signal(pid, SIGKILL))
        let status = try await withTimeout(.seconds(10), "killed child") { await reaper.exitStatus(of: pid) }
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
        // Reaped: the pid is no longer signalled, even if recycled.
        #expect(try reaper.signal(pid, SIGKILL) == false)
    }

    @Test func aProcessThatIsNotOurChildHasNoStatus() async throws {
        let status = try await withTimeout(.seconds(5), "non-child") { await ChildReaper.shared.exitStatus(of: getppid()) }
        #expect(status == .unavailable)
    }
}

// Orphan reaping (PID 1 / subreaper mode) is tested in a process of its own: AgentTests runs the agent
// as PID 1 of a new PID namespace. Making this test process a subreaper would let its reaper take the
// exit statuses of children that other suites, running in parallel, wait for themselves.
