import ConfigFormats

/// Envoy's `--config-yaml`: the overlay is merged into the file's bootstrap with protobuf's
/// `MergeFrom` (Envoy's `InstanceUtil::loadBootstrapConfig`), reproduced here on the JSON form:
///
/// - messages merge field by field; lists append (so `static_resources.listeners` adds listeners);
/// - scalars replace, but, as in proto3, a scalar set to its default (false, 0, "") is "not set" and
///   changes nothing, unless the field has presence (a wrapper type such as `transparent`, or a
///   member of a oneof);
/// - setting one member of a oneof clears the others (`stats_matcher.reject_all` replaces an
///   `inclusion_list`, `log_format.json_format` a `text_format`);
/// - a `typed_config` (an `Any`, recognised by its `@type`) is replaced whole;
/// - map fields (`node.metadata`, `static_layer`, `typed_extension_protocol_options`, …) merge by key,
///   each entry replaced whole;
/// - null is an unset field and changes nothing.
///
/// Not reproduced: an enum set to its zero name (`"STATIC"`) replaces here, where proto3 would skip it.
enum ProtobufMerge {
    static func merge(_ base: JSONValue, _ overlay: JSONValue) -> JSONValue {
        mergeValue(base, overlay, field: "", parentPath: [])
    }

    private static func mergeValue(_ base: JSONValue, _ overlay: JSONValue, field: String, parentPath: [String]) -> JSONValue {
        switch (base, overlay) {
        case (_, .null):
            return base
        case (.object(let baseObject), .object(let overlayObject)):
            if overlayObject["@type"] != nil { return overlay }
            if isMapField(field, parentPath: parentPath) {
                var merged = baseObject
                for (key, value) in overlayObject { merged[key] = value }
                return .object(merged)
            }
            return .object(mergeMessage(baseObject, overlayObject, path: parentPath + [field]))
        case (.array(let baseElements), .array(let overlayElements)):
            return .array(baseElements + overlayElements)
        default:
            return overlay
        }
    }

    private static func mergeMessage(_ base: JSONObject, _ overlay: JSONObject, path: [String]) -> JSONObject {
        var merged = base
        for (key, value) in overlay {
            let name = MessageReader.protoFieldName(key)
            if value == .null { continue }
            if isDefaultScalar(value), !hasPresence(name, in: path.last ?? "") { continue }
            for sibling in oneofSiblings(of: name, in: path.last ?? "") {
                for existing in merged.keys where MessageReader.protoFieldName(existing) == sibling {
                    merged[existing] = nil
                }
            }
            let baseKey = merged.keys.first { MessageReader.protoFieldName($0) == name }
            if let baseKey, let existing = merged[baseKey] {
                merged[baseKey] = mergeValue(existing, value, field: name, parentPath: path)
            } else {
                merged[key] = value
            }
        }
        return merged
    }

    private static func isDefaultScalar(_ value: JSONValue) -> Bool {
        switch value {
        case .bool(let flag): !flag
        case .integer(let number): number == 0
        case .double(let number): number == 0
        case .string(let text): text.isEmpty
        default: false
        }
    }

    /// Fields whose default value still counts as set: wrapper types (`google.protobuf.BoolValue`,
    /// `UInt32Value`) and oneof members.
    private static func hasPresence(_ name: String, in messageField: String) -> Bool {
        wrapperFields.contains(name) || !oneofSiblings(of: name, in: messageField).isEmpty
    }

    private static let wrapperFields: Set<String> = [
        "transparent", "freebind", "bind_to_port", "use_original_dst", "use_all_default_tags", "case_sensitive",
        "max_connections", "max_pending_requests", "max_requests", "max_retries", "per_connection_buffer_limit_bytes",
        "tcp_backlog_size", "max_connections_to_accept_per_socket_event", "max_requests_per_connection",
    ]

    /// The oneofs a merge can reach. Only singular message fields outside an `Any` are ever merged
    /// (lists append, `Any`s are replaced), so only messages on such paths matter, each named by the
    /// field holding it.
    private static let oneofGroups: [(messageField: String, members: Set<String>)] = [
        ("stats_matcher", ["reject_all", "exclusion_list", "inclusion_list"]),
        ("address", ["socket_address", "pipe", "envoy_internal_address"]),
        ("socket_address", ["port_value", "named_port"]),
        ("log_format", ["text_format", "json_format"]),
    ]

    private static func oneofSiblings(of name: String, in messageField: String) -> Set<String> {
        var siblings: Set<String> = []
        for group in oneofGroups where group.messageField == messageField && group.members.contains(name) {
            siblings.formUnion(group.members)
        }
        siblings.remove(name)
        return siblings
    }

    /// Map fields, whose entries are replaced rather than merged: `node.metadata` (a Struct) and the
    /// maps of the subset.
    private static func isMapField(_ field: String, parentPath: [String]) -> Bool {
        // The root message's path is [""], so the bootstrap's node is ["", "node"].
        if field == "metadata", parentPath == ["", "node"] { return true }
        return ["filter_metadata", "typed_filter_metadata", "static_layer", "typed_extension_protocol_options",
                "json_format"].contains(field)
    }
}
