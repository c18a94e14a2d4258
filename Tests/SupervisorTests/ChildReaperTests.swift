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

/// Both tests make the test process a child subreaper for a moment; serialized so one does not
/// switch it off under the other.
@Suite(.serialized) struct OrphanReapingTests {
    @Test func orphansOfAChildAreReapedAsSubreaper() async throws {
        let reaper = ChildReaper.shared
        try reaper.becomeSubreaper()
        defer { try? reaper.stopBeingSubreaper() }
        #expect(reaper.reapsAllChildren)
        let before = reaper.reapedOrphans
        let pidFile = try temporaryDirectory() + "/orphan.pid"

        // The subshell starts sleep in the background and exits, then sh exits: sleep's parents
        // are gone, so the kernel re-parents it to us.
        let status = try await run(shell(#"(sleep 0.5 & echo $! > "$1"); exit 0"#, [pidFile]))
        #expect(status == .exited(code: 0))
        let orphan = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        if let (_, parent) = processStatus(orphan) {
            #expect(parent == getpid(), "the orphan was re-parented to \(parent), not to this subreaper")
        }
        #expect(await eventually { !processExists(orphan) }, "orphan \(orphan) was not reaped: \(String(describing: processStatus(orphan)))")
        #expect(reaper.reapedOrphans > before)
    }

    @Test func orphansOfTheTestDataPlaneAreReaped() async throws {
        let reaper = ChildReaper.shared
        try reaper.becomeSubreaper()
        defer { try? reaper.stopBeingSubreaper() }
        let before = reaper.reapedOrphans
        let dataPlane = try await startTestDataPlane(environment: [
            "SLUICE_TEST_DATAPLANE_ORPHANS": "2", "SLUICE_TEST_DATAPLANE_ORPHAN_LIFETIME_MS": "300",
        ])
        defer { _ = try? reaper.signal(dataPlane.pid, SIGKILL) }
        let orphans = try #require(logEvents(dataPlane.logPath).first { $0["event"] as? String == "orphans" }?["pids"] as? [Int])
        #expect(orphans.count == 2)
        for orphan in orphans {
            #expect(await eventually { !processExists(pid_t(orphan)) },
                    "orphan \(orphan) was not reaped: \(String(describing: processStatus(pid_t(orphan))))")
        }
        #expect(reaper.reapedOrphans >= before + 2)
        #expect(try httpRequest("POST", port: dataPlane.adminPort, "/quitquitquit").status == 200)
        let status = try await withTimeout(.seconds(10), "quit") { await reaper.exitStatus(of: dataPlane.pid) }
        #expect(status == .exited(code: 0))
    }
}
