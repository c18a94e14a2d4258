import AgentHTTP
import Testing

@Suite("AgentHTTP server and client")
struct HTTPServerClientTests {
    @Test func roundTripCarriesMethodTargetHeadersAndBody() async throws {
        let seen = Recorder<HTTPRequest>()
        let server = try await startServer { request in
            seen.append(request)
            return HTTPResponse(status: 201, headers: ["X-Reply": "yes"], body: Array("got \(request.bodyText)".utf8))
        }
        defer { Task { await server.close() } }
        #expect(server.port > 0)
        #expect(server.localAddress == "127.0.0.1:\(server.port)")

        let response = try await HTTPClient.send(
            HTTPClientRequest(
                host: "127.0.0.1", port: server.port, method: "POST", target: "/a/b?x=1&y",
                headers: ["X-Custom": "v"], body: Array("hello".utf8)),
            group: testGroup)
        #expect(response.status == 201)
        #expect(response.headers["x-reply"] == "yes")
        #expect(response.bodyText == "got hello")
        let request = try #require(seen.values.first)
        #expect(request.method == "POST")
        #expect(request.path == "/a/b")
        #expect(request.query == "x=1&y")
        #expect(request.headers["X-CUSTOM"] == "v")
        #expect(request.headers["Host"] == "127.0.0.1:\(server.port)")
        #expect(request.headers["Connection"] == "close")
        #expect(request.remoteAddress == "127.0.0.1")
        #expect(request.isFromLoopback)
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        let server = try await startServer { request in .text(200, "path=\(request.path)") }
        defer { Task { await server.close() } }
        let connection = try await RawConnection.connect(port: server.port)
        defer { Task { await connection.close() } }

        try await connection.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = await connection.receive { $0.contains("path=/one") }
        #expect(first.hasPrefix("HTTP/1.1 200 OK"))
        #expect(!first.lowercased().contains("connection: close"))
        // Two pipelined requests on the same connection are answered in order.
        try await connection.send("GET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let all = await connection.receive { $0.contains("path=/three") }
        let two = try #require(all.firstRange(of: "path=/two"))
        let three = try #require(all.firstRange(of: "path=/three"))
        #expect(two.lowerBound < three.lowerBound)
        #expect(await connection.waitUntilClosed())
    }

    @Test func malformedRequestIsAnswered400() async throws {
        let server = try await startServer { _ in .text(200, "unexpected") }
        defer { Task { await server.close() } }
        let connection = try await RawConnection.connect(port: server.port)
        defer { Task { await connection.close() } }
        try await connection.send("THIS IS NOT HTTP\r\n\r\n")
        let reply = await connection.receive { $0.contains("\r\n\r\n") }
        #expect(reply.hasPrefix("HTTP/1.1 400"))
        #expect(await connection.waitUntilClosed())
    }

    @Test func oversizedBodyIsRefusedWith413() async throws {
        let handled = Recorder<Int>()
        let server = try await startServer { request in
            handled.append(request.body.count)
            return .text(200, "handled")
        }
        defer { Task { await server.close() } }
        let connection = try await RawConnection.connect(port: server.port)
        defer { Task { await connection.close() } }
        try await connection.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: \(HTTPServer.maximumRequestBodyBytes + 1)\r\n\r\n")
        let reply = await connection.receive { $0.contains("\r\n\r\n") }
        #expect(reply.hasPrefix("HTTP/1.1 413"))
        #expect(handled.count == 0)
    }

    @Test func bindingAPortInUseNamesTheAddress() async throws {
        let server = try await startServer { _ in HTTPResponse(status: 200) }
        defer { Task { await server.close() } }
        do {
            _ = try await HTTPServer.start(host: "127.0.0.1", port: server.port, group: testGroup) { _ in HTTPResponse(status: 200) }
            Issue.record("a second server bound the same port")
        } catch {
            #expect(error.cause == .addressInUse)
            #expect(error.description.hasPrefix("127.0.0.1:\(server.port) is already in use"))
        }
    }

    @Test func clientBindsTheRequestedSourceAddress() async throws {
        let server = try await startServer { request in .text(200, request.remoteAddress ?? "none") }
        defer { Task { await server.close() } }
        let response = try await HTTPClient.send(
            HTTPClientRequest(host: "127.0.0.1", port: server.port, localAddress: "127.0.0.6"), group: testGroup)
        #expect(response.bodyText == "127.0.0.6")
    }

    @Test func bindingAnAbsentSourceAddressIsReportedAsSuch() async throws {
        let server = try await startServer { _ in HTTPResponse(status: 200) }
        defer { Task { await server.close() } }
        // 192.0.2.1 (TEST-NET-1) is never configured here; the bind fails before any packet is sent.
        await #expect(throws: HTTPClientError.sourceAddressUnavailable(
            source: "192.0.2.1", detail: "the address is not configured on this host")) {
            try await HTTPClient.send(
                HTTPClientRequest(host: "127.0.0.1", port: server.port, localAddress: "192.0.2.1"), group: testGroup)
        }
    }

    @Test func connectionRefusedIsDistinguished() async throws {
        let port = try await closedPort()
        await #expect(throws: HTTPClientError.connectionRefused(address: "127.0.0.1:\(port)")) {
            try await HTTPClient.send(HTTPClientRequest(host: "127.0.0.1", port: port), group: testGroup)
        }
    }

    @Test func slowHandlerTimesOutWithinTheBound() async throws {
        let server = try await startServer { _ in
            try? await Task.sleep(for: .seconds(3))
            return HTTPResponse(status: 200)
        }
        defer { Task { await server.close() } }
        let (result, elapsed) = await measure {
            await Result { () async throws(HTTPClientError) -> HTTPResponse in
                try await HTTPClient.send(
                    HTTPClientRequest(host: "127.0.0.1", port: server.port, timeout: .milliseconds(200)), group: testGroup)
            }
        }
        #expect(throws: HTTPClientError.timedOut(address: "127.0.0.1:\(server.port)", after: .milliseconds(200))) {
            try result.get()
        }
        #expect(elapsed < .milliseconds(1500))
    }

    @Test func silentPeerTimesOut() async throws {
        let server = try await RawServer.start(reply: nil)
        defer { Task { await server.close() } }
        let (result, elapsed) = await measure {
            await Result { () async throws(HTTPClientError) -> HTTPResponse in
                try await HTTPClient.send(
                    HTTPClientRequest(host: "127.0.0.1", port: server.port, timeout: .milliseconds(200)), group: testGroup)
            }
        }
        guard case .failure(.timedOut) = result else {
            Issue.record("expected a timeout, got \(result)")
            return
        }
        #expect(elapsed < .milliseconds(1500))
    }

    @Test func garbageResponseIsAProtocolError() async throws {
        let server = try await RawServer.start(reply: "SSH-2.0-OpenSSH\r\n\r\n")
        defer { Task { await server.close() } }
        let result = await Result { () async throws(HTTPClientError) -> HTTPResponse in
            try await HTTPClient.send(HTTPClientRequest(host: "127.0.0.1", port: server.port), group: testGroup)
        }
        guard case .failure(.protocolError) = result else {
            Issue.record("expected a protocol error, got \(result)")
            return
        }
    }

    @Test func responseBodyCapFailsOrTruncates() async throws {
        let server = try await startServer { _ in HTTPResponse(status: 200, body: Array(repeating: 65, count: 5000)) }
        defer { Task { await server.close() } }
        await #expect(throws: HTTPClientError.responseTooLarge(address: "127.0.0.1:\(server.port)", limit: 1000)) {
            try await HTTPClient.send(
                HTTPClientRequest(host: "127.0.0.1", port: server.port, maximumResponseBodyBytes: 1000), group: testGroup)
        }
        let truncated = try await HTTPClient.send(
            HTTPClientRequest(host: "127.0.0.1", port: server.port, maximumResponseBodyBytes: 1000, oversizedBody: .truncate),
            group: testGroup)
        #expect(truncated.status == 200)
        #expect(truncated.body.count == 1000)
    }

    @Test func closingTheServerRefusesNewConnections() async throws {
        let server = try await startServer { _ in HTTPResponse(status: 204) }
        let port = server.port
        let before = try await HTTPClient.send(HTTPClientRequest(host: "127.0.0.1", port: port), group: testGroup)
        #expect(before.status == 204)
        await server.close()
        await #expect(throws: HTTPClientError.connectionRefused(address: "127.0.0.1:\(port)")) {
            try await HTTPClient.send(HTTPClientRequest(host: "127.0.0.1", port: port), group: testGroup)
        }
    }

    @Test func loopbackDetection() {
        for address in ["127.0.0.1", "127.0.0.6", "::1", "[::1]", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"] {
            #expect(IPAddressText.isLoopback(address), "\(address)")
        }
        for address in ["10.0.0.1", "::", "::2", "fd00::1", "128.0.0.1", "localhost", ""] {
            #expect(!IPAddressText.isLoopback(address), "\(address)")
        }
        var request = HTTPRequest(target: "/", remoteAddress: "10.1.2.3")
        #expect(!request.isFromLoopback)
        request.remoteAddress = nil
        #expect(!request.isFromLoopback)
    }

    @Test func headerFieldsAreCaseInsensitiveAndOrdered() {
        var fields: HTTPFields = ["Accept": "a", "X-One": "1"]
        fields.append(name: "accept", value: "b")
        #expect(fields.values(for: "ACCEPT") == ["a", "b"])
        fields["Accept"] = "c"
        #expect(fields.values(for: "accept") == ["c"])
        #expect(fields.map(\.name) == ["Accept", "X-One"])
        fields["x-one"] = nil
        #expect(!fields.contains("X-One"))
    }
}

extension Result where Failure == HTTPClientError {
    init(catching body: () async throws(HTTPClientError) -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
