import AgentHTTP
import Logging
import StatusServer
import Testing

/// The application under probe: one route per behaviour; every request is recorded.
func startProbedApp(seen: Recorder<HTTPRequest>, host: String = "127.0.0.1", otherHostPort: Int = 1) async throws -> HTTPServer {
    let selfPort = Shared(0)
    let server = try await startServer(host: host) { request in
        seen.append(request)
        switch request.path {
        case "/ok": return .text(200, "fine")
        case "/fail": return .text(503, "broken")
        case "/big": return HTTPResponse(status: 200, body: Array(repeating: UInt8(ascii: "x"), count: 50_000))
        case "/whoami": return .text(200, request.remoteAddress ?? "unknown")
        case "/host": return .text(200, request.headers["Host"] ?? "none")
        case "/headers": return .text(200, "\(request.headers["X-Probe"] ?? "-") \(request.headers["User-Agent"] ?? "-")")
        case "/redirect-relative": return HTTPResponse(status: 302, headers: ["Location": "/ok"])
        case "/redirect-absolute":
            return HTTPResponse(status: 301, headers: ["Location": "http://\(IPAddressText.hostPort(host, selfPort.value))/fail"])
        case "/redirect-elsewhere":
            return HTTPResponse(status: 302, headers: ["Location": "http://localhost:\(otherHostPort)/ok"])
        case "/redirect-loop": return HTTPResponse(status: 302, headers: ["Location": "/redirect-loop"])
        case "/slow":
            try? await Task.sleep(for: .seconds(3))
            return .text(200, "late")
        default: return .text(404, "no route")
        }
    }
    selfPort.value = server.port
    return server
}

func httpProbe(_ path: String, port: Int, timeoutSeconds: Int = 1, headers: [HTTPFields.Field] = [], scheme: String = "HTTP") -> ApplicationProbe {
    ApplicationProbe(
        action: .httpGet(ApplicationProbe.HTTPGet(path: path, port: port, scheme: scheme, headers: headers)),
        timeoutSeconds: timeoutSeconds)
}

func probeRequest(_ path: String, headers: HTTPFields = [:]) -> HTTPRequest {
    HTTPRequest(target: path, headers: headers, remoteAddress: "10.0.0.9")
}

@Suite("Application probes")
struct ApplicationProbeTests {
    func prober(_ probes: [String: ApplicationProbe], destination: ProbeDestination = .podIP("127.0.0.1"), logger: Logger = Logger(label: "test")) -> ApplicationProber {
        ApplicationProber(probes: probes, destination: destination, statusPort: 15020, group: testGroup, logger: logger)
    }

    @Test func passesTheApplicationStatusAndBody() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let prober = prober([
            "/app-health/web/livez": httpProbe("/ok", port: app.port),
            "/app-health/web/readyz": httpProbe("fail", port: app.port),
            "/app-health/web/startupz": httpProbe("/big", port: app.port),
        ])
        let live = await prober.respond(to: probeRequest("/app-health/web/livez"))
        #expect(live.status == 200)
        #expect(live.bodyText == "fine")
        let ready = await prober.respond(to: probeRequest("/app-health/web/readyz"))
        #expect(ready.status == 503)
        #expect(ready.bodyText == "broken")
        let startup = await prober.respond(to: probeRequest("/app-health/web/startupz"))
        #expect(startup.status == 200)
        #expect(startup.body.count == 10 * 1024)
    }

    @Test func probesComeFrom127_0_0_6() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let response = await prober(["/app-health/web/livez": httpProbe("/whoami", port: app.port)])
            .respond(to: probeRequest("/app-health/web/livez"))
        #expect(response.bodyText == "127.0.0.6")
    }

    @Test func legacyLocalhostDestinationAlsoBindsTheSource() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let response = await prober(["/app-health/web/livez": httpProbe("/whoami", port: app.port)], destination: .localhost)
            .respond(to: probeRequest("/app-health/web/livez"))
        #expect(response.status == 200)
        #expect(response.bodyText == "127.0.0.6")
    }

    @Test func hostAndHeadersAreForwarded() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let prober = prober([
            "/app-health/web/livez": httpProbe("/host", port: app.port),
            "/app-health/web/readyz": httpProbe("/host", port: app.port, headers: [.init(name: "Host", value: "custom.example")]),
            "/app-health/web/startupz": httpProbe("/headers", port: app.port, headers: [.init(name: "X-Probe", value: "from-spec")]),
        ])
        let rewritten = await prober.respond(to: probeRequest("/app-health/web/livez", headers: ["Host": "10.0.0.5:15020"]))
        #expect(rewritten.bodyText == "10.0.0.5:\(app.port)")
        let overridden = await prober.respond(to: probeRequest("/app-health/web/readyz", headers: ["Host": "10.0.0.5:15020"]))
        #expect(overridden.bodyText == "custom.example")
        let headers = await prober.respond(to: probeRequest(
            "/app-health/web/startupz", headers: ["User-Agent": "kube-probe/1.31", "X-Probe": "from-kubelet"]))
        #expect(headers.bodyText == "from-spec kube-probe/1.31")
    }

    @Test func sameHostRedirectsAreFollowed() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let prober = prober([
            "/app-health/web/livez": httpProbe("/redirect-relative", port: app.port),
            "/app-health/web/readyz": httpProbe("/redirect-absolute", port: app.port),
        ])
        let relative = await prober.respond(to: probeRequest("/app-health/web/livez"))
        #expect(relative.status == 200)
        #expect(relative.bodyText == "fine")
        // Followed: the final answer is the redirect target's (503), not the 3xx.
        let absolute = await prober.respond(to: probeRequest("/app-health/web/readyz"))
        #expect(absolute.status == 503)
        #expect(seen.values.map(\.path) == ["/redirect-relative", "/ok", "/redirect-absolute", "/fail"])
    }

    @Test func otherHostRedirectIsNotFollowedAndCountsAsSuccess() async throws {
        let elsewhere = Recorder<HTTPRequest>()
        let other = try await startProbedApp(seen: elsewhere)
        defer { Task { await other.close() } }
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen, otherHostPort: other.port)
        defer { Task { await app.close() } }
        let response = await prober(["/app-health/web/livez": httpProbe("/redirect-elsewhere", port: app.port)])
            .respond(to: probeRequest("/app-health/web/livez"))
        #expect(response.status == 200)
        #expect(elsewhere.count == 0)
    }

    @Test func redirectLoopStopsAfterTen() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let response = await prober(["/app-health/web/livez": httpProbe("/redirect-loop", port: app.port)])
            .respond(to: probeRequest("/app-health/web/livez"))
        #expect(response.status == 500)
        #expect(seen.count == 10)
    }

    @Test func slowApplicationTimesOut() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let (response, elapsed) = await measure {
            await prober(["/app-health/web/livez": httpProbe("/slow", port: app.port, timeoutSeconds: 1)])
                .respond(to: probeRequest("/app-health/web/livez"))
        }
        #expect(response.status == 500)
        #expect(elapsed >= .milliseconds(900))
        #expect(elapsed < .milliseconds(2500))
    }

    @Test func applicationDownIs500() async throws {
        let port = try await closedPort()
        let response = await prober(["/app-health/web/livez": httpProbe("/ok", port: port)])
            .respond(to: probeRequest("/app-health/web/livez"))
        #expect(response.status == 500)
    }

    @Test func tcpProbeOpenAndClosed() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let closed = try await closedPort()
        let prober = prober([
            "/app-health/db/livez": ApplicationProbe(action: .tcpSocket(port: app.port)),
            "/app-health/db/readyz": ApplicationProbe(action: .tcpSocket(port: closed)),
        ])
        #expect(await prober.respond(to: probeRequest("/app-health/db/livez")).status == 200)
        #expect(await prober.respond(to: probeRequest("/app-health/db/readyz")).status == 500)
    }

    @Test func unknownProbePathIs400() async throws {
        let response = await prober([:]).respond(to: probeRequest("/app-health/nope/livez"))
        #expect(response.status == 400)
        #expect(response.bodyText == "app prober config does not exists for /app-health/nope/livez")
    }

    @Test func httpsAndGRPCProbesAreReportedUnsupported() async throws {
        let probes = [
            "/app-health/a/livez": httpProbe("/", port: 8443, scheme: "HTTPS"),
            "/app-health/b/readyz": ApplicationProbe(action: .grpc(port: 9000, service: nil)),
            "/app-health/c/livez": httpProbe("/", port: 8080),
        ]
        let unsupported = ApplicationProber.unsupportedProbes(probes)
        #expect(unsupported.map(\.path) == ["/app-health/a/livez", "/app-health/b/readyz"])
        let prober = prober(probes)
        let https = await prober.respond(to: probeRequest("/app-health/a/livez"))
        #expect(https.status == 500)
        #expect(https.bodyText.contains("HTTPS application probes are not supported yet"))
        let grpc = await prober.respond(to: probeRequest("/app-health/b/readyz"))
        #expect(grpc.status == 500)
        #expect(grpc.bodyText.contains("gRPC application probes are not supported yet"))
    }

    @Test(.enabled(if: hasIPv6Loopback)) func ipv6DestinationFallsBackWhenColonColon6IsAbsent() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen, host: "::1")
        defer { Task { await app.close() } }
        let logs = CapturedLogs()
        let prober = prober(
            ["/app-health/web/livez": httpProbe("/whoami", port: app.port)], destination: .podIP("::1"), logger: logs.logger)
        for _ in 0..<2 {
            let response = await prober.respond(to: probeRequest("/app-health/web/livez"))
            #expect(response.status == 200)
        }
        let source = try #require(seen.values.last?.remoteAddress)
        if source == "::6" {
            // This host has ::6 configured: the bind worked, nothing to fall back from.
            #expect(logs.messages.count == 0)
        } else {
            #expect(source == "::1")
            #expect(logs.messages.values.filter { $0.contains("cannot bind ::6") }.count == 1)
        }
    }

    @Test func routesDispatchProbesThroughTheStatusServer() async throws {
        let seen = Recorder<HTTPRequest>()
        let app = try await startProbedApp(seen: seen)
        defer { Task { await app.close() } }
        let routes = makeRoutes(prober: prober([
            "/app-health/web/livez": httpProbe("/ok", port: app.port),
            "/app-lifecycle/web/prestopz": httpProbe("/fail", port: app.port),
        ]))
        #expect(await routes.respond(to: probeRequest("/app-health/web/livez")).status == 200)
        #expect(await routes.respond(to: probeRequest("/app-lifecycle/web/prestopz")).status == 503)
        #expect(await routes.respond(to: probeRequest("/app-health/web/readyz")).status == 400)
        let withoutProber = makeRoutes()
        let response = await withoutProber.respond(to: probeRequest("/app-health/web/readyz"))
        #expect(response.status == 400)
        #expect(response.bodyText == "app prober config does not exists for /app-health/web/readyz")
    }
}
