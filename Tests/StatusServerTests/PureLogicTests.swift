import AgentHTTP
@testable import StatusServer
import Testing

@Suite("Status server pure logic")
struct PureLogicTests {
    @Test func procStatFieldsAfterACommandNameWithSpacesAndParentheses() throws {
        // Fields from utime (14) on: utime 250, stime 50, ..., starttime 1000, vsize 123456789, rss 300.
        let stat = "4242 (pilot agent (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 1000 123456789 300 18446744073709551615"
        let stats = try #require(ProcessStatsReader.parseStat(stat, clockTicks: 100, pageSize: 4096, bootTime: 1_700_000_000))
        #expect(stats.cpuSeconds == 3.0)
        #expect(stats.virtualMemoryBytes == 123_456_789)
        #expect(stats.residentMemoryBytes == 300 * 4096)
        #expect(stats.startTimeSeconds == 1_700_000_010)
        #expect(ProcessStatsReader.parseStat("garbage", clockTicks: 100, pageSize: 4096, bootTime: nil) == nil)
    }

    @Test func bootTimeAndOpenFileLimit() {
        #expect(ProcessStatsReader.bootTime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n") == 1_700_000_000)
        let limits = """
            Limit                     Soft Limit           Hard Limit           Units
            Max open files            20000                524288               files
            """
        #expect(ProcessStatsReader.maximumOpenFiles(limits) == 20000)
    }

    @Test func readinessEvaluationNamesTheState() {
        #expect(DataPlaneReadiness.evaluate(["server.state": 1, "listener_manager.workers_started": 1], expectedListeners: 0)
            == .notReady(reason: "server is not live, current state is: DRAINING"))
        #expect(DataPlaneReadiness.evaluate(
            ["server.state": 0, "listener_manager.workers_started": 1, "listener_manager.total_listeners_active": 2],
            expectedListeners: 2) == .ready)
        #expect(DataPlaneReadiness.evaluate(
            ["server.state": 0, "listener_manager.workers_started": 1], expectedListeners: 1)
            == .notReady(reason: "0 of 1 static listeners active (listener_manager.total_listeners_active)"))
    }

    @Test func metricsFormatNegotiation() {
        #expect(MetricsMerger.negotiatedContentType(nil) == MetricsMerger.textContentType)
        #expect(MetricsMerger.negotiatedContentType("text/plain; version=0.0.4") == MetricsMerger.textContentType)
        #expect(MetricsMerger.negotiatedContentType("application/openmetrics-text")
            == "application/openmetrics-text; version=0.0.1; charset=utf-8")
        #expect(MetricsMerger.negotiatedContentType("application/openmetrics-text; version=1.0.0; charset=utf-8")
            == "application/openmetrics-text; version=1.0.0; charset=utf-8")
        #expect(MetricsMerger.negotiatedContentType("application/openmetrics-text; version=2.0.0") == MetricsMerger.textContentType)
        #expect(MetricsMerger.scrapeTimeout("2.5") == .milliseconds(2500))
        #expect(MetricsMerger.scrapeTimeout("0") == nil)
        #expect(MetricsMerger.scrapeTimeout("soon") == nil)
        #expect(MetricsMerger.applicationAccept(nil) == "text/plain;version=0.0.4;q=1,*/*;q=0.1")
        #expect(MetricsMerger.applicationAccept("application/vnd.google.protobuf;q=0.9, text/plain;q=0.5") == "text/plain;q=0.5")
    }

    @Test func redirectLocationsResolveLikeABrowser() {
        let base = ProbeURL(host: "10.0.0.5", port: 8080, target: "/health/live?x=1")
        #expect(base.resolving("/ready") == ProbeURL(host: "10.0.0.5", port: 8080, target: "/ready"))
        #expect(base.resolving("ready") == ProbeURL(host: "10.0.0.5", port: 8080, target: "/health/ready"))
        #expect(base.resolving("?y=2") == ProbeURL(host: "10.0.0.5", port: 8080, target: "/health/live?y=2"))
        #expect(base.resolving("http://10.0.0.5:9090") == ProbeURL(host: "10.0.0.5", port: 9090, target: "/"))
        #expect(base.resolving("//other.example/x") == ProbeURL(host: "other.example", port: 80, target: "/x"))
        #expect(base.resolving("https://10.0.0.5/x")?.isHTTP == false)
        #expect(base.resolving("http://[fd00::5]:81/x") == ProbeURL(host: "fd00::5", port: 81, target: "/x"))
        #expect(base.resolving("http://host:notaport/") == nil)
    }

    @Test func hostPortRewriteOnlyForTheStatusPort() {
        #expect(ApplicationProber.rewriteHostPort("10.0.0.5:15020", statusPort: 15020, applicationPort: 8080) == "10.0.0.5:8080")
        #expect(ApplicationProber.rewriteHostPort("example.com", statusPort: 15020, applicationPort: 8080) == "example.com")
        #expect(ApplicationProber.rewriteHostPort("example.com:9999", statusPort: 15020, applicationPort: 8080) == "example.com:9999")
    }

    @Test func waitURLParsing() {
        #expect(HTTPURL("http://localhost:15021/healthz/ready") == HTTPURL(host: "localhost", port: 15021, target: "/healthz/ready"))
        #expect(HTTPURL("http://[::1]:15021") == HTTPURL(host: "::1", port: 15021, target: "/"))
        #expect(HTTPURL("http://example") == HTTPURL(host: "example", port: 80, target: "/"))
        #expect(HTTPURL("https://example/") == nil)
        #expect(HTTPURL("http://:80/") == nil)
        #expect(HTTPURL("http://host:0/") == nil)
    }

    @Test func percentEncodingRoundTrips() {
        let regex = #"^(cluster_manager\.cds|listener_manager\.lds)\.(update_success|update_rejected)$ +&="#
        let encoded = PercentEncoding.encodeQueryValue(regex)
        #expect(!encoded.contains("&") && !encoded.contains("+") && !encoded.contains("\\"))
        #expect(PercentEncoding.decode(Substring(encoded)) == regex)
        #expect(PercentEncoding.queryItems("usedonly&filter=a%2Bb&x=1+2").map { "\($0.name)=\($0.value)" }
            == ["usedonly=", "filter=a+b", "x=1 2"])
    }
}

extension HTTPURL {
    init(host: String, port: Int, target: String) {
        self.init("http://placeholder/")!
        self.host = host
        self.port = port
        self.target = target
    }
}
