import Glibc
import Netfilter
import PodLab
import TextFiles
import Testing

/// Bad input: one line naming the problem, a non-zero exit, and no data plane left behind.
@Suite struct AgentStartupErrorTests {
    private func expectNoDataPlaneStarted(_ harness: AgentHarness) {
        #expect(harness.dataPlaneEvents().isEmpty, "a data plane was started: \(harness.dataPlaneEvents())")
    }

    @Test func invalidProxyConfigIsAConfigurationError() throws {
        let harness = try AgentHarness()
        var environment = try harness.environment()
        environment["PROXY_CONFIG"] = "{drainDuration: [1, 2"
        let (code, output) = try harness.runToExit(["proxy", "sidecar"], environment: environment)
        #expect(code == 2)
        #expect(output.contains("PROXY_CONFIG"), "\(output)")
        expectNoDataPlaneStarted(harness)
    }

    @Test func aBadProxyConfigValueNamesTheField() throws {
        let harness = try AgentHarness()
        let (code, output) = try harness.runToExit(["proxy"], environment: try harness.environment(proxyConfig: ["drainDuration": "soon"]))
        #expect(code == 2)
        #expect(output.contains("drainDuration"), "\(output)")
        expectNoDataPlaneStarted(harness)
    }

    @Test func anUnknownProxyTypeIsRefused() throws {
        let harness = try AgentHarness()
        let (code, output) = try harness.runToExit(["proxy", "waypoint-ish"])
        #expect(code == 2)
        #expect(output.contains("waypoint-ish"), "\(output)")
        expectNoDataPlaneStarted(harness)
    }

    @Test func aMissingDataPlaneBinaryNamesBothPlacesLookedAt() throws {
        let harness = try AgentHarness()
        // A copy of the agent alone in a directory: no sluice-proxy next to it to fall back on.
        let lonely = harness.root + "/bin"
        mkdir(lonely, 0o755)
        let agentCopy = lonely + "/pilot-agent"
        _ = try PodLab.runTool("cp", [try AgentHarness.agentExecutable(), agentCopy], in: harness.scratch.namespace)
        let (code, output) = try harness.runToExit(["proxy"], environment: try harness.environment(proxyConfig: ["binaryPath": "/nonexistent/envoy"]),
                                                   executable: agentCopy)
        #expect(code == 2)
        #expect(output.contains("/nonexistent/envoy"), "\(output)")
        #expect(output.contains(lonely + "/sluice-proxy"), "\(output)")
    }

    @Test func anUnwritableConfigDirectoryIsNamed() throws {
        let harness = try AgentHarness()
        // `etc` is a file, so etc/istio/proxy cannot be created.
        let blocker = open(harness.root + "/etc", O_CREAT | O_WRONLY, 0o644)
        close(blocker)
        let (code, output) = try harness.runToExit(["proxy"])
        #expect(code == 1)
        #expect(output.contains(harness.root + "/etc"), "\(output)")
        expectNoDataPlaneStarted(harness)
    }

    @Test func aPortInUseIsNamedBeforeAnythingStarts() throws {
        let harness = try AgentHarness()
        let holder = try harness.scratch.run { () throws -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(15001).bigEndian
            address.sin_addr.s_addr = in_addr_t(0)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard bound == 0, listen(fd, 1) == 0 else { throw SystemCallError(call: "bind 15001", errno: errno) }
            return fd
        }
        defer { close(holder) }
        let (code, output) = try harness.runToExit(["proxy"])
        #expect(code == 1)
        #expect(output.contains("port 15001"), "\(output)")
        #expect(output.contains("virtualOutbound"), "\(output)")
        expectNoDataPlaneStarted(harness)
    }

    @Test func allowRootKeepsRootOnPurpose() throws {
        // --allow-root keeps root on purpose: the agent then runs as uid 0 and says so.
        let harness = try AgentHarness()
        let agent = try harness.start(["proxy", "--allow-root"], environment: try harness.environment(proxyConfig: ["terminationDrainDuration": "0.1s"]))
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        let status = try TextFile.read("/proc/\(agent.pid)/status")
        #expect(status.contains("Uid:\t0\t0\t0\t0"))
        #expect(harness.agentOutput.contains("--allow-root"))
        agent.signal(SIGTERM)
        _ = agent.waitForExit(timeout: .seconds(10))
    }
}

/// The DNS proxy's settings are checked before anything starts, as Istio treats them: fatal, exit 2.
@Suite struct AgentDNSStartupErrorTests {
    @Test func anUnreadableResolvConfStopsTheAgentWithTheFix() throws {
        let harness = try AgentHarness()
        var environment = try harness.environment()
        environment["ISTIO_META_DNS_CAPTURE"] = "true"
        environment["SLUICE_RESOLV_CONF"] = harness.root + "/missing-resolv.conf"
        let (code, output) = try harness.runToExit(["proxy", "sidecar"], environment: environment)
        #expect(code == 2)
        #expect(output.contains(harness.root + "/missing-resolv.conf"), "\(output)")
        #expect(output.contains("SLUICE_RESOLV_CONF"), "\(output)")
        #expect(harness.dataPlaneEvents().isEmpty)
    }

    @Test func aBadProxyAddressOrTimeoutIsNamed() throws {
        let harness = try AgentHarness()
        try TextFile.writeAtomically("nameserver 192.0.2.53\n", to: harness.root + "/resolv.conf")
        for (name, value) in [("DNS_PROXY_ADDR", "dns.local:15053"), ("DNS_PROXY_ADDR", "15053"), ("DNS_FORWARD_TIMEOUT", "0s"),
                              ("DNS_FORWARD_TIMEOUT", "soon")] {
            var environment = try harness.environment()
            environment["ISTIO_META_DNS_CAPTURE"] = "true"
            environment["SLUICE_RESOLV_CONF"] = harness.root + "/resolv.conf"
            environment[name] = value
            let (code, output) = try harness.runToExit(["proxy", "sidecar"], environment: environment)
            #expect(code == 2, "\(name)=\(value)")
            #expect(output.contains(name), "\(output)")
            #expect(harness.dataPlaneEvents().isEmpty)
        }
    }
}
