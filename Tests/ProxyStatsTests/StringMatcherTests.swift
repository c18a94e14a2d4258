import Testing
@testable import ProxyStats

@Suite struct StringMatcherTests {
    @Test func kindsMatchAsEnvoysStringMatcher() throws {
        #expect(try StringMatcher(.exact, "server.state").matches("server.state"))
        #expect(try !StringMatcher(.exact, "server.state").matches("server.state_x"))
        #expect(try StringMatcher(.prefix, "cluster.xds-grpc").matches("cluster.xds-grpc.upstream_cx_total"))
        #expect(try !StringMatcher(.prefix, "cluster.xds-grpc").matches("cluster.xds"))
        #expect(try StringMatcher(.suffix, "rbac.allowed").matches("http.inbound.rbac.allowed"))
        #expect(try !StringMatcher(.suffix, "rbac.allowed").matches("rbac.allowed.x"))
        #expect(try StringMatcher(.contains, "downstream_cx").matches("listener.0.0.0.0_15001.downstream_cx_total"))
        #expect(try !StringMatcher(.contains, "upstream_rq").matches("cluster.a.upstream_cx_total"))
        #expect(try StringMatcher(.contains, "").matches("anything"))
    }

    @Test func ignoreCaseFoldsAsciiForTheLiteralKinds() throws {
        #expect(try StringMatcher(.exact, "Server.State", ignoreCase: true).matches("server.STATE"))
        #expect(try StringMatcher(.prefix, "CLUSTER.", ignoreCase: true).matches("cluster.a"))
        #expect(try StringMatcher(.suffix, "_TOTAL", ignoreCase: true).matches("x_total"))
        #expect(try StringMatcher(.contains, "Cx", ignoreCase: true).matches("downstream_cx_total"))
        #expect(try !StringMatcher(.exact, "Server.State").matches("server.state"))
    }

    @Test func regexMustMatchTheWholeNameAndIgnoresIgnoreCase() throws {
        let matcher = try StringMatcher(.regex, #"vhost\..*\.route\..*"#)
        #expect(matcher.matches("vhost.backend.route.r1.upstream_rq_completed"))
        #expect(!matcher.matches("x.vhost.backend.route.r1"))
        #expect(try !StringMatcher(.regex, "server").matches("server.state"))
        // Envoy: ignore_case "has no effect for safe_regex".
        #expect(try !StringMatcher(.regex, "SERVER.*", ignoreCase: true).matches("server.state"))
        #expect(try StringMatcher(.regex, "(?i)SERVER.*").matches("server.state"))
    }

    @Test func regexThatDoesNotCompileNamesThePatternAndTheReason() {
        #expect {
            _ = try StringMatcher(.regex, "cluster\\.(xds")
        } throws: { error in
            let message = (error as? StatsError)?.message ?? ""
            return message.contains("stats_matcher safe_regex 'cluster\\.(xds'")
                && message.contains("not a valid regular expression: ") && message.contains("expected ')'")
        }
    }

    @Test func inclusionKinds() throws {
        let server = try StringMatcher(.prefix, "server")
        #expect(StatsInclusion.all.includes("x"))
        #expect(!StatsInclusion.none.includes("server.state"))
        #expect(StatsInclusion.only([server]).includes("server.state"))
        #expect(!StatsInclusion.only([server]).includes("cluster.a.x"))
        #expect(!StatsInclusion.only([]).includes("server.state"))
        #expect(!StatsInclusion.allExcept([server]).includes("server.state"))
        #expect(StatsInclusion.allExcept([server]).includes("cluster.a.x"))
    }

    @Test(arguments: [
        "server.state", "server.live", "cluster_manager.active_clusters",
        "listener_manager.total_listeners_active", "cluster.xds-grpc.upstream_cx_total",
        "vhost.backend.route.r1.upstream_rq_completed", "http.inbound_0.0.0.0_8080.rbac.allowed",
        "http.inbound_0.0.0.0_8080.rbac.shadow_denied", "wasm.envoy.wasm.runtime.null.active",
        "component.proxy.x", "istio_requests_total", "reporter=.x",
    ])
    func istioInclusionListKeeps(_ name: String) throws {
        #expect(try IstioBootstrap.inclusion().includes(name))
    }

    @Test(arguments: [
        "listener.0.0.0.0_15001.downstream_cx_total", "cluster.PassthroughCluster;.upstream_cx_total",
        "tcp.PassthroughCluster.downstream_cx_total", "http.agent.downstream_rq_2xx",
        "listener.[__]_15006.downstream_cx_active", "vhost.backend.routes", "xserver.state",
        "cluster.xds.upstream_cx_total",
    ])
    func istioInclusionListDrops(_ name: String) throws {
        #expect(try !IstioBootstrap.inclusion().includes(name))
    }
}
