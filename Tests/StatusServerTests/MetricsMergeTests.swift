import AgentHTTP
import Logging
import StatusServer
import Testing

/// The value of the first sample line starting with `series` (name plus labels as rendered).
func sampleValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

func occurrences(of needle: String, in text: String) -> Int {
    var count = 0
    var rest = Substring(text)
    while let range = rest.firstRange(of: needle) {
        count += 1
        rest = rest[range.upperBound...]
    }
    return count
}

/// An application exposing metrics: OpenMetrics when asked for it, text otherwise.
func startMetricsApp(seen: Recorder<HTTPRequest>, delay: Duration = .zero) async throws -> HTTPServer {
    try await startServer { request in
        seen.append(request)
        if delay > .zero { try? await Task.sleep(for: delay) }
        guard request.path == "/app/metrics" else { return .text(404, "wrong-path-body") }
        if (request.headers["Accept"] ?? "").contains("application/openmetrics-text") {
            return HTTPResponse(
                status: 200, headers: ["Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8"],
                body: Array("# TYPE app_requests counter\napp_requests_total 7\n# EOF\n".utf8))
        }
        return HTTPResponse(
            status: 200, headers: ["Content-Type": "text/plain; version=0.0.4"],
            body: Array("app_requests_total 7".utf8))
    }
}

@Suite("Merged Prometheus metrics")
struct MetricsMergeTests {
    @Test func mergesAgentThenDataPlaneThenApplication() async throws {
        let envoy = try await FakeAdmin.start()
        defer { Task { await envoy.close() } }
        let appRequests = Recorder<HTTPRequest>()
        let app = try await startMetricsApp(seen: appRequests)
        defer { Task { await app.close() } }
        let routes = makeRoutes(metricsMerge: MetricsMergeConfiguration(
            dataPlanePrometheusPort: envoy.port, dataPlaneHost: "127.0.0.1",
            applicationTargets: [MetricsMergeTarget(port: app.port, path: "/app/metrics")], applicationHost: "127.0.0.1"))

        let response = await routes.respond(to: HTTPRequest(
            target: "/stats/prometheus?usedonly",
            headers: ["User-Agent": "Prometheus/2.50", "X-Prometheus-Scrape-Timeout-Seconds": "5", "Accept": "text/plain"]))
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
        let body = response.bodyText
        let agent = try #require(body.firstRange(of: "istio_agent_scrapes_total 1"))
        let dataPlane = try #require(body.firstRange(of: "envoy_cluster_upstream_cx_total"))
        let application = try #require(body.firstRange(of: "app_requests_total 7"))
        #expect(agent.lowerBound < dataPlane.lowerBound)
        #expect(dataPlane.lowerBound < application.lowerBound)
        #expect(body.hasSuffix("app_requests_total 7\n"))
        #expect(body.contains("istio_agent_process_resident_memory_bytes "))
        #expect(body.contains(#"istio_agent_istio_build{component="proxy",tag="test"} 1"#))

        let envoyRequest = try #require(envoy.requests.values.last)
        #expect(envoyRequest.target == "/stats/prometheus?usedonly")
        #expect(envoyRequest.headers["Accept"] == "text/plain")
        #expect(envoyRequest.headers["User-Agent"] == "Prometheus/2.50")
        let appRequest = try #require(appRequests.values.last)
        #expect(appRequest.headers["User-Agent"] == "Prometheus/2.50")
        #expect(appRequest.headers["X-Prometheus-Scrape-Timeout-Seconds"] == "5")
    }

    @Test func openMetricsFromTheApplicationEndsWithOneEOF() async throws {
        let appRequests = Recorder<HTTPRequest>()
        let app = try await startMetricsApp(seen: appRequests)
        defer { Task { await app.close() } }
        let routes = makeRoutes(metricsMerge: MetricsMergeConfiguration(
            dataPlanePrometheusPort: nil,
            applicationTargets: [
                MetricsMergeTarget(port: app.port, path: "/app/metrics"),
                MetricsMergeTarget(port: app.port, path: "app/metrics"),
            ],
            applicationHost: "127.0.0.1"))
        let response = await routes.respond(to: HTTPRequest(
            target: "/metrics",
            headers: ["Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3"]))
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8")
        let body = response.bodyText
        #expect(body.hasSuffix("app_requests_total 7\n# EOF\n"))
        #expect(occurrences(of: "# EOF", in: body) == 1)
        #expect(occurrences(of: "app_requests_total 7", in: body) == 2)
        let accept = try #require(appRequests.values.first?.headers["Accept"])
        #expect(!accept.contains("protobuf"))
        #expect(accept.contains("application/openmetrics-text"))
    }

    @Test func failuresAreCountedButNeverFailTheScrape() async throws {
        let appPort = try await closedPort()
        let envoyPort = try await closedPort()
        let routes = makeRoutes(metricsMerge: MetricsMergeConfiguration(
            dataPlanePrometheusPort: envoyPort, dataPlaneHost: "127.0.0.1",
            applicationTargets: [MetricsMergeTarget(port: appPort, path: "/metrics")], applicationHost: "127.0.0.1"))
        let first = await routes.respond(to: HTTPRequest(target: "/stats/prometheus"))
        #expect(first.status == 200)
        #expect(first.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
        let second = await routes.respond(to: HTTPRequest(target: "/stats/prometheus")).bodyText
        #expect(sampleValue(second, #"istio_agent_scrape_failures_total{type="application"}"#) == 2)
        #expect(sampleValue(second, #"istio_agent_scrape_failures_total{type="envoy"}"#) == 2)
        #expect(sampleValue(second, #"istio_agent_scrape_failures_total{type="agent"}"#) == 0)
        #expect(sampleValue(second, "istio_agent_scrapes_total") == 2)
    }

    @Test func applicationErrorStatusIsAFailure() async throws {
        let appRequests = Recorder<HTTPRequest>()
        let app = try await startMetricsApp(seen: appRequests)
        defer { Task { await app.close() } }
        let routes = makeRoutes(metricsMerge: MetricsMergeConfiguration(
            dataPlanePrometheusPort: nil,
            applicationTargets: [MetricsMergeTarget(port: app.port, path: "/wrong")], applicationHost: "127.0.0.1"))
        let body = await routes.respond(to: HTTPRequest(target: "/stats/prometheus")).bodyText
        #expect(sampleValue(body, #"istio_agent_scrape_failures_total{type="application"}"#) == 1)
        #expect(!body.contains("wrong-path-body"))
    }

    @Test func scrapeTimeoutHeaderBoundsTheScrape() async throws {
        let appRequests = Recorder<HTTPRequest>()
        let app = try await startMetricsApp(seen: appRequests, delay: .seconds(3))
        defer { Task { await app.close() } }
        let routes = makeRoutes(metricsMerge: MetricsMergeConfiguration(
            dataPlanePrometheusPort: nil,
            applicationTargets: [MetricsMergeTarget(port: app.port, path: "/app/metrics")], applicationHost: "127.0.0.1"))
        let (response, elapsed) = await measure {
            await routes.respond(to: HTTPRequest(
                target: "/stats/prometheus", headers: ["X-Prometheus-Scrape-Timeout-Seconds": "0.3"]))
        }
        #expect(response.status == 200)
        #expect(elapsed < .milliseconds(1500))
        #expect(!response.bodyText.contains("app_requests_total"))
    }

    @Test func localhostOnlyRefusesOtherPeers() async throws {
        let routes = makeRoutes(metricsLocalhostOnly: true)
        let remote = await routes.respond(to: HTTPRequest(target: "/stats/prometheus", remoteAddress: "10.1.2.3"))
        #expect(remote.status == 403)
        let local = await routes.respond(to: HTTPRequest(target: "/stats/prometheus", remoteAddress: "::1"))
        #expect(local.status == 200)
        #expect(local.bodyText.contains("istio_agent_scrapes_total 1"))
    }

    @Test func registeredMetricsAreServedWithThePrefix() async throws {
        let metrics = AgentMetrics(buildTag: "x")
        let counter = metrics.makeCounter(name: "dns_requests_total", help: "DNS requests.", labels: [("kind", "a")])
        counter.increment(by: 3)
        let gauge = metrics.makeGauge(name: "cert_expiry_seconds", help: "Seconds to expiry.")
        gauge.set(42)
        let text = metrics.render()
        #expect(sampleValue(text, #"istio_agent_dns_requests_total{kind="a"}"#) == 3)
        #expect(sampleValue(text, "istio_agent_cert_expiry_seconds") == 42)
        for name in [
            "istio_agent_process_resident_memory_bytes", "istio_agent_process_virtual_memory_bytes",
            "istio_agent_process_cpu_seconds_total", "istio_agent_process_open_fds", "istio_agent_process_max_fds",
            "istio_agent_process_start_time_seconds",
        ] {
            let value = try #require(sampleValue(text, name), "\(name) missing")
            #expect(value > 0, "\(name)")
        }
    }
}
