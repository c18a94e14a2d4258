import Capture
import ConfigFormats
import DataPlaneConfig
import Testing

/// `ProxyBootstrap.load`: -c, --config-yaml merged with protobuf rules, YAML, and the command line's identity.
@Suite struct BootstrapLoadingTests {
    struct MissingFile: Error, CustomStringConvertible {
        var description: String { "No such file or directory (errno 2)" }
    }

    private func load(
        _ arguments: [String], files: [String: String]
    ) throws(ConfigError) -> ProxyBootstrap {
        let commandLine = try ProxyCommandLine.parse(arguments)
        return try ProxyBootstrap.load(commandLine: commandLine) { path in
            guard let text = files[path] else { throw MissingFile() }
            return text
        }
    }

    private func agentFiles() throws -> [String: String] {
        ["envoy-rev.json": try AgentSnapshots.text("sidecar-ipv4")]
    }

    @Test func loadsTheAgentsFileAsTheAgentStartsIt() throws {
        let bootstrap = try load(["-c", "envoy-rev.json", "--drain-time-s", "45"], files: agentFiles())
        #expect(bootstrap.listeners.count == 4)
        #expect(bootstrap.source == (try AgentSnapshots.document("sidecar-ipv4")))
    }

    @Test func configYAMLMergesWithProtobufRules() throws {
        let overlay = """
            node: {id: node1, metadata: {LABELS: {team: a}}}
            admin: {address: {socket_address: {port_value: 15999}}}
            stats_config: {stats_matcher: {reject_all: true}, use_all_default_tags: false}
            static_resources:
              listeners:
              - name: extra
                address: {socket_address: {address: 127.0.0.1, port_value: 16000}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: extra
                      cluster: agent
            """
        let bootstrap = try load(["-c", "envoy-rev.json", "--config-yaml", overlay], files: agentFiles())
        // Scalars replace; messages merge (the admin keeps its address and gets the new port).
        #expect(bootstrap.node.id == "node1")
        #expect(bootstrap.node.cluster == "reviews.default")
        #expect(bootstrap.admin?.address == .socket("127.0.0.1:15999"))
        // Lists append.
        #expect(bootstrap.listeners.map(\.name) == ["0.0.0.0_15090", "0.0.0.0_15021", "virtualOutbound", "virtualInbound", "extra"])
        #expect(bootstrap.stats.tags.count == 16)
        // A oneof member replaces its siblings: reject_all drops the inclusion list.
        #expect(bootstrap.stats.matcher == .rejectAll)
        // A Struct merges by key, each entry replaced whole: LABELS loses app and version.
        #expect(bootstrap.node.metadata["LABELS"] == ["team": "a"])
        #expect(bootstrap.node.metadata["NAME"] == "reviews-v1-abc")
        #expect(bootstrap.source["node"]?["id"] == "node1")
    }

    @Test func defaultScalarsDoNotOverrideUnlessTheFieldHasPresence() throws {
        let overlay = #"""
            {"node": {"cluster": ""}, "stats_config": {"use_all_default_tags": true},
             "admin": {"profile_path": ""}, "application_log_config": {"log_format": {"json_format": {"msg": "%j"}}}}
            """#
        let bootstrap = try load(["-c", "envoy-rev.json", "--config-yaml", overlay], files: agentFiles())
        // "" is proto3's default: not set, so the file's value stays.
        #expect(bootstrap.node.cluster == "reviews.default")
        // use_all_default_tags is a BoolValue: set, whatever its value.
        #expect(bootstrap.stats.useAllDefaultTags)
        // json_format and text_format are one oneof.
        #expect(bootstrap.applicationLogFormat == nil)
        #expect(bootstrap.applicationLogJSONFormat == ["msg": "%j"])
        #expect(bootstrap.source["admin"]?["profile_path"] == "/var/lib/istio/data/envoy.prof")
    }

    @Test func mergedResourcesAreCheckedLikeTheFilesOwn() throws {
        let overlay = #"""
            {"overload_manager": {"resource_monitors": []},
             "static_resources": {"clusters": [{"name": "extra", "type": "STATIC", "load_assignment": {"endpoints": []}}]}}
            """#
        let bootstrap = try load(["-c", "envoy-rev.json", "--config-yaml", overlay], files: agentFiles())
        #expect(bootstrap.clusters.last?.name == "extra")
        #expect(bootstrap.maxActiveDownstreamConnections == 2_147_483_647)
        // The STATIC cluster without endpoints is accepted, with a warning that it cannot connect.
        #expect(bootstrap.warnings == ["static_resources.clusters[5]: the STATIC cluster 'extra' has no endpoints; connections to it fail"])
    }

    @Test func aYAMLFileIsReadAsYAML() throws {
        let yaml = """
            node:
              id: yaml-node
            admin:
              address:
                socket_address: {address: 127.0.0.1, port_value: 0}
            static_resources:
              clusters:
              - name: backend
                connect_timeout: 0.5s
                load_assignment:
                  cluster_name: backend
                  endpoints:
                  - lb_endpoints:
                    - endpoint: {address: {socket_address: {address: 198.51.100.7, port_value: 8080}}}
              listeners:
              - name: http
                address: {socket_address: {address: 0.0.0.0, port_value: 0}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: backend
                      cluster: backend
            """
        let bootstrap = try load(["-c", "/etc/proxy.yaml"], files: ["/etc/proxy.yaml": yaml])
        #expect(bootstrap.node.id == "yaml-node")
        #expect(bootstrap.admin?.address == .socket("127.0.0.1:0"))
        #expect(bootstrap.clusters.first?.connectTimeout == .milliseconds(500))
        #expect(bootstrap.clusters.first?.discovery == .staticEndpoints([.socket("198.51.100.7:8080")]))
        #expect(bootstrap.listeners.first?.statName == "0.0.0.0_0")
    }

    @Test func configYAMLAloneIsABootstrap() throws {
        let bootstrap = try load(["--config-yaml", "node: {id: only}"], files: [:])
        #expect(bootstrap.node.id == "only")
    }

    @Test func theCommandLineFillsAnEmptyIdentity() throws {
        let bootstrap = try load(
            ["--config-yaml", "admin: {}", "--service-node", "n1", "--service-cluster", "c1"], files: [:])
        #expect(bootstrap.node.id == "n1")
        #expect(bootstrap.node.cluster == "c1")
        #expect(bootstrap.source["node"]?["id"] == "n1")
        let kept = try load(["-c", "envoy-rev.json", "--service-node", "n1", "--service-cluster", "c1"], files: agentFiles())
        #expect(kept.node.id == "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local")
        #expect(kept.node.cluster == "reviews.default")
    }

    @Test func loadingErrorsNameTheInput() throws {
        var error = configError { () throws(ConfigError) in _ = try load(["-c", "/nope.json"], files: [:]) }
        #expect(error?.message == "-c /nope.json: cannot read the bootstrap: No such file or directory (errno 2)")

        error = configError { () throws(ConfigError) in _ = try load([], files: [:]) }
        #expect(error?.message == "no bootstrap: give -c <bootstrap.json> (or --config-yaml)")

        error = configError { () throws(ConfigError) in _ = try load(["-c", "b.pb"], files: ["b.pb": ""]) }
        #expect(error?.message == "-c b.pb: protobuf bootstraps are not supported by sluice-proxy; give JSON or YAML")

        error = configError { () throws(ConfigError) in _ = try load(["-c", "b.json"], files: ["b.json": "node: {}"]) }
        #expect(error?.message.hasPrefix("-c b.json: not valid JSON: ") == true)

        error = configError { () throws(ConfigError) in _ = try load(["-c", "b.json"], files: ["b.json": "[1]"]) }
        #expect(error?.message == "-c b.json: the bootstrap must be an object, found a list")

        error = configError { () throws(ConfigError) in
            _ = try load(["-c", "envoy-rev.json", "--config-yaml", "- 1"], files: try! agentFiles())
        }
        #expect(error?.message == "--config-yaml: must be an object (a partial bootstrap), found a list")

        error = configError { () throws(ConfigError) in
            _ = try load(["-c", "envoy-rev.json", "--config-yaml", #"{"dynamic_resources": {"ads_config": {}}}"#],
                         files: try! agentFiles())
        }
        #expect(error?.message == "dynamic_resources: sluice-proxy has no xDS client; put listeners and clusters in static_resources")
    }
}
