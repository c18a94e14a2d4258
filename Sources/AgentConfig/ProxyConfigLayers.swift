import Capture
import ConfigFormats

/// One ProxyConfig field Istio defines, with the JSON form protojson accepts for it. Values of known fields
/// are checked and rewritten to protojson's canonical form (a Go duration `1m30s` becomes `"90s"`, an
/// enum number its name, a quoted integer a number), because the merged document goes to istiod, whose
/// protojson reader accepts only that form.
struct ProxyConfigField {
    enum Kind {
        case string
        case nonEmptyString
        /// host:port, Istio's `ValidateProxyAddress`.
        case address
        case integer(ClosedRange<Int64>, want: String)
        /// `google.protobuf.Int32Value`: an integer, nothing else.
        case wrappedInteger(ClosedRange<Int64>, want: String)
        case duration(minimum: Duration)
        case bool
        case enumeration([String: Int64])
        case stringMap
        case stringList
        case statsMatcher
        /// A field Istio defines that the agent does not read: kept as given.
        case opaque
    }

    let name: String
    let protoName: String
    let kind: Kind

    init(_ name: String, _ kind: Kind) {
        self.name = name
        self.kind = kind
        var snake = ""
        for character in name {
            if character.isUppercase { snake += "_" + character.lowercased() } else { snake.append(character) }
        }
        protoName = snake
    }

    static let port: Kind = .integer(1...65535, want: "a port number 1-65535")
    static let int32: Kind = .integer(Int64(Int32.min)...Int64(Int32.max), want: "a 32-bit integer")
    static let uint32: Kind = .integer(0...Int64(UInt32.max), want: "an integer 0-4294967295")

    /// `istio.mesh.v1alpha1.ProxyConfig`, in field-number order.
    static let all: [ProxyConfigField] = [
        ProxyConfigField("configPath", .nonEmptyString),
        ProxyConfigField("binaryPath", .nonEmptyString),
        ProxyConfigField("serviceCluster", .string),
        ProxyConfigField("drainDuration", .duration(minimum: .milliseconds(1))),
        ProxyConfigField("parentShutdownDuration", .duration(minimum: .zero)),
        ProxyConfigField("discoveryAddress", .address),
        ProxyConfigField("discoveryRefreshDelay", .duration(minimum: .zero)),
        ProxyConfigField("zipkinAddress", .string),
        ProxyConfigField("statsdUdpAddress", .string),
        ProxyConfigField("proxyAdminPort", port),
        ProxyConfigField("availabilityZone", .string),
        ProxyConfigField("controlPlaneAuthPolicy", .enumeration(["NONE": 0, "MUTUAL_TLS": 1, "INHERIT": 1000])),
        ProxyConfigField("customConfigFile", .string),
        ProxyConfigField("statNameLength", .integer(0...Int64(Int32.max), want: "a length 0 or more")),
        ProxyConfigField("concurrency", .wrappedInteger(0...Int64(Int32.max), want: "0 or more worker threads (0 = all cores)")),
        ProxyConfigField("proxyBootstrapTemplatePath", .string),
        ProxyConfigField("interceptionMode", .enumeration(["REDIRECT": 0, "TPROXY": 1, "NONE": 2])),
        ProxyConfigField("tracing", .opaque),
        ProxyConfigField("envoyMetricsServiceAddress", .string),
        ProxyConfigField("sds", .opaque),
        ProxyConfigField("envoyAccessLogService", .opaque),
        ProxyConfigField("envoyMetricsService", .opaque),
        ProxyConfigField("proxyMetadata", .stringMap),
        ProxyConfigField("statusPort", port),
        ProxyConfigField("extraStatTags", .stringList),
        ProxyConfigField("gatewayTopology", .opaque),
        ProxyConfigField("terminationDrainDuration", .duration(minimum: .zero)),
        ProxyConfigField("meshId", .string),
        ProxyConfigField("readinessProbe", .opaque),
        ProxyConfigField("proxyStatsMatcher", .statsMatcher),
        ProxyConfigField("holdApplicationUntilProxyStarts", .bool),
        ProxyConfigField("caCertificatesPem", .stringList),
        ProxyConfigField("image", .opaque),
        ProxyConfigField("tracingServiceName", .enumeration(
            ["APP_LABEL_AND_NAMESPACE": 0, "CANONICAL_NAME_ONLY": 1, "CANONICAL_NAME_AND_NAMESPACE": 2])),
        ProxyConfigField("runtimeValues", .stringMap),
        ProxyConfigField("privateKeyProvider", .opaque),
        ProxyConfigField("proxyHeaders", .opaque),
        ProxyConfigField("fileFlushInterval", .duration(minimum: .milliseconds(1))),
        ProxyConfigField("fileFlushMinSizeKb", uint32),
        ProxyConfigField("statsCompression", .opaque),
    ]

    /// protojson accepts both the JSON name and the proto name.
    static let byName: [String: ProxyConfigField] = {
        var table: [String: ProxyConfigField] = [:]
        for field in all {
            table[field.name] = field
            table[field.protoName] = field
        }
        return table
    }()

    /// Members of a protobuf oneof: setting one clears the others.
    static let oneofPartners: [String: [String]] = [
        "serviceCluster": ["tracingServiceName"],
        "tracingServiceName": ["serviceCluster"],
    ]

    /// The value in canonical protojson form, or why it is wrong.
    func canonical(_ value: JSONValue) -> Result<JSONValue, FieldProblem> {
        func wrong(_ want: String) -> Result<JSONValue, FieldProblem> {
            .failure(FieldProblem(value: value, want: want))
        }
        func integer(_ range: ClosedRange<Int64>, _ want: String) -> Result<JSONValue, FieldProblem> {
            var number: Int64?
            switch value {
            case .integer, .double: number = value.intValue
            case .string(let text): number = Int64(text)   // protojson accepts quoted integers
            default: number = nil
            }
            guard let number else { return wrong("is not an integer") }
            guard range.contains(number) else { return wrong("is out of range: want \(want)") }
            return .success(.integer(number))
        }
        switch kind {
        case .opaque:
            return .success(value)
        case .string:
            guard case .string = value else { return wrong("is not a string") }
            return .success(value)
        case .nonEmptyString:
            guard case .string(let text) = value else { return wrong("is not a string") }
            guard !text.isEmpty else { return wrong("must not be empty") }
            return .success(value)
        case .address:
            guard case .string(let text) = value else { return wrong("is not a string") }
            guard Self.isHostPort(text) else { return wrong("is not a host:port address (use e.g. \"istiod.istio-system.svc:15012\")") }
            return .success(value)
        case .integer(let range, let want), .wrappedInteger(let range, let want):
            return integer(range, want)
        case .duration(let minimum):
            guard case .string(let text) = value, let duration = DurationSyntax.parse(text) else {
                return wrong("is not a duration (use e.g. \"45s\")")
            }
            guard duration >= minimum else {
                return wrong(minimum == .zero ? "must not be negative" : "must be at least \(DurationSyntax.protobufText(minimum))")
            }
            return .success(.string(DurationSyntax.protobufText(duration)))
        case .bool:
            guard case .bool = value else { return wrong("is not a boolean (use true or false, unquoted)") }
            return .success(value)
        case .enumeration(let names):
            let ordered = names.sorted { $0.value < $1.value }.map(\.key)
            if case .string(let text) = value, names[text] != nil { return .success(value) }
            if let number = value.intValue, let name = names.first(where: { $0.value == number })?.key {
                return .success(.string(name))
            }
            return wrong("is not one of " + ordered.joined(separator: ", "))
        case .stringMap:
            guard let object = value.objectValue else { return wrong("is not a map of strings") }
            for (key, element) in object {
                guard case .string = element else {
                    return .failure(FieldProblem(value: element, want: "is not a string (quote the value of \(goQuoted(key)))"))
                }
            }
            return .success(value)
        case .stringList:
            guard let elements = value.arrayValue, elements.allSatisfy({ $0.stringValue != nil }) else {
                return wrong("is not a list of strings")
            }
            return .success(value)
        case .statsMatcher:
            guard let object = value.objectValue else { return wrong("is not an object") }
            var canonical = JSONObject()
            for (key, element) in object {
                let name = ["inclusion_prefixes": "inclusionPrefixes", "inclusion_suffixes": "inclusionSuffixes",
                            "inclusion_regexps": "inclusionRegexps"][key] ?? key
                guard ["inclusionPrefixes", "inclusionSuffixes", "inclusionRegexps"].contains(name) else {
                    return .failure(FieldProblem(value: value, want: "has unknown field \(goQuoted(key)) (use inclusionPrefixes, inclusionSuffixes, inclusionRegexps)"))
                }
                guard let list = element.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                    return .failure(FieldProblem(value: element, want: "is not a list of strings (in \(name))"))
                }
                canonical[name] = element
            }
            return .success(.object(canonical))
        }
    }

    /// Istio's `ValidateProxyAddress`: host:port with a port 1-65535.
    static func isHostPort(_ address: String) -> Bool {
        guard let host = host(ofAddress: address), !host.isEmpty,
              let colon = address.lastIndex(of: ":"),
              let port = Int(address[address.index(after: colon)...]) else { return false }
        return (1...65535).contains(port)
    }

    /// The host of `host:port` or `[v6]:port`.
    static func host(ofAddress address: String) -> String? {
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { return nil }
            return String(address[address.index(after: address.startIndex)..<close])
        }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return String(address[..<colon])
    }
}

struct FieldProblem: Error {
    var value: JSONValue
    var want: String

    func message(source: String, field: String) -> String {
        "\(source): \(field): \(Self.render(value)) \(want)"
    }

    static func render(_ value: JSONValue) -> String {
        if case .string(let text) = value { return goQuoted(text) }
        var text = value.renderedJSON(pretty: false)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}

/// Istio's `getMeshConfig` + `MergeProxyConfig`: each layer replaces the fields it sets (lists and nested
/// messages whole), except `proxyMetadata`, whose keys are merged.
struct ProxyConfigLayers {
    private(set) var merged: JSONObject = ProxyConfig.defaultJSON
    private(set) var warnings: [String] = []

    /// Parses one layer's text (JSON or YAML) and applies it. `source` names the input in messages.
    mutating func apply(text: String, source: String) throws(AgentConfigError) {
        let document: JSONValue
        do {
            document = try JSONValue.parse(yamlOrJSON: text)
        } catch {
            throw AgentConfigError("\(source): not valid JSON or YAML: \(error.message)")
        }
        try apply(document, source: source)
    }

    mutating func apply(_ document: JSONValue, source: String) throws(AgentConfigError) {
        if case .null = document { return }
        guard let object = document.objectValue else {
            throw AgentConfigError("\(source): want a ProxyConfig object, got \(document.kindDescription)")
        }
        for (key, value) in try normalized(object, source: source) {
            if key == "proxyMetadata", let existing = merged[key]?.objectValue, let overlay = value.objectValue {
                merged[key] = .object(existing.replacingFields(with: overlay))
            } else {
                merged[key] = value
            }
            for partner in ProxyConfigField.oneofPartners[key] ?? [] { merged[partner] = nil }
        }
    }

    mutating func set(_ key: String, _ value: JSONValue?) {
        merged[key] = value
    }

    private mutating func normalized(_ object: JSONObject, source: String) throws(AgentConfigError) -> JSONObject {
        var result = JSONObject()
        for (key, value) in object {
            // protojson treats null as "not set": the layer leaves the field alone.
            if case .null = value { continue }
            guard let field = ProxyConfigField.byName[key] else {
                warnings.append("\(source): unknown ProxyConfig field \(goQuoted(key)) (perhaps from a newer Istio);"
                    + " kept in node metadata, not used by Sluice")
                result[key] = value
                continue
            }
            switch field.canonical(value) {
            case .success(let canonical): result[field.name] = canonical
            case .failure(let problem): throw AgentConfigError(problem.message(source: source, field: field.name))
            }
        }
        return result
    }
}
