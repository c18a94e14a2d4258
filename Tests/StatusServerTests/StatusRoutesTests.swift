import AgentHTTP
import Logging
import StatusServer
import Synchronization
import Testing

@Suite("Status endpoints")
struct StatusRoutesTests {
    @Test(arguments: ["/quitquitquit", "/drain"])
    func lifecycleEndpointsArePostOnlyAndLocalOnly(path: String) async throws {
        let quits = Recorder<Int>()
        let drains = Recorder<Int>()
        let shutdown = ShutdownFlag()
        let routes = makeRoutes(
            shutdown: shutdown, quit: { quits.append(1) }, drain: { drains.append(1) })
        let calls = path == "/quitquitquit" ? quits : drains

        let get = await routes.respond(to: HTTPRequest(method: "GET", target: path))
        #expect(get.status == 405)
        let remote = await routes.respond(to: HTTPRequest(method: "POST", target: path, remoteAddress: "10.0.0.7"))
        #expect(remote.status == 403)
        #expect(calls.count == 0)
        #expect(!shutdown.isSet)

        let local = await routes.respond(to: HTTPRequest(method: "POST", target: path, remoteAddress: "127.0.0.1"))
        #expect(local.status == 200)
        #expect(local.bodyText == "OK")
        #expect(calls.count == 1)
        #expect((quits.count + drains.count) == 1)
        // /quitquitquit starts shutdown, so readiness fails from then on; /drain leaves it to the SIGTERM.
        #expect(shutdown.isSet == (path == "/quitquitquit"))
    }

    @Test func quitOverHTTPFromLoopback() async throws {
        let quits = Recorder<Int>()
        let shutdown = ShutdownFlag()
        let server = try await StatusServer.start(
            host: "127.0.0.1", port: 0,
            configuration: StatusServerConfiguration(
                readinessChecks: [], metrics: AgentMetrics(buildTag: "t"), shutdown: shutdown,
                quit: { quits.append(1) }, drain: {}),
            group: testGroup, logger: Logger(label: "test"))
        defer { Task { await server.close() } }
        let ready = try await HTTPClient.send(
            HTTPClientRequest(host: "127.0.0.1", port: server.port, target: "/healthz/ready"), group: testGroup)
        #expect(ready.status == 200)
        let response = try await HTTPClient.send(
            HTTPClientRequest(host: "127.0.0.1", port: server.port, method: "POST", target: "/quitquitquit"), group: testGroup)
        #expect(response.status == 200)
        #expect(response.bodyText == "OK")
        #expect(quits.count == 1)
        let terminated = try await HTTPClient.send(
            HTTPClientRequest(host: "127.0.0.1", port: server.port, target: "/healthz/ready"), group: testGroup)
        #expect(terminated.status == 503)
        #expect(terminated.bodyText == "server is terminated")
    }

    @Test func nameTableDebugIsEmptyUntilDNSExists() async throws {
        let routes = makeRoutes()
        let local = await routes.respond(to: HTTPRequest(target: "/debug/ndsz"))
        #expect(local.status == 404)
        #expect(local.bodyText == "{}")
        let remote = await routes.respond(to: HTTPRequest(target: "/debug/ndsz", remoteAddress: "10.9.9.9"))
        #expect(remote.status == 403)
    }

    @Test func nameTableDebugShowsTheTableOnceLoaded() async throws {
        let table = Mutex<String?>(nil)
        let routes = makeRoutes(nameTableJSON: { table.withLock { $0 } })
        let before = await routes.respond(to: HTTPRequest(target: "/debug/ndsz"))
        #expect(before.status == 200)
        #expect(before.bodyText == "{}")
        table.withLock { $0 = #"{"table": {"a.example.test": {"ips": ["192.0.2.1"]}}}"# }
        let after = await routes.respond(to: HTTPRequest(target: "/debug/ndsz"))
        #expect(after.bodyText.contains("a.example.test"))
    }

    @Test func unknownPathIs404() async throws {
        let response = await makeRoutes().respond(to: HTTPRequest(target: "/nothing/here"))
        #expect(response.status == 404)
    }
}
