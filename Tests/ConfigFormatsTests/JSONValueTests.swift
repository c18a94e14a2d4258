import Testing
import ConfigFormats

@Suite struct JSONValueTests {
    @Test func literalsKeepWrittenOrderAndRenderPretty() {
        let value: JSONValue = ["b": 1, "a": ["z": true, "y": nil], "list": [1.5, "x"], "empty": [:], "none": []]
        #expect(value.renderedJSON() == """
        {
          "b": 1,
          "a": {
            "z": true,
            "y": null
          },
          "list": [
            1.5,
            "x"
          ],
          "empty": {},
          "none": []
        }

        """)
        #expect(value.renderedJSON(pretty: false) == #"{"b":1,"a":{"z":true,"y":null},"list":[1.5,"x"],"empty":{},"none":[]}"#)
    }

    @Test func roundTripsThroughTheParser() throws {
        let text = #"{"s":"q\"uote\\ \n\t\u00e9 \ud83d\ude00 \u0001","n":-12,"d":2.5e3,"t":[true,false,null],"o":{}}"#
        let value = try JSONValue.parse(json: text)
        #expect(value["s"]?.stringValue == "q\"uote\\ \n\t\u{e9} \u{1F600} \u{1}")
        #expect(value["n"]?.intValue == -12)
        #expect(value["d"]?.doubleValue == 2500)
        #expect(value["d"]?.intValue == 2500)
        #expect(try JSONValue.parse(json: value.renderedJSON()) == value)
        #expect(try JSONValue.parse(json: value.renderedJSON(pretty: false)) == value)
    }

    @Test(arguments: [
        ("{\"a\":1,}", "line 1, column 8"),
        ("{\"a\":1 \"b\":2}", "expected ',' or '}'"),
        ("[1,2", "end of input"),
        ("{\"a\":1,\"a\":2}", "duplicate key \"a\""),
        ("01", "leading zeros"),
        ("\"\\x\"", "invalid escape"),
        ("\"\\ud800\"", "unpaired surrogate"),
        ("{}\n x", "line 2, column 2: unexpected text after"),
        ("// c\n{}", "unexpected character '/'"),
        ("1e999", "out of range"),
        ("", "expected a value"),
    ])
    func rejectsInvalidJSONWithPosition(text: String, expected: String) {
        #expect {
            try JSONValue.parse(json: text)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: FormatError.self) { try JSONValue.parse(json: deep) }
    }

    @Test func objectSetKeepsPositionAndRemoves() {
        var object: JSONObject = ["a": 1, "b": 2, "c": 3]
        object["a"] = 10
        object["b"] = nil
        object["d"] = 4
        #expect(object.keys == ["a", "c", "d"])
        #expect(object.replacingFields(with: ["c": [1], "e": "x"]).keys == ["a", "c", "d", "e"])
        #expect(JSONValue.object(["a": 1, "b": 2]) != JSONValue.object(["b": 2, "a": 1]))
    }

    @Test func yamlReadsTypedScalarsInOrder() throws {
        let value = try JSONValue.parse(yamlOrJSON: """
        drainDuration: 45s
        concurrency: 2
        ratio: 0.5
        enabled: true
        quoted: "15020"
        nothing: null
        proxyMetadata:
          ISTIO_META_DNS_CAPTURE: "true"
        list: [a, 2]
        base: &anchor {x: 1}
        copy: *anchor
        """)
        #expect(value.objectValue?.keys == ["drainDuration", "concurrency", "ratio", "enabled", "quoted", "nothing", "proxyMetadata", "list", "base", "copy"])
        #expect(value["drainDuration"] == "45s")
        #expect(value["concurrency"] == 2)
        #expect(value["ratio"] == 0.5)
        #expect(value["enabled"] == true)
        #expect(value["quoted"] == "15020")
        #expect(value["nothing"] == .null)
        #expect(value["proxyMetadata"]?["ISTIO_META_DNS_CAPTURE"] == "true")
        #expect(value["list"] == ["a", 2])
        #expect(value["copy"] == ["x": 1])
    }

    @Test func yamlAcceptsJSONAndNamesErrors() throws {
        #expect(try JSONValue.parse(yamlOrJSON: #"{"a": [1, {"b": "c"}]}"#) == ["a": [1, ["b": "c"]]])
        #expect(try JSONValue.parse(yamlOrJSON: "") == .null)
        #expect(throws: FormatError.self) { try JSONValue.parse(yamlOrJSON: "a: [1, 2") }
        #expect(throws: FormatError.self) { try JSONValue.parse(yamlOrJSON: "? [a]\n: 1") }
    }
}
