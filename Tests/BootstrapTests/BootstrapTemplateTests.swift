import Bootstrap
import ConfigFormats
import Testing

@Suite struct BootstrapTemplateTests {
    private let variables: JSONObject = [
        "name": "reviews",
        "port": 15000,
        "ratio": 2.0,
        "half": 0.5,
        "enabled": true,
        "nothing": nil,
        "config": ["ProxyAdminPort": 15000, "ProxyMetadata": ["MODE": "strict"]],
        "list": ["a", "b", "c"],
        "empty": [],
        "map": ["z": 1, "a": 2],
        "meta": ["app": "reviews", "tag": "<v1>"],
    ]

    private func render(_ template: String) throws(BootstrapError) -> String {
        try BootstrapTemplate.render(template: template, variables: variables)
    }

    private func problem(_ template: String) -> BootstrapError? {
        do {
            _ = try render(template)
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Constructs

    @Test func textWithoutActionsIsCopiedVerbatim() throws {
        #expect(try render("{\n  \"a\": \"}\" }\n") == "{\n  \"a\": \"}\" }\n")
        #expect(try render("") == "")
    }

    @Test func keyLookupsPrintLikeGo() throws {
        #expect(try render(#"{"name": "{{ .name }}", "port": {{ .port }}}"#) == #"{"name": "reviews", "port": 15000}"#)
        #expect(try render("{{ .config.ProxyAdminPort }}/{{.config.ProxyMetadata.MODE}}") == "15000/strict")
        #expect(try render("{{ .enabled }} {{ .ratio }} {{ .half }} {{ .nothing }}") == "true 2 0.5 <nil>")
        #expect(try render("{{ .list }} {{ .map }}") == "[a b c] map[a:2 z:1]")
    }

    @Test func toJSONRendersCompactJSON() throws {
        #expect(try render("{{ toJSON .meta }}") == #"{"app":"reviews","tag":"<v1>"}"#)
        #expect(try render("{{ toJson .list }}") == #"["a","b","c"]"#)
        #expect(try render("{{ .name | toJSON }}") == #""reviews""#)
        #expect(try render("{{ toJSON .nothing }}") == "null")
    }

    @Test func trimMarkersRemoveWhitespaceOnTheirSide() throws {
        #expect(try render("a  \n\t {{- .name }}  b") == "areviews  b")
        #expect(try render("a  {{ .name -}} \n\n  b") == "a  reviewsb")
        #expect(try render("[\n  {{- .port -}}\n]") == "[15000]")
        // A '-' without whitespace is part of a number, not a trim marker.
        #expect(try render("x {{-3}} y") == "x -3 y")
    }

    @Test func commentsPrintNothing() throws {
        #expect(try render("a{{/* note */}}b") == "ab")
        #expect(try render("a {{- /* spans\nlines }} */ -}} b") == "ab")
    }

    @Test func conditionalsUseGoTruthiness() throws {
        for falsy in ["nothing", "missing", "empty", "enabledFalse", "zero", "blank", "emptyMap"] {
            let rendered = try BootstrapTemplate.render(
                template: "{{ if .\(falsy) }}yes{{ else }}no{{ end }}",
                variables: ["nothing": nil, "empty": [], "enabledFalse": false, "zero": 0, "blank": "", "emptyMap": [:]])
            #expect(rendered == "no", "\(falsy) should be false")
        }
        for truthy in ["name", "port", "half", "enabled", "list", "map"] {
            #expect(try render("{{ if .\(truthy) }}yes{{ else }}no{{ end }}") == "yes", "\(truthy) should be true")
        }
        #expect(try render("{{ if .missing }}a{{ else if .name }}b{{ else }}c{{ end }}") == "b")
        #expect(try render("{{ if .missing }}a{{ else if .alsoMissing }}b{{ end }}") == "")
        #expect(try render("{{ if .config.Nested.Deeper }}a{{ end }}") == "")
    }

    @Test func rangeIteratesListsInOrderAndObjectsByKey() throws {
        #expect(try render("{{ range .list }}[{{ . }}]{{ end }}") == "[a][b][c]")
        #expect(try render("{{ range .map }}{{ . }},{{ end }}") == "2,1,")
        #expect(try render("{{ range $k, $v := .map }}{{ $k }}={{ $v }};{{ end }}") == "a=2;z=1;")
        #expect(try render("{{ range $i, $s := .list }}{{ $i }}{{ $s }}{{ end }}") == "0a1b2c")
        #expect(try render("{{ range $s := .list }}{{ $s }}{{ end }}") == "abc")
        #expect(try render("{{ range .list }}{{ $.name }}.{{ . }} {{ end }}") == "reviews.a reviews.b reviews.c ")
        #expect(try render("{{ range .empty }}x{{ else }}none{{ end }}") == "none")
        #expect(try render("{{ range .missing }}x{{ end }}") == "")
    }

    @Test func rangeBuildsAJSONListLikeIstiosTemplate() throws {
        let template = """
            [
              {{- range $i, $s := .list }}
              {"prefix": "{{ $s }}"},
              {{- end }}
              {"prefix": "last"}
            ]
            """
        let rendered = try render(template)
        #expect(try JSONValue.parse(json: rendered) == [["prefix": "a"], ["prefix": "b"], ["prefix": "c"], ["prefix": "last"]])
    }

    @Test func variablesLastUntilTheEndOfTheirBlock() throws {
        #expect(try render("{{ $p := .port }}{{ $p }}") == "15000")
        #expect(try render("{{ if .name }}{{ $x := 1 }}{{ $x }}{{ end }}") == "1")
        #expect(problem("{{ if .name }}{{ $x := 1 }}{{ end }}{{ $x }}") == .template(line: 1, problem: "undefined variable $x"))
    }

    @Test func functionsBehaveLikeGos() throws {
        #expect(try render(#"{{ if eq .name "reviews" }}y{{ end }}"#) == "y")
        #expect(try render(#"{{ if eq .port 15000.0 }}y{{ end }}"#) == "y")
        #expect(try render(#"{{ if eq .name "a" "b" "reviews" }}y{{ end }}"#) == "y")
        #expect(try render(#"{{ if ne .name "reviews" }}y{{ else }}n{{ end }}"#) == "n")
        #expect(try render(#"{{ if eq (or .missing "") "" }}empty{{ end }}"#) == "empty")
        #expect(try render("{{ or .missing .name }} {{ and .name .port }} {{ and .empty .name }}") == "reviews 15000 []")
        #expect(try render("{{ not .enabled }} {{ not .missing }}") == "false true")
        #expect(try render("{{- if or .missing .name }}y{{- end}}|{{ if and .name .missing }}n{{ end }}") == "y|")
        #expect(try render("{{ range $a, $s := .list }}{{$s}}{{end}}") == "abc")
        #expect(try render(#""port": {{- .port }}"#) == #""port":15000"#)
        #expect(try render("{{ len .list }} {{ len .name }} {{ len .map }}") == "3 7 2")
        #expect(try render(#"{{ index .list 1 }} {{ index .meta "app" }} {{ (index .config "ProxyMetadata").MODE }}"#)
            == "b reviews strict")
        #expect(try render(#"{{ js .meta.tag }} {{ js "a\"b'c\\d=&\n" }}"#) == #"\u003Cv1\u003E a\"b\'c\\d\u003D\u0026\u000A"#)
    }

    // MARK: - Errors

    @Test func unknownFunctionIsNamedWithItsLine() {
        let error = problem("{\n\n  \"a\": {{ printf \"%d\" .port }}\n}")
        #expect(error?.description.hasPrefix(#"bootstrap template line 3: unknown function "printf""#) == true)
    }

    @Test func unterminatedActionNamesItsLine() {
        #expect(problem("{\n  {{ .name \n}") == .template(line: 2, problem: "unterminated action: {{ without a closing }}"))
        #expect(problem("{{ \"abc }}") == .template(line: 1, problem: "unterminated quoted string in action"))
    }

    @Test func missingEndNamesTheOpeningLine() {
        #expect(problem("a\n{{ if .name }}\nb") == .template(line: 2, problem: "{{ if }} has no matching {{ end }}"))
        #expect(problem("{{ range .list }}{{ if . }}x{{ end }}")
            == .template(line: 1, problem: "{{ range }} has no matching {{ end }}"))
        #expect(problem("{{ if .name }}a{{ else }}b") == .template(line: 1, problem: "{{ if }} has no matching {{ end }}"))
    }

    @Test func strayElseAndEndAreErrors() {
        #expect(problem("a\n{{ end }}") == .template(line: 2, problem: "{{ end }} without a matching {{ if }} or {{ range }}"))
        #expect(problem("{{ else }}") == .template(line: 1, problem: "{{ else }} outside {{ if }} or {{ range }}"))
        #expect(problem("{{ if .a }}{{ else }}{{ else }}{{ end }}") != nil)
    }

    @Test func printingAMissingKeyNamesTheKey() {
        #expect(problem("x\n\"{{ .config.ProxyAdminPort }}\" {{ .config.NoSuchField }}") == .template(
            line: 2, problem: "no value for .config.NoSuchField: the bootstrap template variables have no such key"))
        #expect(problem("{{ range $s := .list }}{{ $s.x }}{{ end }}") != nil)
        #expect(problem("{{ toJSON .absent }}")?.description.contains(".absent") == true)
    }

    @Test func unsupportedActionsAreNamed() {
        #expect(problem("{{ with .name }}{{ . }}{{ end }}")?.description.contains("{{ with }} is not supported") == true)
        #expect(problem(#"{{ template "x" }}"#)?.description.contains("{{ template }} is not supported") == true)
        #expect(problem("{{ }}") == .template(line: 1, problem: "empty action {{ }}"))
        #expect(problem("{{ .name .port }}") != nil)
        #expect(problem("{{ .name | .port }}") != nil)
        #expect(problem("{{ /* c */ .name }}") != nil)
    }

    @Test func rangeOverAScalarIsAnError() {
        #expect(problem("{{ range .name }}x{{ end }}") == .template(line: 1, problem: "range can't iterate over a string"))
    }

    @Test func lookingUpAKeyInAScalarIsAnError() {
        #expect(problem("{{ .name.first }}")?.description.contains("can't look up key first in .name") == true)
    }

    @Test func errorMessagesAreOneLine() {
        for template in ["{{ if .a }}", "{{ nope }}", "{{ .x }}", "{{", "{{ end }}", "{{ .a = 1 }}"] {
            let message = problem(template)?.description ?? ""
            #expect(!message.isEmpty && !message.contains("\n"), "\(template): \(message)")
        }
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        let deep = String(repeating: "{{ if .name }}", count: 150) + String(repeating: "{{ end }}", count: 150)
        #expect(problem(deep)?.description.contains("nested more than") == true)
        let parentheses = "{{ " + String(repeating: "(", count: 150) + ".name" + String(repeating: ")", count: 150) + " }}"
        #expect(problem(parentheses)?.description.contains("nested more than") == true)
    }
}

@Suite struct TemplateVariablesTests {
    @Test func variablesUseIstiosNames() throws {
        var input = BootstrapFixtures.sidecarIPv4
        input.adminPort = 15100
        let variables = input.templateVariables(proxyConfig: [
            "discoveryAddress": "istiod.istio-system.svc:15012",
            "proxyAdminPort": 15000,
            "proxyMetadata": ["ISTIO_META_DNS_CAPTURE": "true"],
            "drainDuration": "45s",
        ])
        #expect(variables["nodeID"]?.stringValue == input.nodeID)
        #expect(variables["nodeType"] == "sidecar")
        #expect(variables["cluster"] == "reviews.default")
        #expect(variables["region"] == "eu-west-1")
        #expect(variables["sub_zone"] == nil)
        #expect(variables["localhost"] == "127.0.0.1")
        #expect(variables["wildcard"] == "0.0.0.0")
        #expect(variables["dns_lookup_family"] == "V4_ONLY")
        #expect(variables["envoy_status_port"] == 15021)
        #expect(variables["ENVOY_PROMETHEUS_PORT"] == 15090)
        #expect(variables["discovery_host"] == "istiod.istio-system.svc")
        #expect(variables["workload_identity_socket_file"] == "socket")
        let meta = try JSONValue.parse(json: try #require(variables["meta_json_str"]?.stringValue))
        #expect(meta == .object(input.metadata))
        let config = try #require(variables["config"]?.objectValue)
        #expect(config["ProxyAdminPort"] == 15100)
        #expect(config["StatusPort"] == 15020)
        #expect(config["DiscoveryAddress"] == "istiod.istio-system.svc:15012")
        #expect(config["DrainDuration"] == "45s")
        #expect(config["ConfigPath"] == "./etc/istio/proxy")
        #expect(config["ProxyMetadata"] == ["ISTIO_META_DNS_CAPTURE": "true"])
    }

    @Test func dualStackVariablesAddTheOtherFamily() {
        let variables = BootstrapFixtures.sidecarDualStack.templateVariables(proxyConfig: [:])
        #expect(variables["dual_stack"] == true)
        #expect(variables["additional_wildcard"] == "::")
        #expect(variables["dns_lookup_family"] == "ALL")
        #expect(BootstrapFixtures.sidecarIPv6.templateVariables(proxyConfig: [:])["localhost"] == "::1")
    }

    @Test func nestedProxyConfigMessagesGetGoNamesButMapsKeepTheirKeys() {
        let config = BootstrapFixtures.sidecarIPv4.templateVariables(proxyConfig: [
            "tracing": ["zipkin": ["address": "zipkin:9411"], "customTags": ["my_tag": ["literal": ["value": "x"]]]],
            "runtime_values": ["some.flag": "true"],
        ])["config"]
        #expect(JSONValue.path(config, "Tracing", "Zipkin", "Address") == "zipkin:9411")
        #expect(JSONValue.path(config, "Tracing", "CustomTags", "my_tag") == ["literal": ["value": "x"]])
        #expect(JSONValue.path(config, "RuntimeValues", "some.flag") == "true")
    }

    /// A custom template in the style of Istio's (written for this test): every construct a real one
    /// uses, rendered with the agent's variables, must read back as JSON.
    @Test func istioStyleTemplateRendersToValidJSON() throws {
        let template = """
            {
              "node": {
                "id": "{{ .nodeID }}",
                "cluster": "{{ .cluster }}",
                "locality": {
                  {{- if .region }}
                  "region": "{{ .region }}"
                  {{- end }}
                  {{- if .zone }}{{ if .region }},{{ end }}
                  "zone": "{{ .zone }}"
                  {{- end }}
                },
                "metadata": {{ .meta_json_str }}
              },
              "layered_runtime": {"layers": [{"name": "global config", "static_layer": {{ .runtime_flags }}}]},
              {{- /* tracing is optional */}}
              {{- if .zipkin }}
              "tracing": {{ toJson .zipkin }},
              {{- end }}
              "stats_config": {"stats_matcher": {"inclusion_list": {"patterns": [
                {{- range $a, $s := .inclusionPrefix }}
                {"prefix": "{{ $s }}"},
                {{- end }}
                {{- range $a, $s := .inclusionRegexps }}
                {"safe_regex": {"regex": "{{ js $s }}"}},
                {{- end }}
                {"prefix": "istio"}
              ]}}},
              "admin": {"address": {"socket_address": {
                "address": "{{ .localhost }}", "port_value": {{ .config.ProxyAdminPort }}}}},
              {{- if eq (or .config.ProxyMetadata.STRIP "") "false" }}
              "strip": false,
              {{- end }}
              "status_port": {{ .envoy_status_port }}
            }
            """
        let input = BootstrapFixtures.sidecarIPv4
        let rendered = try BootstrapTemplate.render(
            template: template, variables: input.templateVariables(proxyConfig: ["proxyMetadata": ["STRIP": "false"]]))
        let parsed = try JSONValue.parse(json: rendered)
        #expect(JSONValue.path(parsed, "node", "locality") == ["region": "eu-west-1", "zone": "eu-west-1a"])
        #expect(JSONValue.path(parsed, "node", "metadata") == .object(input.metadata))
        #expect(JSONValue.path(parsed, "admin", "address", "socket_address", "port_value") == 15000)
        #expect(parsed["strip"] == false)
        #expect(parsed["tracing"] == nil)
        let patterns = JSONValue.path(parsed, "stats_config", "stats_matcher", "inclusion_list", "patterns")?.arrayValue ?? []
        #expect(patterns.contains(["safe_regex": ["regex": #"vhost\..*\.route\..*"#]]))
        #expect(patterns.contains(["prefix": "cluster_manager"]))
    }
}
