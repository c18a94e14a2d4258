import Foundation
import NIOCore
import NIOHTTP1

/// An admin response, and whether the process exits once it is sent (`/quitquitquit`).
struct AdminResponse {
    var status: HTTPResponseStatus
    var body: String
    var contentType = "text/plain; charset=UTF-8"
    var exitsAfterSending = false
}

/// The subset of Envoy's admin API that pilot-agent uses.
struct AdminAPI {
    let state: AdminState
    let log: EventLog

    func respond(method: HTTPMethod, uri: String) -> AdminResponse {
        let (path, query) = Self.split(uri)
        let parameters = Self.parameters(query)
        let response = route(method: method, path: path, query: query, parameters: parameters)
        log.record("request", ["method": method.rawValue, "path": path, "query": query, "status": Int(response.status.code)])
        return response
    }

    private func route(method: HTTPMethod, path: String, query: String, parameters: [String: String]) -> AdminResponse {
        let mutating = ["/drain_listeners", "/quitquitquit", "/healthcheck/fail", "/healthcheck/ok"]
        if mutating.contains(path) && method != .POST {
            return AdminResponse(status: .methodNotAllowed, body: "Method \(method.rawValue) not allowed, POST required.\n")
        }
        let now = monotonicMilliseconds()
        switch path {
        case "/ready":
            return state.isDraining
                ? AdminResponse(status: .serviceUnavailable, body: "DRAINING\n")
                : AdminResponse(status: .ok, body: "LIVE\n")
        case "/stats":
            if parameters["format"] == "prometheus" { return prometheus(now: now) }
            return stats(now: now, parameters: parameters)
        case "/stats/prometheus":
            return prometheus(now: now)
        case "/listeners":
            return listeners(json: parameters["format"] == "json")
        case "/drain_listeners":
            state.startDrain(query: query, at: now)
            return AdminResponse(status: .ok, body: "OK\n")
        case "/quitquitquit":
            return AdminResponse(status: .ok, body: "OK\n", exitsAfterSending: true)
        case "/server_info":
            let serverState = state.isDraining ? "DRAINING" : "LIVE"
            return AdminResponse(status: .ok, body: "{\"state\": \"\(serverState)\", \"version\": \"sluice-test-dataplane\"}\n",
                                 contentType: "application/json")
        default:
            return AdminResponse(status: .notFound, body: "invalid path. admin commands are: /ready /stats /stats/prometheus /listeners /drain_listeners /quitquitquit\n")
        }
    }

    /// `name: value` lines; `filter` is a regular expression searched in each name (Envoy uses RE2
    /// partial matching), `usedonly` hides stats never written.
    private func stats(now: Int, parameters: [String: String]) -> AdminResponse {
        var selected = state.stats(at: now)
        if parameters["usedonly"] != nil {
            selected = selected.filter(\.used)
        }
        if let filter = parameters["filter"], !filter.isEmpty {
            guard let expression = try? NSRegularExpression(pattern: filter) else {
                return AdminResponse(status: .badRequest, body: "Invalid re2 regex\n")
            }
            selected = selected.filter { stat in
                expression.firstMatch(in: stat.name, range: NSRange(stat.name.startIndex..., in: stat.name)) != nil
            }
        }
        return AdminResponse(status: .ok, body: selected.map { "\($0.name): \($0.value)\n" }.joined())
    }

    private func prometheus(now: Int) -> AdminResponse {
        var lines: [String] = []
        var listenerLines: [String] = []
        for stat in state.stats(at: now) {
            if stat.name.hasPrefix("listener."), stat.name.hasSuffix(".downstream_cx_active"),
               !stat.name.contains("worker_"), !stat.name.hasPrefix("listener.admin.") {
                let address = String(stat.name.dropFirst("listener.".count).dropLast(".downstream_cx_active".count))
                listenerLines.append("envoy_listener_downstream_cx_active{envoy_listener_address=\"\(address)\"} \(stat.value)")
            } else if !stat.name.hasPrefix("listener.") && !stat.name.hasPrefix("http.") {
                let name = "envoy_" + stat.name.replacing(".", with: "_")
                lines.append("# TYPE \(name) gauge\n\(name){} \(stat.value)")
            }
        }
        if !listenerLines.isEmpty {
            lines.append("# TYPE envoy_listener_downstream_cx_active gauge\n" + listenerLines.joined(separator: "\n"))
        }
        return AdminResponse(status: .ok, body: lines.joined(separator: "\n") + "\n",
                             contentType: "text/plain; version=0.0.4; charset=UTF-8")
    }

    /// Envoy's text form is `name::address:port` per line; `format=json` gives `listener_statuses`.
    private func listeners(json: Bool) -> AdminResponse {
        let listeners = state.listeners
        guard json else {
            return AdminResponse(status: .ok, body: listeners.map { "\($0.name)::\($0.address):\($0.port)\n" }.joined())
        }
        let statuses: [[String: Any]] = listeners.map { listener in
            ["name": listener.name,
             "local_address": ["socket_address": ["address": listener.address, "port_value": listener.port]]]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["listener_statuses": statuses], options: [.sortedKeys])) ?? Data()
        return AdminResponse(status: .ok, body: String(decoding: data, as: UTF8.self) + "\n", contentType: "application/json")
    }

    static func split(_ uri: String) -> (path: String, query: String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }

    /// `a&b=c` → ["a": "", "b": "c"], percent-decoded.
    static func parameters(_ query: String) -> [String: String] {
        var result: [String: String] = [:]
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            result[name] = value
        }
        return result
    }
}

/// HTTP/1.1 glue: one `AdminAPI` call per request, keep-alive as the client asks.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI
    private let onExit: @Sendable () -> Void
    private var head: HTTPRequestHead?

    init(api: AdminAPI, onExit: @escaping @Sendable () -> Void) {
        self.api = api
        self.onExit = onExit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let response = api.respond(method: head.method, uri: head.uri)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "content-length", value: "\(response.body.utf8.count)")
            let keepAlive = head.isKeepAlive && !response.exitsAfterSending
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status,
                                                                 headers: headers))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
            buffer.writeString(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            let sent = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if response.exitsAfterSending {
                let onExit = self.onExit
                sent.whenComplete { _ in onExit() }
            } else if !keepAlive {
                let channel = context.channel
                sent.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
