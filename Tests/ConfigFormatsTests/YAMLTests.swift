import Foundation
import Testing
import ConfigFormats

@Suite struct YAMLTests {
    private func yaml(_ text: String) throws -> JSONValue {
        try JSONValue.parse(yamlOrJSON: text)
    }

    // MARK: What Istio users write

    @Test func readsAProxyConfigAnnotation() throws {
        let value = try yaml("""
        # proxy.istio.io/config on a pod
        concurrency: 2
        holdApplicationUntilProxyStarts: true
        terminationDrainDuration: 30s
        proxyStatsMatcher:
          inclusionPrefixes:
          - cluster.outbound
          - listener   # trailing comment
          inclusionRegexps: [".*circuit_breakers.*", '.*upstream_rq_retry.*']
        tracing:
          sampling: 10.5
          zipkin:
            address: zipkin.istio-system:9411

        proxyMetadata:
          ISTIO_META_DNS_CAPTURE: "true"
          ISTIO_META_DNS_AUTO_ALLOCATE: 'true'
          BOOTSTRAP_XDS_AGENT: ""
        """)
        let expected: JSONValue = [
            "concurrency": 2,
            "holdApplicationUntilProxyStarts": true,
            "terminationDrainDuration": "30s",
            "proxyStatsMatcher": [
                "inclusionPrefixes": ["cluster.outbound", "listener"],
                "inclusionRegexps": [".*circuit_breakers.*", ".*upstream_rq_retry.*"],
            ],
            "tracing": ["sampling": 10.5, "zipkin": ["address": "zipkin.istio-system:9411"]],
            "proxyMetadata": [
                "ISTIO_META_DNS_CAPTURE": "true",
                "ISTIO_META_DNS_AUTO_ALLOCATE": "true",
                "BOOTSTRAP_XDS_AGENT": "",
            ],
        ]
        #expect(value == expected)
    }

    @Test func readsMeshConfigWithDefaultConfig() throws {
        let value = try yaml("""
        ---
        accessLogFile: /dev/stdout
        enableTracing: false
        defaultConfig:
          discoveryAddress: istiod.istio-system.svc:15012
          proxyMetadata:
            ISTIO_META_DNS_CAPTURE: "true"
            PROXY_XDS_VIA_AGENT: true
            EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"
          tracing:
            zipkin:
              address: zipkin.istio-system:9411
          holdApplicationUntilProxyStarts: true
        extensionProviders:
        - name: otel
          opentelemetry:
            port: 4317
            service: opentelemetry-collector.observability.svc.cluster.local
        - name: envoy-json
          envoyFileAccessLog:
            path: /dev/stdout
        rootNamespace: istio-system
        ...
        ignored: after the end marker
        """)
        #expect(value.objectValue?.keys == ["accessLogFile", "enableTracing", "defaultConfig", "extensionProviders", "rootNamespace"])
        let defaultConfig = try #require(value["defaultConfig"])
        #expect(defaultConfig["discoveryAddress"] == "istiod.istio-system.svc:15012")
        #expect(defaultConfig["proxyMetadata"] == [
            "ISTIO_META_DNS_CAPTURE": "true", "PROXY_XDS_VIA_AGENT": true, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true",
        ])
        #expect(defaultConfig["tracing"]?["zipkin"]?["address"] == "zipkin.istio-system:9411")
        #expect(defaultConfig["holdApplicationUntilProxyStarts"] == true)
        #expect(value["extensionProviders"] == [
            ["name": "otel", "opentelemetry": ["port": 4317, "service": "opentelemetry-collector.observability.svc.cluster.local"]],
            ["name": "envoy-json", "envoyFileAccessLog": ["path": "/dev/stdout"]],
        ])
        #expect(value["rootNamespace"] == "istio-system")
    }

    @Test func readsABootstrapOverrideWithListsOfMaps() throws {
        let value = try yaml("""
        static_resources:
          clusters:
            - name: ext_authz
              type: STRICT_DNS
              connect_timeout: 0.25s
              typed_extension_protocol_options:
                envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                  "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                  explicit_http_config: {http2_protocol_options: {}}
              load_assignment:
                cluster_name: ext_authz
                endpoints:
                  - lb_endpoints:
                      - endpoint:
                          address:
                            socket_address: {address: authz.local, port_value: 9191}
          listeners: []
        layered_runtime:
          layers:
          - name: static
            static_layer:
              overload.global_downstream_max_connections: 50000
              re2.max_program_size.error_level: 0x100
        """)
        let cluster = try #require(value["static_resources"]?["clusters"]?.arrayValue?.first)
        #expect(cluster["name"] == "ext_authz")
        #expect(cluster["connect_timeout"] == "0.25s")
        #expect(cluster["typed_extension_protocol_options"]?["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] == [
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": ["http2_protocol_options": [:]],
        ])
        #expect(cluster["load_assignment"]?["endpoints"] == [
            ["lb_endpoints": [["endpoint": ["address": ["socket_address": ["address": "authz.local", "port_value": 9191]]]]]],
        ])
        #expect(value["static_resources"]?["listeners"] == [])
        #expect(value["layered_runtime"]?["layers"] == [
            ["name": "static", "static_layer": [
                "overload.global_downstream_max_connections": 50000, "re2.max_program_size.error_level": 256,
            ]],
        ])
    }

    // MARK: Scalars

    @Test(arguments: [
        ("null", JSONValue.null), ("Null", .null), ("NULL", .null), ("~", .null), ("", .null),
        ("true", .bool(true)), ("True", .bool(true)), ("TRUE", .bool(true)),
        ("false", .bool(false)), ("False", .bool(false)), ("FALSE", .bool(false)),
        ("0", .integer(0)), ("-12", .integer(-12)), ("+3", .integer(3)), ("0x1F", .integer(31)), ("0o17", .integer(15)),
        ("9223372036854775807", .integer(Int64.max)), ("-9223372036854775808", .integer(Int64.min)),
        ("1.5", .double(1.5)), ("-2e3", .double(-2000)), (".5", .double(0.5)), ("1.", .double(1)), ("+1.5E-1", .double(0.15)),
        ("45s", .string("45s")), ("1.31.0", .string("1.31.0")), ("08", .string("08")), ("yes", .string("yes")),
        ("0x", .string("0x")), ("0o8", .string("0o8")), ("1e", .string("1e")), ("nulls", .string("nulls")),
        ("a b  c", .string("a b  c")), ("http://host:80/path#frag", .string("http://host:80/path#frag")),
        ("a#b", .string("a#b")), ("value # comment", .string("value")), ("-1x", .string("-1x")),
    ])
    func resolvesPlainScalarsByTheCoreSchema(text: String, expected: JSONValue) throws {
        #expect(try yaml("key: \(text)") == ["key": expected])
        if !text.contains("#") { #expect(try yaml("[\(text)]") == (text.isEmpty ? [] : [expected])) }
    }

    @Test func quotedScalarsAreAlwaysStrings() throws {
        let value = try yaml(#"""
        single: 'it''s 15020'
        double: "tab\there \"quoted\" back\\slash \u00e9 \U0001F600 \x41 \/ \ud83d\ude00"
        number: "12"
        boolean: 'true'
        nothing: ""
        empty: ''
        "quoted key": 1
        'single key': 2
        "": empty key
        folded: "first
          second

          third"
        escaped break: "one\
            two"
        single folded: 'a
          b'
        """#)
        #expect(value["single"] == "it's 15020")
        #expect(value["double"] == "tab\there \"quoted\" back\\slash \u{e9} \u{1F600} A / \u{1F600}")
        #expect(value["number"] == "12")
        #expect(value["boolean"] == "true")
        #expect(value["nothing"] == "")
        #expect(value["empty"] == "")
        #expect(value["quoted key"] == 1)
        #expect(value["single key"] == 2)
        #expect(value[""] == "empty key")
        #expect(value["folded"] == "first second\nthird")
        #expect(value["escaped break"] == "onetwo")
        #expect(value["single folded"] == "a b")
    }

    @Test func multiLinePlainScalarsFold() throws {
        #expect(try yaml("key: one\n  two\n\n  three\nnext: 1") == ["key": "one two\nthree", "next": 1])
        #expect(try yaml("- a\n  b\n- c") == ["a b", "c"])
    }

    @Test func acceptsTheCoreTags() throws {
        let value = try yaml("""
        a: !!str 15020
        b: !!int "12"
        c: !!bool "true"
        d: !!float 2
        e: !!null ""
        f: !!str
        g: [!!str true, !!float .5]
        """)
        #expect(value == ["a": "15020", "b": 12, "c": true, "d": 2.0, "e": nil, "f": "", "g": ["true", 0.5]])
        #expect(value["d"] == .double(2))
    }

    // MARK: Block scalars

    @Test func readsBlockScalarsWithChomping() throws {
        let value = try yaml("""
        literal: |
          line one
            indented
          line three

        strip: |-
          no trailing newline

        keep: |+
          kept

        folded: >
          folded
          into one

          paragraph
            more indented
          back
        foldedStrip: >-
          a
          b
        explicit: |2
            two extra spaces
        lua: |
          function envoy_on_request(handle)
            handle:headers():add("x-sluice", "1") # not a comment
          end
        after: done
        """)
        #expect(value["literal"] == "line one\n  indented\nline three\n")
        #expect(value["strip"] == "no trailing newline")
        #expect(value["keep"] == "kept\n\n")
        #expect(value["folded"] == "folded into one\nparagraph\n  more indented\nback\n")
        #expect(value["foldedStrip"] == "a b")
        #expect(value["explicit"] == "  two extra spaces\n")
        #expect(value["lua"] == "function envoy_on_request(handle)\n  handle:headers():add(\"x-sluice\", \"1\") # not a comment\nend\n")
        #expect(value["after"] == "done")
        #expect(try yaml("- |\n  x\n- y") == ["x\n", "y"])
        #expect(try yaml("a: |\nb: 1") == ["a": "", "b": 1])
    }

    // MARK: Flow collections and JSON

    @Test func readsFlowCollectionsOverSeveralLines() throws {
        let value = try yaml("""
        a: {x: 1, y: [p, "q", 'r'], z: {}}
        b: [1, 2,
            3, # comment inside
          {k: v},
        ]
        c: [a: 1, "b": 2, {c}]
        d: {url: http://x:80, empty: , bare}
        e: [[], [[1]]]
        """)
        #expect(value == [
            "a": ["x": 1, "y": ["p", "q", "r"], "z": [:]],
            "b": [1, 2, 3, ["k": "v"]],
            "c": [["a": 1], ["b": 2], ["c": nil]],
            "d": ["url": "http://x:80", "empty": nil, "bare": nil],
            "e": [[], [[1]]],
        ])
    }

    @Test func jsonDocumentsReadAsTheJSONParserReadsThem() throws {
        let documents = [
            #"{"a": [1, {"b": "c"}], "n": -0.5e-3, "i": -7, "t": true, "f": false, "z": null, "s": "x\ny\u0041\/"}"#,
            "[]",
            "{}",
            "\"just a string\"",
            "42",
            "{\n  \"pretty\": {\n    \"nested\": [\n      1.0,\n      2\n    ]\n  }\n}\n",
            #"{"k":"v","l":[1,2,3],"o":{"p":{}}}"#,
        ]
        for document in documents {
            #expect(try yaml(document) == JSONValue.parse(json: document), "\(document)")
        }
    }

    @Test func bootstrapSnapshotsReadAsJSON() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("BootstrapTests/Snapshots")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.count >= 3)
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            let expected = try JSONValue.parse(json: text)
            #expect(try yaml(text) == expected, "\(name)")
        }
    }

    // MARK: Documents, comments, layout

    @Test func documentsCommentsAndLayout() throws {
        #expect(try yaml("") == .null)
        #expect(try yaml("# only a comment\n\n   \n") == .null)
        #expect(try yaml("---\n") == .null)
        #expect(try yaml("--- # comment\na: 1\n--- \nb: 2") == ["a": 1])
        #expect(try yaml("%YAML 1.2\n---\na: 1") == ["a": 1])
        #expect(try yaml("--- {a: 1}") == ["a": 1])
        #expect(try yaml("--- |\n  text\n") == "text\n")
        #expect(try yaml("\u{FEFF}a: 1\r\nb:\r\n  - x\r\n") == ["a": 1, "b": ["x"]])
        #expect(try yaml("a:\n- 1\n- 2\nb:\n  - 3\nc:") == ["a": [1, 2], "b": [3], "c": nil])
        #expect(try yaml("- - a\n  - b\n- - c") == [["a", "b"], ["c"]])
        #expect(try yaml("- name: a\n  ports:\n  - 80\n  -   port: 81\n      name: http\n-\n  name: b\n-\n- last") == [
            ["name": "a", "ports": [80, ["port": 81, "name": "http"]]], ["name": "b"], nil, "last",
        ])
        #expect(try yaml("  indented: 1\n  top: 2") == ["indented": 1, "top": 2])
        #expect(try yaml("key:\tvalue\nlist:\n-\ttabbed") == ["key": "value", "list": ["tabbed"]])
        #expect(try yaml("a: 1 #c\n#c\n  # indented comment\nb: 2 # c") == ["a": 1, "b": 2])
        #expect(try yaml("plain top-level text") == "plain top-level text")
    }

    @Test func nestingIsBoundedAt512Levels() throws {
        let deepFlow = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(try yaml(deepFlow).arrayValue != nil)
        let deepBlock = String(repeating: "- ", count: 500) + "x"
        #expect(try yaml(deepBlock).arrayValue != nil)
        var mapping = ""
        for level in 0..<400 { mapping += String(repeating: " ", count: level) + "k:\n" }
        #expect(try yaml(mapping)["k"]?["k"] != nil)
        for tooDeep in [String(repeating: "[", count: 100_000), String(repeating: "- ", count: 600) + "x"] {
            #expect {
                try yaml(tooDeep)
            } throws: { error in
                "\(error)".contains("nested more than 512 levels deep")
            }
        }
    }

    // MARK: Anchors and aliases

    @Test func aliasesCopyAnchoredValues() throws {
        let value = try yaml("""
        defaults: &defaults
          drainDuration: 45s
          meta: {a: 1}
        scalar: &port 15020
        list: &ports [80, *port]
        first: *defaults
        second: [*port, *ports]
        empty: &nothing
        again: *nothing
        """)
        #expect(value["first"] == ["drainDuration": "45s", "meta": ["a": 1]])
        #expect(value["second"] == [15020, [80, 15020]])
        #expect(value["again"] == .null)
        #expect(try yaml("a: &x 1\nb: &x 2\nc: *x")["c"] == 2)
    }

    @Test func aliasExpansionHasABudget() {
        var lines = ["a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]"]
        for level in 1..<10 {
            let previous = "*a\(level - 1)"
            lines.append("a\(level): &a\(level) [\(Array(repeating: previous, count: 9).joined(separator: ", "))]")
        }
        #expect {
            try yaml(lines.joined(separator: "\n"))
        } throws: { error in
            "\(error)".hasPrefix("YAML line ") && "\(error)".contains("aliases expand the document beyond")
        }
        // A long string copied many times counts by its length.
        let long = String(repeating: "x", count: 100_000)
        let copies = Array(repeating: "*s", count: 20).joined(separator: ", ")
        #expect(throws: FormatError.self) { try yaml("s: &s \(long)\nc: [\(copies)]") }
        #expect((try? yaml("s: &s \(long)\nc: [*s, *s]"))?["c"]?.arrayValue?.count == 2)
    }

    // MARK: Errors

    @Test(arguments: [
        ("a:\n\tb: 1", "YAML line 2, column 1: tab characters are not allowed in indentation"),
        ("a: 1\nb: 2\na: 3", "YAML line 3, column 1: duplicate key \"a\""),
        ("{a: 1, a: 2}", "YAML line 1, column 8: duplicate key \"a\""),
        ("a: *missing", "YAML line 1, column 4: unknown alias *missing"),
        ("a: 1\n  b: 2", "YAML line 2, column 3: bad indentation"),
        ("a:\n    b: 1\n  c: 2", "YAML line 3, column 3: bad indentation"),
        ("a: \"open", "YAML line 1, column 4: unterminated double-quoted string"),
        ("a: 'open\nb: 1", "YAML line 1, column 4: unterminated single-quoted string"),
        ("a: [1, 2", "YAML line 1, column 4: unterminated flow sequence"),
        ("a: {b: 1,\n  c: 2\n", "YAML line 1, column 4: unterminated flow mapping"),
        ("a: [1\n---\n]", "YAML line 1, column 4: unterminated flow sequence"),
        ("? [a]\n: 1", "YAML line 1, column 1: explicit keys ('? ') are not supported"),
        ("[a]: 1", "YAML line 1, column 1: mapping keys must be scalars"),
        ("{[a]: 1}", "YAML line 1, column 2: mapping keys must be scalars"),
        ("a: 1\n{b: 1}: 2", "YAML line 2, column 1: mapping keys must be scalars"),
        ("a: !!binary abc", "YAML line 1, column 4: unsupported tag !!binary"),
        ("a: !custom x", "YAML line 1, column 4: unsupported tag !custom"),
        ("a: !!int abc", "YAML line 1, column 10: \"abc\" is not a valid !!int"),
        ("a: !!str\n  b: 1", "YAML line 1, column 4: !!str applies only to scalars"),
        ("a: .inf", "YAML line 1, column 4: .inf is not a finite number"),
        ("a: -.Inf", "YAML line 1, column 4: -.Inf is not a finite number"),
        ("a: .nan", "YAML line 1, column 4: .nan is not a finite number"),
        ("a: 1e999", "YAML line 1, column 4: the number 1e999 is out of range"),
        ("a: 9223372036854775808", "YAML line 1, column 4: the integer 9223372036854775808 does not fit in 64 bits"),
        ("a: 0x10000000000000000", "YAML line 1, column 4: the integer 0x10000000000000000 does not fit"),
        ("a: b: c", "YAML line 1, column 4: mapping values are not allowed here"),
        ("a: - b", "YAML line 1, column 4: a list cannot start on the same line as its key"),
        ("a: 1\n- b", "YAML line 2, column 1: expected 'key: value' but found a list item"),
        ("- a\nb: 1", "YAML line 2, column 1: unexpected content after the document's top-level value"),
        ("a: 1\nb", "YAML line 2, column 1: expected 'key: value'"),
        ("a: \"x\" y", "YAML line 1, column 8: unexpected text after the value"),
        ("a: [1 2 3] x", "YAML line 1, column 12: unexpected text after the value"),
        ("a: [1, , 2]", "YAML line 1, column 8: unexpected ','"),
        ("a: {b: 1 c: 2}", "YAML line 1, column 11: expected ',' or '}' in a flow mapping"),
        ("a: [\"x\" \"y\"]", "YAML line 1, column 9: expected ',' or ']' in a flow sequence"),
        ("a: \"\\q\"", "YAML line 1, column 5: invalid escape \\q"),
        ("a: \"\\ud800\"", "YAML line 1, column 5: unpaired surrogate"),
        ("a: @x", "YAML line 1, column 4: a plain value cannot start with '@'"),
        ("a: |x\n  t", "YAML line 1, column 4: invalid block scalar header"),
        ("<<: *base", "YAML line 1, column 1: merge keys ('<<') are not supported"),
        ("a: &x\n  b: 1\n*x: 2", "YAML line 3, column 1: an alias cannot be a mapping key"),
        ("- &a b: 1", "YAML line 1, column 6: an anchor or tag on the same line as a mapping key"),
        ("a: 1\n\"b\nc\": 2", "YAML line 2, column 1: a quoted mapping key must fit on one line"),
        ("a: 1\nkey:value", "YAML line 2, column 1: expected 'key: value'"),
        ("é: [1,\n  ü: x", "YAML line 1, column 4: unterminated flow sequence"),
    ])
    func namesErrorsWithLineAndColumn(text: String, expected: String) {
        #expect {
            try JSONValue.parse(yamlOrJSON: text)
        } throws: { error in
            let message = "\(error)"
            let matches = message.hasPrefix(expected)
            if !matches { Issue.record("got: \(message)") }
            return matches
        }
    }
}
