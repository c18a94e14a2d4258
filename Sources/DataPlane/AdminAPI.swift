import AgentHTTP
import Capture
import ConfigFormats
import DataPlaneConfig
import ProxyStats

/// Envoy's admin API (the subset sluice-proxy has), with Envoy's paths, methods, status codes,
/// content types and body shapes, so pilot-agent, istioctl and scrapers cannot tell the difference.
/// Transport-free: the server feeds it `HTTPRequest`s from the admin listener.
public final class AdminAPI: Sendable {
    /// Envoy's `VersionInfo::version()` shape: `<revision>/<version>/<status>/<build type>/<TLS library>`.
    public static let defaultVersion = "0000000000000000000000000000000000000000/1.0.0-sluice/Clean/RELEASE/none"

    let control: any ProxyControl
    let version: String
    private let quitDelay: Duration
    let clock: @Sendable () -> WallClockTime
    private let requestStats: AdminRequestStats

    /// - Parameters:
    ///   - quitDelay: how long `/quitquitquit` waits after producing its response before calling
    ///     `quit()`, so the `OK` reaches the caller before the listener closes (Envoy posts its shutdown
    ///     to the event loop for the same reason).
    ///   - clock: wall-clock time, for uptimes; injected by tests.
    public init(
        control: any ProxyControl,
        version: String = AdminAPI.defaultVersion,
        quitDelay: Duration = .milliseconds(100),
        clock: @escaping @Sendable () -> WallClockTime = WallClockTime.now
    ) {
        self.control = control
        self.version = version
        self.quitDelay = quitDelay
        self.clock = clock
        requestStats = AdminRequestStats(control.stats)
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        var response = await route(request)
        Self.addFallbackHeaders(&response)
        requestStats.count(status: response.status)
        return response
    }

    private func route(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        guard let endpoint = Self.endpoints.first(where: { $0.path == path }) else {
            // Envoy: "invalid path. " followed by the help text, with 404.
            return .adminText(404, "invalid path. " + Self.helpText)
        }
        let method = request.method.uppercased()
        if endpoint.mutatesState, method != "POST" {
            return .adminText(405, "Method \(request.method) not allowed, POST required.")
        }
        let query = AdminQuery(request.query)
        switch path {
        case "/", "/help": return .adminText(200, Self.helpText)
        case "/ready": return ready()
        case "/server_info": return serverInfo()
        case "/hot_restart_version": return .adminText(200, "disabled")
        case "/stats": return stats(query, defaultFormat: nil)
        case "/stats/prometheus": return stats(query, defaultFormat: "prometheus")
        case "/listeners": return listeners(query)
        case "/clusters": return clusters(query)
        case "/config_dump": return configDump(query)
        case "/certs": return .adminJSON(["certificates": []])
        case "/drain_listeners":
            await control.drainListeners(
                inboundOnly: query.has("inboundonly"), graceful: query.has("graceful"), skipExit: query.has("skip_exit"))
            return .adminText(200, "OK\n")
        case "/quitquitquit":
            scheduleQuit()
            return .adminText(200, "OK\n")
        case "/healthcheck/fail":
            control.setHealthCheckFailed(true)
            return .adminText(200, "OK\n")
        case "/healthcheck/ok":
            control.setHealthCheckFailed(false)
            return .adminText(200, "OK\n")
        case "/logging": return logging(query)
        case "/reopen_logs": return .adminText(200, "OK\n")
        default: return .adminText(404, "invalid path. " + Self.helpText)
        }
    }

    /// The process exits from `quit()`; the response must be on the wire first, and the handler's
    /// caller writes it only after `handle` returns. A detached task, a short delay, then `quit()`.
    private func scheduleQuit() {
        let control = self.control
        let delay = quitDelay
        Task.detached {
            try? await Task.sleep(for: delay)
            await control.quit()
        }
    }

    // MARK: - /ready

    private func ready() -> HTTPResponse {
        let state = control.reportedState
        return .adminText(state == .live ? 200 : 503, state.name + "\n")
    }

    // MARK: - /stats

    private func stats(_ query: AdminQuery, defaultFormat: String?) -> HTTPResponse {
        let statsQuery: StatsQuery
        do {
            statsQuery = try StatsQuery(queryItems: query.items)
        } catch {
            return .adminText(400, error.message)
        }
        let format = defaultFormat ?? query.nonEmpty("format") ?? "text"
        switch format {
        case "text":
            return .adminText(200, control.stats.render(.text, query: statsQuery))
        case "json":
            return HTTPResponse(
                status: 200, headers: ["Content-Type": AdminContentType.json],
                body: Array(control.stats.render(.json, query: statsQuery).utf8))
        case "prometheus":
            return .adminText(200, control.stats.render(.prometheus, query: statsQuery))
        case "html", "active-html":
            return .adminText(400, "HTML output was disabled by building with --define=admin_html=disabled")
        default:
            return .adminText(400, "usage: /stats?format=(html|active-html|json|prometheus|text)\n\n")
        }
    }

    // MARK: - /logging

    private func logging(_ query: AdminQuery) -> HTTPResponse {
        let levels = control.logLevels
        var body = ""
        var status = 200
        if !query.items.isEmpty, let error = changeLogLevels(query.items, levels) {
            status = 400
            body += "error: \(error)\n\n"
            body += "usage: /logging?<name>=<level> (change single level)\n"
            body += "usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n"
            body += "usage: /logging?level=<level> (change all levels)\n"
            body += "levels: " + LogLevel.allCases.map { $0.rawValue + " " }.joined() + "\n"
        }
        body += "active loggers:\n"
        for (component, level) in levels.snapshot() {
            body += "  \(component): \(level.rawValue)\n"
        }
        body += "\n"
        return .adminText(status, body)
    }

    /// Envoy's `LogsHandler::changeLogLevel`: exactly one parameter, `level`, `paths` or a component
    /// name; levels spelled as spdlog names them (`warning`, not `warn`). Returns the error, if any.
    private func changeLogLevels(_ items: [(name: String, value: String)], _ levels: ProxyLogLevels) -> String? {
        guard items.count == 1, let item = items.first else { return "invalid number of parameters" }
        if item.name == "level" {
            guard let level = LogLevel(rawValue: item.value) else { return "unknown logger level" }
            levels.setAll(level)
            return nil
        }
        var changes: [String: LogLevel] = [:]
        if item.name == "paths" {
            for pair in item.value.split(separator: ",") where !pair.allSatisfy({ $0 == " " }) {
                let parts = pair.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(" ") }
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    return "empty logger name or empty logger level"
                }
                guard let level = LogLevel(rawValue: parts[1]) else { return "unknown logger level" }
                changes[parts[0]] = level
            }
        } else {
            guard let level = LogLevel(rawValue: item.value) else { return "unknown logger level" }
            changes[item.name] = level
        }
        return levels.set(changes).isEmpty ? nil : "unknown logger name"
    }

    // MARK: - Help

    struct Endpoint: Sendable {
        var path: String
        var help: String
        var mutatesState: Bool
        var parameters: [(name: String, help: String, choices: [String]?)] = []
    }

    /// Envoy's help texts for the endpoints sluice-proxy serves.
    static let endpoints: [Endpoint] = [
        Endpoint(path: "/", help: "Admin home page", mutatesState: false),
        Endpoint(path: "/certs", help: "print certs on machine", mutatesState: false),
        Endpoint(path: "/clusters", help: "upstream cluster status", mutatesState: false, parameters: [
            ("format", "File format to use", ["text", "json"]),
        ]),
        Endpoint(path: "/config_dump", help: "dump current Envoy configs (experimental)", mutatesState: false, parameters: [
            ("resource", "The resource to dump", nil),
            ("mask", "The mask to apply. When both resource and mask are specified, the mask is applied to every element in the desired repeated field so that only a subset of fields are returned. The mask is parsed as a ProtobufWkt::FieldMask", nil),
            ("name_regex", "Dump only the currently loaded configurations whose names match the specified regex. Can be used with both resource and mask query parameters.", nil),
            ("include_eds", "Dump currently loaded configuration including EDS. See the response definition for more information", nil),
        ]),
        Endpoint(path: "/drain_listeners", help: "drain listeners", mutatesState: true, parameters: [
            ("graceful", "When draining listeners, enter a graceful drain period prior to closing listeners. This behaviour and duration is configurable via server options or CLI", nil),
            ("skip_exit", "When draining listeners, do not exit after the drain period. This must be used with graceful", nil),
            ("inboundonly", "Drains all inbound listeners. traffic_direction field in envoy_v3_api_msg_config.listener.v3.Listener is used to determine whether a listener is inbound or outbound.", nil),
        ]),
        Endpoint(path: "/healthcheck/fail", help: "cause the server to fail health checks", mutatesState: true),
        Endpoint(path: "/healthcheck/ok", help: "cause the server to pass health checks", mutatesState: true),
        Endpoint(path: "/help", help: "print out list of admin commands", mutatesState: false),
        Endpoint(path: "/hot_restart_version", help: "print the hot restart compatibility version", mutatesState: false),
        Endpoint(path: "/listeners", help: "print listener info", mutatesState: false, parameters: [
            ("format", "File format to use", ["text", "json"]),
        ]),
        Endpoint(path: "/logging", help: "query/change logging levels", mutatesState: true, parameters: [
            ("paths", "Change multiple logging levels by setting to <logger_name1>:<desired_level1>,<logger_name2>:<desired_level2>.", nil),
            ("level", "desired logging level, this will change all loggers's level", [""] + LogLevel.allCases.map(\.rawValue)),
        ]),
        Endpoint(path: "/quitquitquit", help: "exit the server", mutatesState: true),
        Endpoint(path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", mutatesState: false),
        Endpoint(path: "/reopen_logs", help: "reopen access logs", mutatesState: true),
        Endpoint(path: "/server_info", help: "print server version/status information", mutatesState: false),
        Endpoint(path: "/stats", help: "print server stats", mutatesState: false, parameters: [
            ("usedonly", "Only include stats that have been written by system since restart", nil),
            ("filter", "Regular expression (Google re2) for filtering stats", nil),
            ("format", "Format to use", ["text", "json", "prometheus"]),
            ("type", "Stat types to include.", ["All", "Counters", "Gauges"]),
        ]),
        Endpoint(path: "/stats/prometheus", help: "print server stats in prometheus format", mutatesState: false, parameters: [
            ("usedonly", "Only include stats that have been written by system since restart", nil),
            ("filter", "Regular expression (Google re2) for filtering stats", nil),
        ]),
    ]

    /// Envoy's `getHelp`: endpoints in path order, `(POST)` on the mutating ones, parameters indented.
    static let helpText: String = {
        var text = "admin commands are:\n"
        for endpoint in endpoints.sorted(by: { $0.path < $1.path }) {
            text += "  \(endpoint.path)\(endpoint.mutatesState ? " (POST)" : ""): \(endpoint.help)\n"
            for parameter in endpoint.parameters {
                text += "      \(parameter.name): \(parameter.help)"
                if let choices = parameter.choices {
                    text += "; One of (" + choices.joined(separator: ", ") + ")"
                }
                text += "\n"
            }
        }
        return text
    }()

    /// Envoy's `populateFallbackResponseHeaders`.
    private static func addFallbackHeaders(_ response: inout HTTPResponse) {
        if response.headers["Content-Type"] == nil {
            response.headers["Content-Type"] = AdminContentType.text
        }
        if response.headers["Cache-Control"] == nil {
            response.headers["Cache-Control"] = "no-cache, max-age=0"
        }
        response.headers.append(name: "X-Content-Type-Options", value: "nosniff")
    }
}

enum AdminContentType {
    static let text = "text/plain; charset=UTF-8"
    static let plain = "text/plain"
    static let json = "application/json"
}

extension HTTPResponse {
    static func adminText(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": AdminContentType.text], body: Array(text.utf8))
    }

    static func adminJSON(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: 200, headers: ["Content-Type": AdminContentType.json], body: Array(value.renderedJSON(pretty: true).utf8))
    }
}

/// Query parameters in order, decoded as Envoy's `parseAndDecodeQueryString` does: `%XX` only, so a
/// `+` in a stats regex stays a `+`.
struct AdminQuery {
    let items: [(name: String, value: String)]

    init(_ query: String?) {
        guard let query, !query.isEmpty else {
            items = []
            return
        }
        items = query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let equals = item.firstIndex(of: "=") {
                return (PercentEncoding.decode(item[..<equals], plusAsSpace: false),
                        PercentEncoding.decode(item[item.index(after: equals)...], plusAsSpace: false))
            }
            return (PercentEncoding.decode(item, plusAsSpace: false), "")
        }
    }

    func has(_ name: String) -> Bool { items.contains { $0.name == name } }

    /// The first value, empty or not.
    func first(_ name: String) -> String? { items.first { $0.name == name }?.value }

    /// Envoy's `Utility::queryParam`: an empty value counts as absent.
    func nonEmpty(_ name: String) -> String? {
        guard let value = first(name), !value.isEmpty else { return nil }
        return value
    }
}

/// The admin listener's own HTTP stats (`http.admin.*`), created once.
private struct AdminRequestStats: Sendable {
    let total: Counter
    let completed: Counter
    let byClass: [Counter]

    init(_ store: StatsStore) {
        total = store.counter("http.admin.downstream_rq_total")
        completed = store.counter("http.admin.downstream_rq_completed")
        byClass = (1...5).map { store.counter("http.admin.downstream_rq_\($0)xx") }
    }

    func count(status: Int) {
        total.increment()
        completed.increment()
        let statusClass = status / 100
        if (1...5).contains(statusClass) { byClass[statusClass - 1].increment() }
    }
}

extension Substring {
    func trimmingCharacters(_ character: Character) -> String {
        var text = self
        while text.first == character { text = text.dropFirst() }
        while text.last == character { text = text.dropLast() }
        return String(text)
    }
}
