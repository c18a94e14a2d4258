import Capture
@testable import DataPlane
import DataPlaneConfig
import Testing

@Suite("HTTP route table")
struct HTTPRouteTableTests {
    /// Each virtual host routes `/` to a cluster named after it, so the chosen cluster names the host.
    func table(_ virtualHosts: [(name: String, domains: [String])], routes: String? = nil) throws -> HTTPRouteTable {
        let hosts = virtualHosts.map { host in
            let domains = host.domains.map { "\"\($0)\"" }.joined(separator: ", ")
            let hostRoutes = routes ?? #"[{"match": {"prefix": "/"}, "route": {"cluster": "\#(host.name)"}}]"#
            return #"{"name": "\#(host.name)", "domains": [\#(domains)], "routes": \#(hostRoutes)}"#
        }.joined(separator: ", ")
        let clusterNames = Set(virtualHosts.map(\.name) + ["a", "b", "c"])
        let clusters = clusterNames.sorted().map { name in
            """
            {"name": "\(name)", "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": "\(name)", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
               {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}
            """
        }.joined(separator: ", ")
        let bootstrap = try parseBootstrap("""
        {"node": {"id": "n", "cluster": "c"}, "static_resources": {"clusters": [\(clusters)], "listeners": [
          {"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15021}},
           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
             "stat_prefix": "agent", "route_config": {"virtual_hosts": [\(hosts)]},
             "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
               {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}}
        """)
        return try HTTPRouteTable(listener: bootstrap.listeners[0], bootstrap: bootstrap)
    }

    @Test func virtualHostPrecedenceIsEnvoys() throws {
        let routes = try table([
            ("fallback", ["*"]),
            ("prefixed", ["api.*"]),
            ("shortSuffix", ["*.com"]),
            ("longSuffix", ["*.example.com"]),
            ("exact", ["www.example.com", "Mixed.Example.org"]),
        ])
        #expect(routes.statPrefix == "agent")
        #expect(routes.cluster(host: "www.example.com", target: "/") == "exact")
        #expect(routes.cluster(host: "WWW.Example.COM", target: "/") == "exact")
        #expect(routes.cluster(host: "mixed.example.org", target: "/") == "exact")
        #expect(routes.cluster(host: "shop.example.com", target: "/") == "longSuffix")
        #expect(routes.cluster(host: "shop.other.com", target: "/") == "shortSuffix")
        // A wildcard stands for at least one character.
        #expect(routes.cluster(host: ".com", target: "/") == "fallback")
        #expect(routes.cluster(host: "api.internal", target: "/") == "prefixed")
        // A suffix wildcard wins over a prefix wildcard.
        #expect(routes.cluster(host: "api.example.com", target: "/") == "longSuffix")
        #expect(routes.cluster(host: "elsewhere", target: "/") == "fallback")
        #expect(routes.cluster(host: nil, target: "/") == "fallback")
    }

    @Test func hostPortIsStrippedWhenNothingMatchesWithIt() throws {
        let routes = try table([("withPort", ["svc.local:8080"]), ("plain", ["svc.local"]), ("v6", ["[::1]"])])
        #expect(routes.cluster(host: "svc.local:8080", target: "/") == "withPort")
        #expect(routes.cluster(host: "svc.local:9090", target: "/") == "plain")
        #expect(routes.cluster(host: "[::1]:15021", target: "/") == "v6")
        #expect(routes.cluster(host: "other:80", target: "/") == nil)
        #expect(HTTPRouteTable.strippingPort("::1") == nil)
        #expect(HTTPRouteTable.strippingPort("[::1]:80") == "[::1]")
        #expect(HTTPRouteTable.strippingPort("host:") == nil)
    }

    @Test func routesMatchInOrderByPrefixOrExactPath() throws {
        let routes = try table([("only", ["*"])], routes: """
        [{"match": {"path": "/healthz/ready"}, "route": {"cluster": "a"}},
         {"match": {"prefix": "/healthz"}, "route": {"cluster": "b"}},
         {"match": {"prefix": "/"}, "route": {"cluster": "c"}}]
        """)
        #expect(routes.cluster(host: "x", target: "/healthz/ready") == "a")
        // The exact path ignores the query; a prefix sees the whole target.
        #expect(routes.cluster(host: "x", target: "/healthz/ready?verbose") == "a")
        #expect(routes.cluster(host: "x", target: "/healthz/ready/") == "b")
        #expect(routes.cluster(host: "x", target: "/healthz") == "b")
        #expect(routes.cluster(host: "x", target: "/other") == "c")
        #expect(routes.upstreams["a"]?.endpoint == Endpoint("127.0.0.1:8080"))
    }

    @Test func noMatchingRouteIsNil() throws {
        let routes = try table([("only", ["example.com"])], routes: #"[{"match": {"prefix": "/api"}, "route": {"cluster": "a"}}]"#)
        #expect(routes.cluster(host: "example.com", target: "/web") == nil)
        #expect(routes.cluster(host: "other.com", target: "/api") == nil)
    }
}
