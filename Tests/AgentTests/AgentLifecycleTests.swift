import ConfigFormats
import Glibc
import PodLab
import TextFiles
import Testing

/// pilot-agent as a process, end to end: started as root in a namespace of its own, supervising the
/// stand-in data plane. Real signals, real HTTP, real exit codes.
@Suite(.serialized) struct AgentLifecycleTests {
    @Test func dropsToTheProxyUserWritesTheBootstrapAndBecomesReady() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(environment: try harness.environment(["SLUICE_TEST_DATAPLANE_STARTUP_DELAY_MS": "400"]))
        // Not ready while the data plane's listeners are not up yet.
        let early = try #require(harness.waitFor("/healthz/ready", timeout: .seconds(10)) { _ in true })
        #expect(early.status == 503, "\(harness.agentOutput)")
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")

        let status = try TextFile.read("/proc/\(agent.pid)/status")
        #expect(status.contains("Uid:\t1337\t1337\t1337\t1337"))
        #expect(status.contains("CapEff:\t0000000000000000"))
        #expect(status.contains("CapBnd:\t0000000000000000"))
        #expect(status.contains("NoNewPrivs:\t1"))

        let bootstrap = try JSONValue.parse(json: try TextFile.read(harness.root + "/etc/istio/proxy/envoy-rev.json"))
        #expect(bootstrap["node"]?["id"] == "sidecar~127.0.0.1~reviews-v1-abc.default~default.svc.cluster.local")
        let argv = try #require(harness.dataPlaneEvents().first { $0["event"] == "argv" }?["argv"]?.arrayValue)
        #expect(argv.prefix(5) == ["-c", .string(harness.root + "/etc/istio/proxy/envoy-rev.json"), "--drain-time-s", "45", "--drain-strategy"])

        let metrics = try harness.get("/stats/prometheus")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("istio_agent_startup_duration_seconds"))
        #expect(metrics.body.contains("istio_agent_process_resident_memory_bytes"))
    }

    @Test func sigtermFailsReadinessDrainsInboundThenStopsAfterTheTerminationDrainDuration() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(environment: try harness.environment(proxyConfig: ["terminationDrainDuration": "1.5s"]))
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")

        let signalled = monotonicMilliseconds()
        agent.signal(SIGTERM)
        // The signal reaches the agent's signal handler asynchronously: allow it a moment, not the drain's 1.5 s.
        let readiness = try #require(harness.waitFor("/healthz/ready", timeout: .milliseconds(500)) { $0.status != 200 })
        #expect(readiness.status == 503)
        #expect(readiness.body.contains("server is terminated"))
        let code = agent.waitForExit(timeout: .seconds(10))
        let exited = monotonicMilliseconds()
        #expect(code == 0, "\(harness.agentOutput)")

        let drains = harness.adminRequests(path: "/drain_listeners")
        #expect(drains.count == 1)
        #expect(drains.first?["query"] == "inboundonly&graceful")
        let drainedAt = drains.first?["monotonic_ms"]?.intValue ?? 0
        #expect(drainedAt - signalled < 1000, "the drain request follows SIGTERM at once")
        #expect(exited - drainedAt >= 1400, "the data plane gets terminationDrainDuration")
        #expect(exited - drainedAt < 4000)
    }

    @Test func aRouterDrainsEveryListener() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(["proxy", "router"], environment: try harness.environment(proxyConfig: ["terminationDrainDuration": "0.2s"]))
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        agent.signal(SIGTERM)
        #expect(agent.waitForExit(timeout: .seconds(10)) == 0)
        #expect(harness.adminRequests(path: "/drain_listeners").first?["query"] == "graceful")
    }

    @Test func aCrashedDataPlaneTakesTheAgentDownWithItsExitCode() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(environment: try harness.environment([
            "SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS": "300", "SLUICE_TEST_DATAPLANE_EXIT_CODE": "7",
        ]))
        #expect(agent.waitForExit(timeout: .seconds(10)) == 7, "\(harness.agentOutput)")
        #expect(harness.dataPlaneEvents().filter { $0["event"] == "argv" }.count == 1)
    }

    @Test func restartProxyRestartsWithGrowingDelaysUntilSIGTERM() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(["proxy", "sidecar", "--restart-proxy"], environment: try harness.environment([
            "SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS": "50", "SLUICE_TEST_DATAPLANE_EXIT_CODE": "3",
        ]))
        let deadline = ContinuousClock.now + .seconds(8)
        var starts: [Int64] = []
        while ContinuousClock.now < deadline && starts.count < 4 {
            usleep(50_000)
            starts = harness.dataPlaneEvents().filter { $0["event"] == "argv" }.compactMap { $0["monotonic_ms"]?.intValue }
        }
        #expect(starts.count >= 4, "\(harness.agentOutput)")
        let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(gaps.count >= 3)
        if gaps.count >= 3 { #expect(gaps[2] > gaps[0], "backoff grows: \(gaps)") }
        agent.signal(SIGTERM)
        #expect(agent.waitForExit(timeout: .seconds(10)) == 0, "\(harness.agentOutput)")
    }

    @Test func quitquitquitStopsWithoutDrainingAndDrainPreparesAnImmediateStop() throws {
        let harness = try AgentHarness()
        let agent = try harness.start()
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        #expect(try harness.get("/quitquitquit").status == 405)
        let drain = try harness.get("/drain", method: "POST")
        #expect(drain.status == 200)
        #expect(harness.adminRequests(path: "/drain_listeners").first?["query"] == "inboundonly&graceful&skip_exit")

        let asked = monotonicMilliseconds()
        #expect(try harness.get("/quitquitquit", method: "POST").status == 200)
        #expect(agent.waitForExit(timeout: .seconds(10)) == 0, "\(harness.agentOutput)")
        #expect(monotonicMilliseconds() - asked < 3000, "no terminationDrainDuration wait")
        #expect(harness.adminRequests(path: "/drain_listeners").count == 1, "only the /drain one")
    }

    @Test func exitOnZeroActiveConnectionsWaitsForConnectionsToFinish() throws {
        let harness = try AgentHarness()
        let agent = try harness.start(environment: try harness.environment([
            "EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "MINIMUM_DRAIN_DURATION": "500ms",
            "SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS": "2",
        ]))
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        let signalled = monotonicMilliseconds()
        agent.signal(SIGTERM)
        #expect(agent.waitForExit(timeout: .seconds(15)) == 0, "\(harness.agentOutput)")
        let elapsed = monotonicMilliseconds() - signalled
        // Two connections close one a second after the drain: the agent stops only after both.
        #expect(elapsed >= 1900, "\(elapsed) ms")
        #expect(harness.adminRequests(path: "/stats").count >= 2, "the agent polled downstream_cx_active")
    }

    @Test func asPID1TheAgentReapsOrphanedGrandchildren() throws {
        let harness = try AgentHarness()
        let unshare = try PodLab.systemExecutable("unshare")
        let wrapper = try harness.start(environment: try harness.environment(["SLUICE_TEST_DATAPLANE_ORPHANS": "3"]),
                                        wrapper: [unshare, "--pid", "--fork", "--kill-child"])
        defer {
            // --kill-child's parent-death signal does not survive the agent's switch to 1337, so the
            // agent is killed itself: as PID 1 of its PID namespace, it takes the data plane with it.
            for agent in childPIDs(of: wrapper.pid) { kill(agent, SIGKILL) }
            wrapper.signal(SIGKILL)
            _ = wrapper.waitForExit(timeout: .seconds(10))
        }
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        let orphans = try #require(harness.dataPlaneEvents().first { $0["event"] == "orphans" }?["pids"]?.arrayValue)
        #expect(orphans.count == 3)
        // The orphans live 200 ms; give the reaper time, then none may be left as a zombie.
        usleep(800_000)
        let agentPID = try #require(childPIDs(of: wrapper.pid).first)
        let zombies = childPIDs(of: agentPID).filter { state(of: $0) == "Z" }
        #expect(zombies.isEmpty, "zombies under the agent: \(zombies)")
    }

    private func childPIDs(of parent: pid_t) -> [pid_t] {
        guard let text = try? TextFile.read("/proc/\(parent)/task/\(parent)/children") else { return [] }
        return text.split(separator: " ").compactMap { pid_t($0) }
    }

    private func state(of pid: pid_t) -> String? {
        guard let text = try? TextFile.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
    }
}
