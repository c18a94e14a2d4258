import Glibc
import PodLab
import Testing

/// The other subcommands, and the status server's work for the application: probes and metrics.
@Suite struct AgentCommandTests {
    @Test func istioIptablesIsSluiceInit() throws {
        let flags = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--dry-run"]
        let scratch = try PodLab.ScratchNamespace(prefix: "sluice-agent-cmd")
        let environment = Subprocess.defaultEnvironment.merging(["SLUICE_RESOLV_CONF": "/dev/null"]) { _, new in new }
        let viaAgent = try Subprocess.run(try AgentHarness.agentExecutable(), ["istio-iptables"] + flags, in: scratch.namespace, environment: environment)
        let direct = try Subprocess.run(try PodLab.sluiceInitExecutable(), flags, in: scratch.namespace, environment: environment)
        #expect(viaAgent.status == 0, "\(viaAgent)")
        #expect(viaAgent.standardOutput == direct.standardOutput)
        #expect(viaAgent.standardOutput.contains("table inet istio-proxy-nat"))

        let bad = try Subprocess.run(try AgentHarness.agentExecutable(), ["istio-iptables", "-p", "seventy"], in: scratch.namespace)
        #expect(bad.status == 2)
    }

    @Test func waitAndRequestTalkToTheRunningAgent() throws {
        let harness = try AgentHarness()
        let agent = try harness.start()
        let agentBinary = try AgentHarness.agentExecutable()
        // The agent's 15020 is in the harness's namespace; wait polls it directly (15021 belongs to the data plane).
        let waited = try Subprocess.run(agentBinary, ["wait", "--url", "http://127.0.0.1:15020/healthz/ready", "--timeoutSeconds", "15", "--periodMillis", "50"],
                                        in: harness.scratch.namespace)
        #expect(waited.status == 0, "\(waited)")
        let stats = try Subprocess.run(agentBinary, ["request", "GET", "stats"], in: harness.scratch.namespace)
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.standardOutput.contains("server.state: 0"))
        let forbidden = try Subprocess.run(agentBinary, ["request", "--debug-port", "22", "GET", "stats"], in: harness.scratch.namespace)
        #expect(forbidden.status != 0)
        agent.signal(SIGTERM)
        _ = agent.waitForExit(timeout: .seconds(10))

        let empty = try PodLab.ScratchNamespace(prefix: "sluice-agent-cmd", loopbackUp: true)
        let timedOut = try Subprocess.run(agentBinary, ["wait", "--timeoutSeconds", "1", "--periodMillis", "100"], in: empty.namespace)
        #expect(timedOut.status == 255, "\(timedOut)")
    }

    @Test func applicationProbesAreRunFromThePassthroughAddressAndMetricsAreMerged() throws {
        let harness = try AgentHarness()
        // The application: Python's HTTP server on 8080, serving /ready and /metrics, logging each client.
        let site = harness.root + "/site"
        mkdir(site, 0o755)
        for (name, body) in [("ready", "ok\n"), ("metrics", "app_requests_total 42\n")] {
            let fd = open(site + "/" + name, O_CREAT | O_WRONLY, 0o644)
            _ = body.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        let python = try PodLab.systemExecutable("python3")
        let app = try BackgroundProcess(python, ["-m", "http.server", "8080", "--bind", "127.0.0.1", "--directory", site],
                                        in: harness.scratch.namespace, environment: Subprocess.defaultEnvironment,
                                        outputPath: harness.root + "/app.log")
        defer { app.signal(SIGKILL); _ = app.waitForExit(timeout: .seconds(5)) }

        let probers = #"{"/app-health/app/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTP"},"timeoutSeconds":1},"#
            + #""/app-health/app/livez":{"httpGet":{"path":"/missing","port":8080}},"#
            + #""/app-health/app/startupz":{"tcpSocket":{"port":8080}},"#
            + #""/app-health/other/readyz":{"tcpSocket":{"port":8081}}}"#
        let agent = try harness.start(environment: try harness.environment([
            "ISTIO_KUBE_APP_PROBERS": probers,
            "ISTIO_PROMETHEUS_ANNOTATIONS": #"{"scrape":"true","path":"/metrics","port":"8080"}"#,
        ]))
        #expect(harness.waitUntilReady(), "\(harness.agentOutput)")
        let ready = try #require(harness.waitFor("/app-health/app/readyz") { $0.status != 500 })
        #expect(ready.status == 200)
        #expect(ready.body.contains("ok"))
        #expect(try harness.get("/app-health/app/livez").status == 404)
        #expect(try harness.get("/app-health/app/startupz").status == 200)
        #expect(try harness.get("/app-health/other/readyz").status == 500)
        #expect(try harness.get("/app-health/nobody/readyz").status == 400)
        #expect(app.output().contains("127.0.0.6 - - "), "the app saw probes from 127.0.0.6: \(app.output())")

        let metrics = try harness.get("/stats/prometheus")
        let agentAt = try #require(metrics.body.firstRange(of: "istio_agent_scrapes_total"))
        let appAt = try #require(metrics.body.firstRange(of: "app_requests_total 42"))
        #expect(agentAt.lowerBound < appAt.lowerBound, "the application's metrics come last")
        agent.signal(SIGTERM)
        _ = agent.waitForExit(timeout: .seconds(10))
    }
}
