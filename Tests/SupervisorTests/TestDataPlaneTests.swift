import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

/// `sluice-test-dataplane` end to end: the stand-in the agent's tests rely on.
@Suite struct TestDataPlaneTests {
    @Test func adminAPIFromReadyThroughDrainToQuit() async throws {
        let dataPlane = try await startTestDataPlane(listeners: ["virtualInbound", "virtualOutbound"],
                                                     environment: ["SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS": "2"])
        let reaper = ChildReaper.shared
        defer { dataPlane.stop() }
        let port = dataPlane.adminPort
        #expect(dataPlane.listenerPorts.count == 2)

        let ready = try httpRequest("GET", port: port, "/ready")
        #expect(ready.status == 200)
        #expect(ready.body == "LIVE\n")

        // The listeners are real: a connection is accepted (and closed at once).
        let connection = try connectLoopback(port: dataPlane.listenerPorts[1])
        var byte: UInt8 = 0
        #expect(recv(connection, &byte, 1, 0) == 0)
        close(connection)

        let stats = try httpRequest("GET", port: port, "/stats").body
        #expect(stats.contains("server.state: 0\n"))
        #expect(stats.contains("listener_manager.workers_started: 1\n"))
        #expect(stats.contains("listener_manager.total_listeners_active: 2\n"))
        let inbound = "listener.127.0.0.1_\(dataPlane.listenerPorts[0])"
        let outbound = "listener.127.0.0.1_\(dataPlane.listenerPorts[1])"
        #expect(stats.contains("\(inbound).downstream_cx_active: 2\n"))

        let filtered = try httpRequest("GET", port: port, "/stats?usedonly&filter=downstream_cx_active%24").body
        #expect(filtered.split(separator: "\n").allSatisfy { $0.contains("downstream_cx_active:") }, "\(filtered)")
        #expect(filtered.contains("\(inbound).downstream_cx_active: 2\n"))
        #expect(filtered.contains("\(outbound).downstream_cx_active: 0\n"), "a listener that accepted is used")
        #expect(try await LoopbackAdmin(port: port).activeDownstreamConnections() == 2)
        #expect(try httpRequest("GET", port: port, "/stats?filter=(").status == 400)

        let prometheus = try httpRequest("GET", port: port, "/stats/prometheus")
        #expect(prometheus.status == 200)
        #expect(prometheus.body.contains("envoy_server_state{} 0\n"))
        #expect(prometheus.body.contains("# TYPE envoy_listener_downstream_cx_active gauge"))

        let listeners = try httpRequest("GET", port: port, "/listeners").body
        #expect(listeners.contains("virtualInbound::127.0.0.1:\(dataPlane.listenerPorts[0])\n"))
        #expect(try httpRequest("GET", port: port, "/listeners?format=json").body.contains(#""name":"virtualOutbound""#))

        #expect(try httpRequest("GET", port: port, "/drain_listeners").status == 405)
        #expect(try httpRequest("POST", port: port, "/drain_listeners?inboundonly&graceful").status == 200)
        let draining = try httpRequest("GET", port: port, "/ready")
        #expect(draining.status == 503)
        #expect(draining.body == "DRAINING\n")
        #expect(try httpRequest("GET", port: port, "/stats?filter=%5Eserver%5C.state%24").body == "server.state: 1\n")
        #expect(await eventually { (try? await LoopbackAdmin(port: port).activeDownstreamConnections()) == 1 },
                "active connections drop one per second after the drain")
        #expect(try httpRequest("GET", port: port, "/nope").status == 404)

        #expect(try httpRequest("POST", port: port, "/quitquitquit").status == 200)
        let status = try await withTimeout(.seconds(10), "quit") { await reaper.exitStatus(of: dataPlane.pid) }
        #expect(status == .exited(code: 0))

        let events = logEvents(dataPlane.logPath)
        let argv = try #require(events.first)
        #expect(argv["event"] as? String == "argv")
        #expect((argv["argv"] as? [String])?.prefix(1) == ["-c"])
        #expect((argv["argv"] as? [String])?.contains("--disable-hot-restart") == true)
        let requests = events.filter { $0["event"] as? String == "request" }
        let drainIndex = try #require(requests.firstIndex { $0["method"] as? String == "POST" && $0["path"] as? String == "/drain_listeners" })
        #expect(requests[drainIndex]["query"] as? String == "inboundonly&graceful")
        #expect(requests.last?["path"] as? String == "/quitquitquit")
        let stamps = events.compactMap { $0["monotonic_ms"] as? Int }
        #expect(stamps.count == events.count)
        #expect(stamps == stamps.sorted(), "log lines are in time order")
        #expect(events.last?["event"] as? String == "exit")
    }

    @Test func crashSimulationExitsWithTheCode() async throws {
        let started = ContinuousClock.now
        let dataPlane = try await startTestDataPlane(environment: [
            "SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS": "300", "SLUICE_TEST_DATAPLANE_EXIT_CODE": "7",
        ])
        defer { dataPlane.stop() }
        let status = try await withTimeout(.seconds(15), "crash") { await ChildReaper.shared.exitStatus(of: dataPlane.pid) }
        #expect(status == .exited(code: 7))
        #expect(ContinuousClock.now - started >= .milliseconds(300))
    }

    @Test func sigtermEndsItWithShellCode143() async throws {
        let dataPlane = try await startTestDataPlane()
        defer { dataPlane.stop() }
        #expect(try ChildReaper.shared.signal(dataPlane.pid, SIGTERM))
        let status = try await withTimeout(.seconds(15), "SIGTERM") { await ChildReaper.shared.exitStatus(of: dataPlane.pid) }
        #expect(status.shellCode == 143)
    }

    @Test func startupDelayHoldsBackTheAdminPort() async throws {
        let dataPlane = try await startTestDataPlane(environment: ["SLUICE_TEST_DATAPLANE_STARTUP_DELAY_MS": "400"])
        defer { dataPlane.stop() }
        let events = logEvents(dataPlane.logPath)
        let start = try #require(events.first?["monotonic_ms"] as? Int)
        let admin = try #require(events.first { $0["kind"] as? String == "admin" }?["monotonic_ms"] as? Int)
        #expect(admin - start >= 400)
    }

    @Test func aMissingBootstrapArgumentFails() async throws {
        let launch = ProcessLaunch(executablePath: try testDataPlanePath(), arguments: ["--drain-time-s", "45"], environment: [:])
        #expect(try await run(launch) == .exited(code: 1))
        let missingFile = ProcessLaunch(executablePath: try testDataPlanePath(), arguments: ["-c", "/nonexistent/envoy-rev.json"],
                                        environment: [:])
        #expect(try await run(missingFile) == .exited(code: 1))
    }

    /// The log's stamps are CLOCK_MONOTONIC milliseconds, comparable with the test's own readings.
    @Test func logStampsAreOnTheMonotonicClock() async throws {
        let before = monotonicMilliseconds()
        let dataPlane = try await startTestDataPlane()
        defer { dataPlane.stop() }
        let after = monotonicMilliseconds()
        let stamp = try #require(logEvents(dataPlane.logPath).first?["monotonic_ms"] as? Int)
        #expect(stamp >= before && stamp <= after)
    }
}
