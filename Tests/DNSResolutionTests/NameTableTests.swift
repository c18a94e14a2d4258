import ConfigFormats
import DNSResolution
import Testing

@Suite struct NameTableTests {
    /// Shaped like istiod's NameTable for a sidecar in `default`: a ClusterIP service, a headless
    /// service (endpoint IPs), a ServiceEntry with an auto-allocated dual-stack VIP, a wildcard
    /// ServiceEntry, and a field this parser does not know (a newer istiod).
    static let realisticTable = """
    {
      "table": {
        "reviews.default.svc.cluster.local": {
          "ips": ["10.96.12.7"],
          "registry": "Kubernetes",
          "shortname": "reviews",
          "namespace": "default"
        },
        "mysql.db.svc.cluster.local": {
          "ips": ["10.244.1.5", "10.244.2.9", "10.244.3.2"],
          "registry": "Kubernetes",
          "shortname": "mysql",
          "namespace": "db",
          "altHosts": ["mysql-primary.db"]
        },
        "api.partner.example": {
          "ips": ["240.240.0.3", "2001:2::3"],
          "registry": "External"
        },
        "*.wikipedia.org": {
          "ips": ["240.240.0.9"],
          "registry": "External",
          "alt_hosts": [],
          "resolution": "DNS"
        }
      },
      "nameInfo": null
    }
    """

    @Test func realisticTableParses() throws {
        let table = try NameTable.parse(json: Self.realisticTable)
        #expect(table == NameTable(table: [
            "reviews.default.svc.cluster.local": .init(
                ips: ["10.96.12.7"], registry: "Kubernetes", shortname: "reviews", namespace: "default"),
            "mysql.db.svc.cluster.local": .init(
                ips: ["10.244.1.5", "10.244.2.9", "10.244.3.2"], registry: "Kubernetes", shortname: "mysql",
                namespace: "db", altHosts: ["mysql-primary.db"]),
            "api.partner.example": .init(ips: ["240.240.0.3", "2001:2::3"], registry: "External"),
            "*.wikipedia.org": .init(ips: ["240.240.0.9"], registry: "External"),
        ]))
    }

    @Test func jsonFormReadsBackAsTheSameTable() throws {
        let table = try NameTable.parse(json: Self.realisticTable)
        let rendered = table.jsonValue.renderedJSON()
        #expect(try NameTable.parse(json: rendered) == table)
        // Sorted hosts, empty fields left out: what /debug/ndsz shows.
        #expect(rendered.contains(#""altHosts""#))
        #expect(!rendered.contains(#""shortname": """#))
        let hosts = rendered.split(separator: "\n").filter { $0.hasSuffix(": {") && !$0.contains("\"table\"") }
            .map { $0.split(separator: "\"")[1] }
        #expect(hosts == ["*.wikipedia.org", "api.partner.example", "mysql.db.svc.cluster.local", "reviews.default.svc.cluster.local"])
    }

    @Test func protoFieldNameForAltHosts() throws {
        let table = try NameTable.parse(json: #"{"table": {"a.b.svc.cluster.local": {"ips": ["10.0.0.1"], "alt_hosts": ["x.y", "z"]}}}"#)
        #expect(table.table["a.b.svc.cluster.local"]?.altHosts == ["x.y", "z"])
    }

    @Test(arguments: ["{}", #"{"table": null}"#, #"{"table": {}}"#, #"  { "other": 1 }  "#])
    func emptyTables(json: String) throws {
        #expect(try NameTable.parse(json: json) == NameTable())
    }

    /// protobuf-JSON: `null` is the field's default value.
    @Test func nullFieldsAreDefaults() throws {
        let json = #"{"table": {"h": {"ips": null, "registry": null, "shortname": null, "namespace": null, "altHosts": null, "alt_hosts": ["a"]}}}"#
        #expect(try NameTable.parse(json: json).table["h"] == .init(ips: [], altHosts: ["a"]))
    }

    @Test(arguments: [
        ("[]", #"name table: expected a JSON object ({"table": {…}}), found a list"#),
        (#""table""#, #"name table: expected a JSON object ({"table": {…}}), found a string"#),
        (#"{"table": []}"#, "table: expected an object of hostname -> name info, found a list"),
        (#"{"table": "x"}"#, "table: expected an object of hostname -> name info, found a string"),
        (#"{"table": {"a.example": "10.0.0.1"}}"#, #"table["a.example"]: expected an object, found a string"#),
        (#"{"table": {"a.example": null}}"#, #"table["a.example"]: expected an object, found null"#),
        (#"{"table": {"reviews.default.svc.cluster.local": {"ips": ["10.0.0.1", 10]}}}"#,
         #"table["reviews.default.svc.cluster.local"].ips[1]: expected a string, found a number"#),
        (#"{"table": {"a": {"ips": "10.0.0.1"}}}"#, #"table["a"].ips: expected a list of strings, found a string"#),
        (#"{"table": {"a": {"ips": [], "registry": 1}}}"#, #"table["a"].registry: expected a string, found a number"#),
        (#"{"table": {"a": {"shortname": true}}}"#, #"table["a"].shortname: expected a string, found a boolean"#),
        (#"{"table": {"a": {"namespace": {}}}}"#, #"table["a"].namespace: expected a string, found an object"#),
        (#"{"table": {"a": {"altHosts": [null]}}}"#, #"table["a"].altHosts[0]: expected a string, found null"#),
        (#"{"table": {"a": {"alt_hosts": "b"}}}"#, #"table["a"].alt_hosts: expected a list of strings, found a string"#),
        (#"{"table": {"a": {"altHosts": [], "alt_hosts": []}}}"#,
         #"table["a"]: both altHosts and alt_hosts are given; keep one of them"#),
        (#"{"table": {"a\"b\\c": 1}}"#, #"table["a\"b\\c"]: expected an object, found a number"#),
    ])
    func refusals(json: String, message: String) {
        #expect(throws: NameTableError(message)) { try NameTable.parse(json: json) }
    }

    @Test(arguments: [#"{"table": "#, "{,}", #"{"table": {}, "table": {}}"#, ""])
    func syntaxErrorsNameThePosition(json: String) {
        do {
            _ = try NameTable.parse(json: json)
            Issue.record("parsed \(json)")
        } catch {
            #expect(error.description.hasPrefix("name table: JSON line 1, column "), "\(error)")
        }
    }
}
