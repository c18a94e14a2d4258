import AgentHTTP
import StatusServer
import Testing

@Suite("pilot-agent wait and request")
struct CommandTests {
    @Test func waitSucceedsOnceReadyAnswers200() async throws {
        let attempts = Shared(0)
        let server = try await startServer { request in
            let attempt = attempts.update { count -> Int in
                count += 1
                return count
            }
            return attempt < 3 ? .text(503, "not yet") : HTTPResponse(status: 200)
        }
        defer { Task { await server.close() } }
        let log = Recorder<String>()
        let code = await WaitCommand.run(
            url: "http://127.0.0.1:\(server.port)/healthz/ready", period: .milliseconds(50),
            requestTimeout: .milliseconds(500), timeout: .seconds(5), group: testGroup, log: { log.append($0) })
        #expect(code == 0)
        #expect(attempts.value == 3)
        #expect(log.values.last == "Envoy is ready!")
    }

    @Test func waitGivesUpWith255AfterTheTimeout() async throws {
        let port = try await closedPort()
        let log = Recorder<String>()
        let (code, elapsed) = await measure {
            await WaitCommand.run(
                url: "http://127.0.0.1:\(port)/healthz/ready", period: .milliseconds(100),
                requestTimeout: .milliseconds(100), timeout: .milliseconds(500), group: testGroup, log: { log.append($0) })
        }
        #expect(code == 255)
        #expect(elapsed >= .milliseconds(400))
        #expect(elapsed < .seconds(2))
        let last = try #require(log.values.last)
        #expect(last.hasPrefix("timeout waiting for Envoy proxy to become ready. Last error:"))
        #expect(last.contains("refused"))
    }

    @Test func waitRejectsANonHTTPURL() async {
        let log = Recorder<String>()
        let code = await WaitCommand.run(url: "https://x/", timeout: .seconds(1), group: testGroup, log: { log.append($0) })
        #expect(code == 255)
        #expect(log.values.first?.contains("invalid --url") == true)
    }

    @Test func requestPrintsTheBodyAndFailsOnNon2xx() async throws {
        let seen = Recorder<HTTPRequest>()
        let server = try await startServer { request in
            seen.append(request)
            return request.path == "/drain" ? .text(200, "OK") : .text(404, "no such page")
        }
        defer { Task { await server.close() } }
        let ok = await RequestCommand.run(method: "post", path: "drain", port: server.port, allowedPorts: nil, group: testGroup)
        #expect(ok.exitCode == 0)
        #expect(ok.output == "OK")
        #expect(seen.values.first.map { "\($0.method) \($0.target)" } == "POST /drain")

        let missing = await RequestCommand.run(method: "GET", path: "/nope", port: server.port, allowedPorts: nil, group: testGroup)
        #expect(missing.exitCode != 0)
        #expect(missing.output.contains("404"))
        #expect(missing.output.contains("no such page"))
    }

    @Test func requestRefusesPortsIstioDoesNotAllow() async {
        let result = await RequestCommand.run(method: "GET", path: "/", port: 8080, group: testGroup)
        #expect(result.exitCode != 0)
        #expect(result.output.contains("15000"))
    }
}
