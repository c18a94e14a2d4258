import Capture
import Netfilter
import PodLab
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// sluice-init, pilot-agent (as 1337) and sluice-proxy together, as built, in a pod netns with an app
/// (UID 1000) and a peer: the end-to-end scenario.
@Suite("Sidecar end to end: sluice-init + pilot-agent + sluice-proxy", .serialized)
struct SidecarTests {
    static func makeLab(proxyConfig: [String: String] = [:]) throws -> SidecarLab {
        let lab = try SidecarLab(
            prefix: "sluice-e2e", executables: try .built(), proxyConfig: proxyConfig,
            environment: ["ISTIO_DUAL_STACK": "true"])
        guard lab.waitUntilReady() else {
            let log = lab.agentLog
            lab.tearDown()
            throw LabFailure(description: "the sidecar never became ready; agent log:\n\(log)")
        }
        return lab
    }

    static let appOnPod = Endpoint(PodLab.podIPv4, SidecarLab.appPort)

    @Test("the app's request to the peer and the peer's request to the app both cross the proxy, and its stats show it")
    func bothDirections() throws {
        let lab = try Self.makeLab()
        defer { lab.tearDown() }

        let outbound = try lab.appRequest(to: SidecarLab.peerService)
        #expect(outbound.status == 200)
        #expect(outbound.body.contains("peer: request from \(PodLab.podIPv4) to \(SidecarLab.peerService)"))
        let outbound6 = try lab.appRequest(to: SidecarLab.peerServiceIPv6)
        #expect(outbound6.body.contains("request from \(PodLab.podIPv6)"))
        let inbound = try lab.peerRequest(to: Self.appOnPod)
        #expect(inbound.status == 200)
        #expect(inbound.body.contains("app: request from 127.0.0.6 to \(Self.appOnPod)"))

        let stats = try lab.proxyStats()
        #expect(stats["listener.0.0.0.0_15001.downstream_cx_total"] == 2)
        #expect(stats["listener.0.0.0.0_15006.downstream_cx_total"] == 1)
        #expect(stats["cluster.PassthroughCluster;.upstream_cx_total"] == 2)
        #expect(stats["cluster.InboundPassthroughCluster;.upstream_cx_total"] == 1)
        #expect((stats["tcp.PassthroughCluster.downstream_cx_rx_bytes_total"] ?? 0) > 0)
        #expect(stats["server.state"] == 0)
        // The peer's service saw the pod's address, the app saw the inbound passthrough source.
        #expect(lab.peer.requests.map(\.remote.address) == [PodLab.podIPv4, PodLab.podIPv6])
        #expect(lab.app.requests.map(\.remote.address) == [IPAddress("127.0.0.6")!])
    }

    @Test("hairpin: the app calling its own Service crosses 15001 and 15006 once each; calling its pod IP is not captured")
    func hairpin() throws {
        let lab = try Self.makeLab()
        defer { lab.tearDown() }
        let viaService = try lab.appRequest(to: SidecarLab.appService)
        #expect(viaService.body.contains("app: request from 127.0.0.6"))
        let direct = try lab.appRequest(to: Self.appOnPod)
        #expect(direct.body.contains("app: request from \(PodLab.podIPv4)"))
        let stats = try lab.proxyStats()
        #expect(stats["listener.0.0.0.0_15001.downstream_cx_total"] == 1)
        #expect(stats["listener.0.0.0.0_15006.downstream_cx_total"] == 1)
        #expect(stats["tcp.PassthroughCluster.downstream_cx_no_route"] == 0)
    }

    @Test("SIGTERM on the agent: an in-flight request completes, the agent drains and exits 0, the proxy is gone")
    func drainOnSIGTERM() throws {
        let lab = try Self.makeLab()
        defer { lab.tearDown() }
        let proxies = PodLab.childProcesses(of: lab.agent.pid)
        #expect(proxies.count == 1)

        let finished = Mutex<LabHTTP.Response?>(nil)
        let request = LabThread {
            finished.withLock { $0 = try? lab.peerRequest("/slow?ms=1200", to: Self.appOnPod, timeout: .seconds(10)) }
        }
        usleep(300_000)
        let code = lab.stopAgent(signal: SIGTERM, timeout: .seconds(15))
        request.join()
        #expect(code == 0)
        let response = try #require(finished.withLock { $0 })
        #expect(response.status == 200)
        #expect(response.body.contains("request from 127.0.0.6"))
        for pid in proxies { #expect(kill(pid, 0) != 0, "sluice-proxy \(pid) outlived the agent") }
    }

    @Test("the proxy's admin API on 15000 answers as Envoy's does")
    func adminAPI() throws {
        let lab = try Self.makeLab()
        defer { lab.tearDown() }
        _ = try lab.appRequest(to: SidecarLab.peerService)
        let admin = { (path: String, method: String) throws -> LabHTTP.Response in
            try LabHTTP.request(method, path, port: 15000, in: lab.lab.pod)
        }
        #expect(try admin("/ready", "GET").body == "LIVE\n")
        #expect(try admin("/server_info", "GET").body.contains("\"state\": \"LIVE\""))
        let listeners = try admin("/listeners", "GET").body
        #expect(listeners.contains("virtualOutbound::0.0.0.0:15001"))
        #expect(listeners.contains("virtualInbound::0.0.0.0:15006"))
        let prometheus = try LabHTTP.request("GET", "/stats/prometheus", port: 15090, in: lab.lab.pod).body
        #expect(prometheus.contains("envoy_cluster_upstream_cx_total{cluster_name=\"PassthroughCluster\"} 1"))
        #expect(prometheus.contains("envoy_server_state{} 0"))
        #expect(try admin("/config_dump", "GET").body.contains("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"))
        #expect(try admin("/drain_listeners", "GET").status == 405)
    }

    @Test("drain_listeners?inboundonly stops the inbound listener only; quitquitquit ends the proxy")
    func drainInboundThenQuit() throws {
        let lab = try Self.makeLab()
        defer { lab.tearDown() }
        let drained = try LabHTTP.request("POST", "/drain_listeners?inboundonly", port: 15000, in: lab.lab.pod)
        #expect(drained.status == 200)
        #expect(throws: (any Error).self) { _ = try lab.peerRequest(to: Self.appOnPod, timeout: .seconds(2)) }
        #expect(try lab.appRequest(to: SidecarLab.peerService).status == 200)
        let stats = try lab.proxyStats()
        #expect(stats["listener_manager.total_listeners_active"] == 3)

        let proxies = PodLab.childProcesses(of: lab.agent.pid)
        #expect(try LabHTTP.request("POST", "/quitquitquit", port: 15000, in: lab.lab.pod).body == "OK\n")
        // The data plane exited on its own: the agent follows it with the same (zero) status.
        #expect(lab.agent.waitForExit(timeout: .seconds(10)) == 0)
        for pid in proxies { #expect(kill(pid, 0) != 0) }
    }

    @Test("graceful drain: new connections still served during the drain time, then refused; a longer one is closed at its end")
    func gracefulDrain() throws {
        let lab = try Self.makeLab(proxyConfig: ["drainDuration": "\"2s\""])
        defer { lab.tearDown() }
        let longRequest = Mutex<Result<LabHTTP.Response, any Error>?>(nil)
        let long = LabThread {
            let result = Result { try lab.peerRequest("/slow?ms=5000", to: Self.appOnPod, timeout: .seconds(10)) }
            longRequest.withLock { $0 = result }
        }
        usleep(300_000)
        #expect(try LabHTTP.request("POST", "/drain_listeners?inboundonly&graceful", port: 15000, in: lab.lab.pod).status == 200)
        // Within the drain time the inbound listener still accepts.
        #expect(try lab.peerRequest(to: Self.appOnPod).status == 200)
        usleep(2_500_000)
        #expect(throws: (any Error).self) { _ = try lab.peerRequest(to: Self.appOnPod, timeout: .seconds(2)) }
        long.join()
        let outcome = try #require(longRequest.withLock { $0 })
        #expect((try? outcome.get()) == nil, "the 5 s request outlived a 2 s drain")
        #expect(try lab.appRequest(to: SidecarLab.peerService).status == 200, "outbound is not drained by inboundonly")
    }
}
