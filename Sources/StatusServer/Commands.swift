import AgentHTTP
import NIOCore

/// `pilot-agent wait`: poll a readiness URL until it answers 200 (AGENT.md §1).
public enum WaitCommand {
    public static let defaultURL = "http://localhost:15021/healthz/ready"

    /// 0 once the URL answers 200; 255 (Istio's `os.Exit(-1)`) when `timeout` passes first or the URL
    /// is not a plain `http://host[:port]/path` one.
    public static func run(
        url: String = defaultURL,
        period: Duration = .milliseconds(500),
        requestTimeout: Duration = .milliseconds(500),
        timeout: Duration = .seconds(60),
        group: any EventLoopGroup,
        log: (String) -> Void
    ) async -> Int32 {
        guard let target = HTTPURL(url) else {
            log("invalid --url \(url): expected http://host[:port]/path")
            return 255
        }
        log("Waiting for Envoy proxy to be ready (timeout: \(timeout.components.seconds) seconds)...")
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastError = "no attempt made"
        // Bounded by time and by count: one attempt per period, plus one.
        let period = max(period, .milliseconds(1))
        let maximumAttempts = Int((timeout / period).rounded(.up)) + 1
        for _ in 0..<maximumAttempts {
            let remaining = deadline - clock.now
            let request = HTTPClientRequest(
                host: target.host, port: target.port, target: target.target,
                timeout: max(.milliseconds(1), min(requestTimeout, remaining)))
            let attemptStarted = clock.now
            do {
                let response = try await HTTPClient.send(request, group: group)
                if response.status == 200 {
                    log("Envoy is ready!")
                    return 0
                }
                lastError = "HTTP status code \(response.status)"
            } catch {
                lastError = String(describing: error)
            }
            log("Proxy not ready yet: \(lastError)")
            let nextAttempt = attemptStarted + period
            guard nextAttempt < deadline else { break }
            try? await Task.sleep(until: nextAttempt, clock: clock)
        }
        log("timeout waiting for Envoy proxy to become ready. Last error: \(lastError)")
        return 255
    }
}

/// `pilot-agent request <METHOD> <path> [body]`: one call to a local agent or data plane port.
public enum RequestCommand {
    /// Istio allows only the admin, status, readiness and XDS-debug ports.
    public static let allowedPorts: Set<Int> = [15000, 15020, 15021, 15004]

    /// The output is the response body; a refused port, an error or a non-2xx answer exits 255 like Istio.
    public static func run(
        method: String,
        path: String,
        body: String? = nil,
        port: Int = 15000,
        allowedPorts: Set<Int>? = RequestCommand.allowedPorts,
        timeout: Duration = .seconds(60),
        group: any EventLoopGroup
    ) async -> (exitCode: Int32, output: String) {
        if let allowedPorts, !allowedPorts.contains(port) {
            let list = allowedPorts.sorted().map(String.init).joined(separator: ", ")
            return (255, "--debug-port \(port) is not allowed: use one of \(list)\n")
        }
        let target = path.hasPrefix("/") ? path : "/" + path
        let request = HTTPClientRequest(
            host: "127.0.0.1", port: port, method: method.uppercased(), target: target,
            body: Array((body ?? "").utf8), timeout: timeout)
        do {
            let response = try await HTTPClient.send(request, group: group)
            guard (200..<300).contains(response.status) else {
                return (255, "received unsuccessful status code \(response.status): \(response.bodyText)\n")
            }
            return (0, response.bodyText)
        } catch {
            return (255, "\(error)\n")
        }
    }
}

/// `http://host[:port]/path`, all `pilot-agent wait` needs.
struct HTTPURL: Equatable {
    var host: String
    var port: Int
    var target: String

    init?(_ text: String) {
        guard text.lowercased().hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<slash]
        target = rest[slash...].isEmpty ? "/" : (rest[slash...].hasPrefix("?") ? "/" : "") + String(rest[slash...])
        var hostPart = authority
        port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let parsed = Int(after.dropFirst()) else { return nil }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = parsed
        }
        guard !hostPart.isEmpty, (1...65535).contains(port) else { return nil }
        host = String(hostPart)
    }
}
