import AgentHTTP
import Logging
import NIOCore

/// One application metrics endpoint from `ISTIO_PROMETHEUS_ANNOTATIONS` (`port`, `path`; multi-target
/// lists several).
public struct MetricsMergeTarget: Sendable, Hashable {
    public var port: Int
    /// Path, optionally with a query.
    public var path: String

    public init(port: Int, path: String = "/metrics") {
        self.port = port
        self.path = path
    }
}

public struct MetricsMergeConfiguration: Sendable {
    /// The data plane's Prometheus listener (15090), or nil when `PILOT_AGENT_MERGE_ENVOY_STATS=false`.
    public var dataPlanePrometheusPort: Int?
    public var dataPlaneHost: String
    /// Empty when the annotations are absent or say `scrape: "false"`.
    public var applicationTargets: [MetricsMergeTarget]
    /// Istio always scrapes the application at localhost.
    public var applicationHost: String
    /// The bound when Prometheus sends no `X-Prometheus-Scrape-Timeout-Seconds`.
    public var defaultTimeout: Duration
    /// Per application target (Istio's 10 MiB).
    public var maximumApplicationBodyBytes: Int

    public init(
        dataPlanePrometheusPort: Int? = 15090,
        dataPlaneHost: String = "localhost",
        applicationTargets: [MetricsMergeTarget] = [],
        applicationHost: String = "localhost",
        defaultTimeout: Duration = .seconds(10),
        maximumApplicationBodyBytes: Int = 10 << 20
    ) {
        self.dataPlanePrometheusPort = dataPlanePrometheusPort
        self.dataPlaneHost = dataPlaneHost
        self.applicationTargets = applicationTargets
        self.applicationHost = applicationHost
        self.defaultTimeout = defaultTimeout
        self.maximumApplicationBodyBytes = maximumApplicationBodyBytes
    }
}

/// STATUS.md §4: agent metrics, then the data plane's, then the application's last (an OpenMetrics
/// body must end with its single `# EOF`). A failing source is left out and counted, never fatal.
struct MetricsMerger: Sendable {
    static let textContentType = "text/plain; version=0.0.4; charset=utf-8"
    static let scrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

    let configuration: MetricsMergeConfiguration
    let metrics: AgentMetrics
    let group: any EventLoopGroup
    let logger: Logger

    func scrape(_ request: HTTPRequest) async -> HTTPResponse {
        metrics.recordScrape()
        var forwarded = HTTPFields()
        for name in ["User-Agent", Self.scrapeTimeoutHeader] {
            if let value = request.headers[name] { forwarded[name] = value }
        }
        let timeout = Self.scrapeTimeout(request.headers[Self.scrapeTimeoutHeader]) ?? configuration.defaultTimeout

        async let dataPlaneBody = scrapeDataPlane(query: request.query, headers: forwarded, timeout: timeout)
        var acceptingHeaders = forwarded
        acceptingHeaders["Accept"] = Self.applicationAccept(request.headers["Accept"])
        let applicationHeaders = acceptingHeaders
        let applicationResults = await withTaskGroup(of: (Int, HTTPResponse?).self) { group in
            for (index, target) in configuration.applicationTargets.enumerated() {
                group.addTask {
                    (index, await scrapeApplication(target, headers: applicationHeaders, timeout: timeout))
                }
            }
            var results = [HTTPResponse?](repeating: nil, count: configuration.applicationTargets.count)
            for await (index, response) in group { results[index] = response }
            return results
        }
        let dataPlane = await dataPlaneBody
        // Rendered last, so this scrape's own failures are already counted in it.
        let agentText = metrics.render()

        let applicationResponses = applicationResults.compactMap { $0 }
        let contentType = applicationResponses.first.map { Self.negotiatedContentType($0.headers["Content-Type"]) }
            ?? Self.textContentType
        let isOpenMetrics = contentType.hasPrefix("application/openmetrics-text")

        var body: [UInt8] = []
        Self.appendSection(Array(agentText.utf8), to: &body)
        if let dataPlane {
            Self.appendSection(dataPlane, to: &body)
        }
        for response in applicationResponses {
            Self.appendSection(isOpenMetrics ? Self.removingEOF(response.body) : response.body, to: &body)
        }
        if isOpenMetrics {
            body += Array("# EOF\n".utf8)
        }
        return HTTPResponse(status: 200, headers: ["Content-Type": contentType], body: body)
    }

    private func scrapeDataPlane(query: String?, headers: HTTPFields, timeout: Duration) async -> [UInt8]? {
        guard let port = configuration.dataPlanePrometheusPort else { return nil }
        var headers = headers
        // Envoy's output cannot be merged as OpenMetrics or protobuf.
        headers["Accept"] = "text/plain"
        let target = "/stats/prometheus" + (query.map { $0.isEmpty ? "" : "?" + $0 } ?? "")
        let request = HTTPClientRequest(
            host: configuration.dataPlaneHost, port: port, target: target, headers: headers, timeout: timeout)
        do {
            let response = try await HTTPClient.send(request, group: group)
            guard response.status == 200 else {
                throw ScrapeError.status(response.status)
            }
            return response.body
        } catch {
            metrics.recordScrapeFailure(.envoy)
            logger.error("failed scraping envoy metrics: \(error)")
            return nil
        }
    }

    private func scrapeApplication(_ target: MetricsMergeTarget, headers: HTTPFields, timeout: Duration) async -> HTTPResponse? {
        let path = target.path.hasPrefix("/") ? target.path : "/" + target.path
        let request = HTTPClientRequest(
            host: configuration.applicationHost, port: target.port, target: path, headers: headers, timeout: timeout,
            maximumResponseBodyBytes: configuration.maximumApplicationBodyBytes)
        do {
            let response = try await HTTPClient.send(request, group: group)
            guard response.status == 200 else {
                throw ScrapeError.status(response.status)
            }
            return response
        } catch {
            metrics.recordScrapeFailure(.application)
            logger.error("failed scraping application metrics from port \(target.port)\(path): \(error)")
            return nil
        }
    }

    private enum ScrapeError: Error, CustomStringConvertible {
        case status(Int)
        var description: String {
            switch self {
            case .status(let status): return "status code \(status)"
            }
        }
    }

    static func scrapeTimeout(_ header: String?) -> Duration? {
        guard let header, let seconds = Double(header.trimmingCharacters(in: " ")), seconds > 0, seconds.isFinite else {
            return nil
        }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// The scraper's Accept, less the protobuf format (it cannot be concatenated with text); text when nothing is left.
    static func applicationAccept(_ accept: String?) -> String {
        let ranges = (accept ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: " ") }
            .filter { !$0.isEmpty && !$0.lowercased().hasPrefix("application/vnd.google.protobuf") }
        return ranges.isEmpty ? "text/plain;version=0.0.4;q=1,*/*;q=0.1" : ranges.joined(separator: ",")
    }

    /// Istio's `negotiateMetricsFormat`: OpenMetrics when the application answered it (versions 0.0.1 and
    /// 1.0.0), else the text format.
    static func negotiatedContentType(_ contentType: String?) -> String {
        guard let contentType else { return textContentType }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: " ") }
        guard parts.first?.lowercased() == "application/openmetrics-text" else { return textContentType }
        var version = "0.0.1"
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].lowercased() == "version" else { continue }
            let requested = pair[1].trimmingCharacters(in: "\"")
            guard requested == "0.0.1" || requested == "1.0.0" else { return textContentType }
            version = String(requested)
        }
        return "application/openmetrics-text; version=\(version); charset=utf-8"
    }

    static func removingEOF(_ body: [UInt8]) -> [UInt8] {
        let text = String(decoding: body, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.trimmingCharacters(in: " ") != "# EOF" }
        return Array(lines.joined(separator: "\n").utf8)
    }

    /// Sections are joined by newlines even when a source forgot its final one.
    static func appendSection(_ section: [UInt8], to body: inout [UInt8]) {
        guard !section.isEmpty else { return }
        body += section
        if section.last != UInt8(ascii: "\n") { body.append(UInt8(ascii: "\n")) }
    }
}
