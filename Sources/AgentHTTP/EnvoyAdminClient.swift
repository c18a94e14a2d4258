import NIOCore

public enum EnvoyAdminError: Error, CustomStringConvertible, Equatable {
    case request(HTTPClientError)
    /// The admin API answered, but not with 2xx.
    case unexpectedStatus(path: String, status: Int, body: String)

    public var description: String {
        switch self {
        case .request(let error):
            return "data plane admin API: \(error)"
        case .unexpectedStatus(let path, let status, let body):
            let excerpt = body.count > 200 ? String(body.prefix(200)) + "..." : body
            return "data plane admin API answered \(status) to \(path): \(excerpt)"
        }
    }
}

/// Calls to the data plane's Envoy-style admin API (127.0.0.1:15000 by default).
public struct EnvoyAdminClient: Sendable {
    public var host: String
    public var port: Int
    public var group: any EventLoopGroup
    /// Per call; Istio uses 3 s for its liveness stats and Go's defaults elsewhere.
    public var timeout: Duration

    public init(host: String = "127.0.0.1", port: Int = 15000, group: any EventLoopGroup, timeout: Duration = .seconds(3)) {
        self.host = host
        self.port = port
        self.group = group
        self.timeout = timeout
    }

    /// `POST /drain_listeners` with only the chosen flags (`?inboundonly&graceful&skip_exit`).
    public func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async throws(EnvoyAdminError) {
        let flags = [(inboundOnly, "inboundonly"), (graceful, "graceful"), (skipExit, "skip_exit")]
            .filter(\.0).map(\.1)
        let target = flags.isEmpty ? "/drain_listeners" : "/drain_listeners?" + flags.joined(separator: "&")
        _ = try await call(method: "POST", target: target)
    }

    public func quitQuitQuit() async throws(EnvoyAdminError) {
        _ = try await call(method: "POST", target: "/quitquitquit")
    }

    /// `GET /stats?usedonly&filter=<regex>` as integer values; the first line of a name wins and
    /// non-integer values (histograms, text readouts) are skipped.
    public func stats(filter: String, usedOnly: Bool = true) async throws(EnvoyAdminError) -> [String: Int64] {
        var query: [String] = []
        if usedOnly { query.append("usedonly") }
        query.append("filter=" + PercentEncoding.encodeQueryValue(filter))
        let response = try await call(method: "GET", target: "/stats?" + query.joined(separator: "&"))
        return EnvoyStatsText.parse(response.bodyText)
    }

    /// AGENT.md §6 (`EXIT_ON_ZERO_ACTIVE_CONNECTIONS`): the sum of the listeners' `downstream_cx_active`,
    /// leaving out per-worker copies, internal listeners, the admin and the listeners on `excludingPorts`
    /// (the agent's own 15021/15090). Nil when the data plane reports no such stat at all.
    public func activeDownstreamConnections(excludingPorts: Set<Int>) async throws(EnvoyAdminError) -> Int? {
        let response = try await call(method: "GET", target: "/stats?usedonly&filter=" + PercentEncoding.encodeQueryValue("downstream_cx_active$"))
        return EnvoyStatsText.activeDownstreamConnections(in: response.bodyText, excludingPorts: excludingPorts)
    }

    /// `GET /stats/prometheus[?query]` from `port` on this client's host (the data plane's 15090
    /// listener in Istio). Accept is limited to the text format: Envoy's output cannot be merged as
    /// OpenMetrics.
    public func prometheusText(
        port: Int? = nil, query: String? = nil, headers: HTTPFields = [:], timeout: Duration? = nil
    ) async throws(EnvoyAdminError) -> (contentType: String, body: [UInt8]) {
        var headers = headers
        headers["Accept"] = "text/plain"
        let target = "/stats/prometheus" + (query.map { $0.isEmpty ? "" : "?" + $0 } ?? "")
        let response = try await call(method: "GET", target: target, port: port ?? self.port, headers: headers, timeout: timeout)
        return (response.headers["Content-Type"] ?? "text/plain; version=0.0.4", response.body)
    }

    private func call(
        method: String, target: String, port: Int? = nil, headers: HTTPFields = [:], timeout: Duration? = nil
    ) async throws(EnvoyAdminError) -> HTTPResponse {
        let request = HTTPClientRequest(
            host: host, port: port ?? self.port, method: method, target: target, headers: headers,
            timeout: timeout ?? self.timeout)
        let response: HTTPResponse
        do {
            response = try await HTTPClient.send(request, group: group)
        } catch {
            throw .request(error)
        }
        guard (200..<300).contains(response.status) else {
            throw .unexpectedStatus(path: target, status: response.status, body: response.bodyText)
        }
        return response
    }
}

/// Envoy's admin text format: one `name: value` per line.
public enum EnvoyStatsText {
    public static func parse(_ text: String) -> [String: Int64] {
        var stats: [String: Int64] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingSpaces()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            guard !name.isEmpty, stats[String(name)] == nil, let number = Int64(value) else { continue }
            stats[String(name)] = number
        }
        return stats
    }

    public static func activeDownstreamConnections(in text: String, excludingPorts: Set<Int>) -> Int? {
        let prefix = "listener."
        let suffix = ".downstream_cx_active"
        var sawStat = false
        var total: Int64 = 0
        for (name, value) in parse(text) where name.hasSuffix("downstream_cx_active") {
            sawStat = true
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { continue }
            let listener = name.dropFirst(prefix.count).dropLast(suffix.count)
            if listener.hasPrefix("worker_") || listener.contains(".worker_") { continue }
            if listener.hasPrefix("envoy_internal_") { continue }
            if listener == "admin" || listener.hasPrefix("admin.") { continue }
            // Listener stat names end in `_<port>` (`0.0.0.0_15021`, `[__]_15006`).
            if let underscore = listener.lastIndex(of: "_"), let port = Int(listener[listener.index(after: underscore)...]),
               excludingPorts.contains(port) {
                continue
            }
            total += value
        }
        return sawStat ? Int(total) : nil
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result = result.dropFirst() }
        while result.last == " " || result.last == "\t" || result.last == "\r" { result = result.dropLast() }
        return result
    }
}

public enum PercentEncoding {
    /// Percent-encodes everything but RFC 3986 unreserved characters, so regexes (`^ | \ $ +`) survive
    /// the admin API's query decoding unchanged.
    public static func encodeQueryValue(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return result
    }

    /// Decodes `%XX` (and `+` as space when `plusAsSpace`); malformed escapes are kept as written.
    public static func decode(_ value: Substring, plusAsSpace: Bool = true) -> String {
        var bytes: [UInt8] = []
        var index = value.utf8.startIndex
        let utf8 = value.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"),
               let high = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), high < utf8.endIndex,
               let low = utf8.index(index, offsetBy: 2, limitedBy: utf8.endIndex), low < utf8.endIndex,
               let value = UInt8(String(decoding: [utf8[high], utf8[low]], as: UTF8.self), radix: 16) {
                bytes.append(value)
                index = utf8.index(index, offsetBy: 3)
                continue
            }
            bytes.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = utf8.index(after: index)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `a&b=c` → [("a", ""), ("b", "c")], decoded, in order.
    public static func queryItems(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let equals = item.firstIndex(of: "=") {
                return (decode(item[..<equals]), decode(item[item.index(after: equals)...]))
            }
            return (decode(item), "")
        }
    }
}
