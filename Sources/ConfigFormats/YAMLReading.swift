import Yams

extension JSONValue {
    /// Reads YAML (1.2 core schema) or JSON — JSON is YAML — into the same values, as Istio reads
    /// `PROXY_CONFIG`, mesh config and bootstrap overrides. Mapping keys must be scalars; anchors are
    /// expanded; only the first document counts. An empty document is null.
    public static func parse(yamlOrJSON text: String) throws(FormatError) -> JSONValue {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw FormatError("YAML: \(Self.oneLine(error))")
        }
        guard let root else { return .null }
        return try value(of: root, depth: 0)
    }

    private static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "unreadable"
    }

    private static func position(_ node: Node) -> String {
        guard let mark = node.mark else { return "" }
        return "line \(mark.line), column \(mark.column): "
    }

    private static func value(of node: Node, depth: Int) throws(FormatError) -> JSONValue {
        // Anchors can make a small document expand without bound ("billion laughs"); depth limits it.
        guard depth < 512 else { throw FormatError("YAML \(position(node))nested more than 512 levels deep") }
        switch node {
        case .scalar(let scalar):
            return try value(of: scalar, node: node)
        case .sequence(let sequence):
            var elements: [JSONValue] = []
            for element in sequence { elements.append(try value(of: element, depth: depth + 1)) }
            return .array(elements)
        case .mapping(let mapping):
            var object = JSONObject()
            for (key, element) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw FormatError("YAML \(position(key))mapping keys must be plain text")
                }
                object[keyScalar.string] = try value(of: element, depth: depth + 1)
            }
            return .object(object)
        case .alias:
            throw FormatError("YAML \(position(node))unresolved alias")
        }
    }

    private static func value(of scalar: Node.Scalar, node: Node) throws(FormatError) -> JSONValue {
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .null:
            return .null
        case .bool:
            guard let flag = node.bool else { throw FormatError("YAML \(position(node))\"\(scalar.string)\" is not a boolean") }
            return .bool(flag)
        case .int:
            guard let integer = node.int else { throw FormatError("YAML \(position(node))\"\(scalar.string)\" does not fit a 64-bit integer") }
            return .integer(Int64(integer))
        case .float:
            guard let number = node.float, number.isFinite else {
                throw FormatError("YAML \(position(node))\"\(scalar.string)\" is not a finite number")
            }
            return .double(number)
        default:
            return .string(scalar.string)
        }
    }
}
