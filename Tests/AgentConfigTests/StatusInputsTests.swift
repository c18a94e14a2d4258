import AgentConfig
import Testing

@Suite("Application probes")
struct AppProbeTests {
    func probers(_ json: String) throws(AgentConfigError) -> [String: AppProbe] {
        var environment = podEnvironment
        environment["ISTIO_KUBE_APP_PROBERS"] = json
        return try resolve(environment: environment).appProbers
    }

    func proberError(_ json: String) -> String? {
        var environment = podEnvironment
        environment["ISTIO_KUBE_APP_PROBERS"] = json
        return resolutionError(environment: environment)
    }

    @Test("httpGet, tcpSocket and grpc probes as the injector writes them")
    func valid() throws {
        let parsed = try probers("""
            {"/app-health/httpbin/livez":{"httpGet":{"path":"/hello","port":8080,"scheme":"HTTP"},"timeoutSeconds":1},
             "/app-health/httpbin/readyz":{"httpGet":{"path":"status","port":8443,"scheme":"HTTPS","host":"example.com",
               "httpHeaders":[{"name":"X-Probe","value":"1"},{"name":"Empty"}]},"timeoutSeconds":5},
             "/app-health/db/startupz":{"tcpSocket":{"port":5432}},
             "/app-health/grpc/livez":{"grpc":{"port":9090,"service":"health"},"timeoutSeconds":2},
             "/app-lifecycle/httpbin/prestopz":{"httpGet":{"port":8080}}}
            """)
        #expect(parsed.count == 5)
        #expect(parsed["/app-health/httpbin/livez"] == AppProbe(
            action: .httpGet(HTTPGetAction(path: "/hello", port: 8080)), timeout: .seconds(1)))
        #expect(parsed["/app-health/httpbin/readyz"] == AppProbe(
            action: .httpGet(HTTPGetAction(path: "/status", port: 8443, host: "example.com", scheme: .https,
                                           headers: [HTTPHeader(name: "X-Probe", value: "1"), HTTPHeader(name: "Empty", value: "")])),
            timeout: .seconds(5)))
        #expect(parsed["/app-health/db/startupz"] == AppProbe(action: .tcpSocket(TCPSocketAction(port: 5432))))
        #expect(parsed["/app-health/grpc/livez"] == AppProbe(
            action: .grpc(GRPCAction(port: 9090, service: "health")), timeout: .seconds(2)))
        #expect(parsed["/app-lifecycle/httpbin/prestopz"] == AppProbe(action: .httpGet(HTTPGetAction(path: "/", port: 8080))))
        #expect(try probers("{}").isEmpty)
        #expect(try resolve().appProbers.isEmpty)
    }

    @Test("paths must match Istio's pattern", arguments: [
        "/app-health/c/livez", "/app-health/c/readyz", "/app-health/c/startupz",
        "/app-lifecycle/c/prestopz", "/app-lifecycle/c/poststartz",
    ])
    func validPaths(path: String) {
        #expect(AppProbe.isValidPath(path))
    }

    @Test("invalid paths", arguments: [
        "/app-health/c/healthz", "/app-health//livez", "/app-health/a/b/livez", "app-health/c/livez",
        "/health/c/livez", "/app-health/c/livez/",
    ])
    func invalidPaths(path: String) {
        #expect(!AppProbe.isValidPath(path))
        #expect(proberError(#"{"\#(path)":{"tcpSocket":{"port":80}}}"#)?.contains("invalid path") == true)
    }

    @Test("each invalid probe is an error naming the path and the problem", arguments: [
        (#"{"/app-health/c/livez":{}}"#, "has no httpGet, tcpSocket or grpc"),
        (#"{"/app-health/c/livez":{"httpGet":{"port":80},"tcpSocket":{"port":80}}}"#,
         "has httpGet and tcpSocket: want exactly one of httpGet, tcpSocket, grpc"),
        (#"{"/app-health/c/livez":{"httpGet":{"port":"http"}}}"#, "httpGet.port \"http\" must be a port number"),
        (#"{"/app-health/c/livez":{"httpGet":{"path":"/"}}}"#, "httpGet.port is missing"),
        (#"{"/app-health/c/livez":{"tcpSocket":{"port":70000}}}"#, "tcpSocket.port 70000 is out of range 1-65535"),
        (#"{"/app-health/c/livez":{"httpGet":{"port":80,"scheme":"ftp"}}}"#, "httpGet.scheme \"ftp\" is not HTTP or HTTPS"),
        (#"{"/app-health/c/livez":{"httpGet":{"port":80,"httpHeaders":[{"value":"x"}]}}}"#, "needs a string name and value"),
        (#"{"/app-health/c/livez":{"grpc":{"port":80,"service":5}}}"#, "grpc.service must be a string"),
        (#"{"/app-health/c/livez":{"tcpSocket":{"port":80},"timeoutSeconds":"1"}}"#, "timeoutSeconds \"1\" must be a whole number of seconds"),
        (#"{"/app-health/c/livez":"tcp"}"#, "want an object, got a string"),
        (#"{"/app-health/c/livez":{"httpGet":"x"}}"#, "httpGet must be an object"),
    ])
    func invalidProbe(json: String, problem: String) {
        let message = proberError(json)
        #expect(message?.hasPrefix("ISTIO_KUBE_APP_PROBERS: probe \"/app-health/c/livez\": ") == true, "\(message ?? "no error")")
        #expect(message?.contains(problem) == true, "\(message ?? "no error")")
    }

    @Test("malformed JSON")
    func malformed() {
        #expect(proberError("{").map { $0.hasPrefix("ISTIO_KUBE_APP_PROBERS: not valid JSON") } == true)
        #expect(proberError("[]") == "ISTIO_KUBE_APP_PROBERS: want an object of probe path to probe, got a list")
    }
}

@Suite("Prometheus annotations")
struct PrometheusTests {
    func scrape(_ json: String?, _ arguments: [String] = ["proxy"], files: [String: String] = [:]) throws(AgentConfigError) -> PrometheusScrapeConfig? {
        var environment = podEnvironment
        environment["ISTIO_PROMETHEUS_ANNOTATIONS"] = json
        return try resolve(arguments, environment: environment, files: files).prometheusScrape
    }

    func scrapeError(_ json: String) -> String? {
        var environment = podEnvironment
        environment["ISTIO_PROMETHEUS_ANNOTATIONS"] = json
        return resolutionError(environment: environment)
    }

    @Test("as the injector writes it, and defaults")
    func valid() throws {
        #expect(try scrape(nil) == nil)
        #expect(try scrape(#"{"scrape":"true","path":"/stats","port":"9102"}"#)
            == PrometheusScrapeConfig(scrape: true, targets: [.init(port: 9102, path: "/stats")]))
        #expect(try scrape(#"{"scrape":"true"}"#) == PrometheusScrapeConfig(targets: [.init(port: 80, path: "/metrics")]))
        #expect(try scrape(#"{"scrape":"false","path":"","port":""}"#) == PrometheusScrapeConfig(scrape: false, targets: [.init(port: 80)]))
        #expect(try scrape(#"{"port":8080}"#) == PrometheusScrapeConfig(targets: [.init(port: 8080)]))
    }

    @Test("multiple targets")
    func targets() throws {
        #expect(try scrape(#"{"scrape":"true","targets":[{"port":"9100"},{"port":9200,"path":"/m"}]}"#)
            == PrometheusScrapeConfig(targets: [.init(port: 9100), .init(port: 9200, path: "/m")]))
    }

    @Test("Istio's own ports and the status port are refused", arguments: [15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090])
    func reservedPorts(port: Int) {
        #expect(scrapeError(#"{"port":"\#(port)"}"#)?.hasPrefix("ISTIO_PROMETHEUS_ANNOTATIONS: port \(port) is the agent's or the data plane's own port") == true)
    }

    @Test("the status port, when moved, is refused too")
    func movedStatusPort() {
        var environment = podEnvironment
        environment["ISTIO_PROMETHEUS_ANNOTATIONS"] = #"{"port":"16020"}"#
        #expect(resolutionError(environment: environment, files: ["/etc/istio/pod/annotations": "status.sidecar.istio.io/port=\"16020\""])?
            .contains("port 16020 is the agent's") == true)
        #expect(resolutionError(environment: environment) == nil)
    }

    @Test("bad values", arguments: [
        (#"{"port":"http"}"#, "ISTIO_PROMETHEUS_ANNOTATIONS: port \"http\" is not a number"),
        (#"{"scrape":"maybe"}"#, "ISTIO_PROMETHEUS_ANNOTATIONS: scrape \"maybe\" is not \"true\" or \"false\""),
        (#"{"targets":[{"port":"15090"}]}"#, "ISTIO_PROMETHEUS_ANNOTATIONS: targets[0].port 15090 is the agent's"),
        (#"not json"#, "ISTIO_PROMETHEUS_ANNOTATIONS: not valid JSON"),
    ])
    func bad(json: String, prefix: String) {
        let message = scrapeError(json)
        #expect(message?.hasPrefix(prefix) == true, "\(message ?? "no error")")
    }

    @Test("used by sidecars only")
    func routerIgnores() throws {
        var environment = podEnvironment
        environment["ISTIO_PROMETHEUS_ANNOTATIONS"] = #"{"port":"9102"}"#
        let configuration = try resolve(["proxy", "router"], environment: environment)
        #expect(configuration.prometheusScrape == nil)
        #expect(configuration.warnings.contains { $0.hasPrefix("ISTIO_PROMETHEUS_ANNOTATIONS is used only by sidecars") })
    }
}
