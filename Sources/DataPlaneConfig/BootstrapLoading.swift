import ConfigFormats

extension ProxyBootstrap {
    /// Reads `-c` (JSON; YAML when it ends in .yaml/.yml), merges `--config-yaml` over it with protobuf
    /// merge rules (see `ProtobufMerge`), parses, and fills node.id/cluster from
    /// --service-node/--service-cluster when the bootstrap leaves them empty.
    public static func load(
        commandLine: ProxyCommandLine, readFile: (String) throws -> String
    ) throws(ConfigError) -> ProxyBootstrap {
        var document: JSONValue?
        if let path = commandLine.configPath, !path.isEmpty {
            if path.hasSuffix(".pb") || path.hasSuffix(".pb_text") {
                throw ConfigError("-c \(path): protobuf bootstraps are not supported by sluice-proxy; give JSON or YAML")
            }
            let text: String
            do {
                text = try readFile(path)
            } catch {
                throw ConfigError("-c \(path): cannot read the bootstrap: \(error)")
            }
            let yaml = path.hasSuffix(".yaml") || path.hasSuffix(".yml")
            do {
                document = yaml ? try JSONValue.parse(yamlOrJSON: text) : try JSONValue.parse(json: text)
            } catch {
                throw ConfigError("-c \(path): not valid \(yaml ? "YAML" : "JSON"): \(error)")
            }
            if case .object = document {} else {
                throw ConfigError("-c \(path): the bootstrap must be an object, found \(document?.kindDescription ?? "nothing")")
            }
        }
        if let text = commandLine.configYAML, !text.isEmpty {
            let overlay: JSONValue
            do {
                overlay = try JSONValue.parse(yamlOrJSON: text)
            } catch {
                throw ConfigError("--config-yaml: not valid YAML or JSON: \(error)")
            }
            switch overlay {
            case .null:
                break
            case .object:
                document = document.map { ProtobufMerge.merge($0, overlay) } ?? overlay
            default:
                throw ConfigError("--config-yaml: must be an object (a partial bootstrap), found \(overlay.kindDescription)")
            }
        }
        guard var document else {
            throw ConfigError("no bootstrap: give -c <bootstrap.json> (or --config-yaml)")
        }

        // As Envoy does, the command line's identity shows in the configuration dump too.
        if let node = commandLine.serviceNode, !node.isEmpty, (document["node"]?["id"]?.stringValue ?? "").isEmpty {
            document = setting(document, ["node", "id"], to: .string(node))
        }
        if let cluster = commandLine.serviceCluster, !cluster.isEmpty,
           (document["node"]?["cluster"]?.stringValue ?? "").isEmpty
        {
            document = setting(document, ["node", "cluster"], to: .string(cluster))
        }
        return try parse(document)
    }

    private static func setting(_ value: JSONValue, _ path: [String], to newValue: JSONValue) -> JSONValue {
        guard let key = path.first else { return newValue }
        // Something that is not an object stays, for the parser to refuse with its path.
        guard var object = value.objectValue else { return value }
        object[key] = setting(object[key] ?? .object([:]), Array(path.dropFirst()), to: newValue)
        return .object(object)
    }
}
