import ConfigFormats

/// Istio's `istio.networking.nds.v1.NameTable` (DNS.md §3): hostname -> NameInfo, as istiod sends it
/// to the agent over NDS.
public struct NameTable: Sendable, Equatable {
    public struct NameInfo: Sendable, Equatable {
        /// As given; the lookup table skips the ones that are not IP addresses, as Istio does.
        public var ips: [String]
        /// "Kubernetes", "External", …: only "Kubernetes" gets the short-name aliases.
        public var registry: String
        public var shortname: String
        public var namespace: String
        /// Deprecated proto field 5, still honoured by the agent for Kubernetes entries.
        public var altHosts: [String]

        public init(ips: [String], registry: String = "", shortname: String = "", namespace: String = "", altHosts: [String] = []) {
            self.ips = ips
            self.registry = registry
            self.shortname = shortname
            self.namespace = namespace
            self.altHosts = altHosts
        }
    }

    public var table: [String: NameInfo]

    public init(table: [String: NameInfo] = [:]) {
        self.table = table
    }

    /// Protobuf-JSON form, host names sorted and empty fields left out as protobuf-JSON leaves them: what
    /// `/debug/ndsz` shows and what `parse(json:)` reads back.
    public var jsonValue: JSONValue {
        var hosts = JSONObject()
        for host in table.keys.sorted() {
            let info = table[host]!
            var fields = JSONObject()
            if !info.ips.isEmpty { fields["ips"] = .array(info.ips.map(JSONValue.string)) }
            if !info.registry.isEmpty { fields["registry"] = .string(info.registry) }
            if !info.shortname.isEmpty { fields["shortname"] = .string(info.shortname) }
            if !info.namespace.isEmpty { fields["namespace"] = .string(info.namespace) }
            if !info.altHosts.isEmpty { fields["altHosts"] = .array(info.altHosts.map(JSONValue.string)) }
            hosts[host] = .object(fields)
        }
        return .object(JSONObject([("table", .object(hosts))]))
    }

    /// Protobuf-JSON form, as istiod's NameTable is dumped by `/debug/ndsz`:
    /// `{"table": {"reviews.bookinfo.svc.cluster.local": {"ips": ["10.0.0.1"], "registry": "Kubernetes",
    /// "shortname": "reviews", "namespace": "bookinfo", "altHosts": [...]}}}`.
    /// Field names are also accepted in proto form (`alt_hosts`). Unknown fields are ignored so a newer
    /// istiod's dump still loads; a field of the wrong kind is refused. `null` stands for the field's
    /// default, as protobuf-JSON says.
    public static func parse(json text: String) throws(NameTableError) -> NameTable {
        let document: JSONValue
        do {
            document = try JSONValue.parse(json: text)
        } catch {
            throw NameTableError("name table: \(error.message)")
        }
        guard case .object(let topLevel) = document else {
            throw NameTableError("name table: expected a JSON object ({\"table\": {…}}), found \(document.kindDescription)")
        }
        var nameTable = NameTable()
        switch topLevel["table"] {
        case nil, .null?:
            return nameTable
        case .object(let entries)?:
            for (hostname, value) in entries {
                let path = "table[\(quotedKey(hostname))]"
                guard case .object(let fields) = value else {
                    throw NameTableError("\(path): expected an object, found \(value.kindDescription)")
                }
                nameTable.table[hostname] = try NameInfo(fields: fields, path: path)
            }
            return nameTable
        case .some(let other):
            throw NameTableError("table: expected an object of hostname -> name info, found \(other.kindDescription)")
        }
    }

    /// A map key as it appears in error paths: quoted, with the JSON escapes for quotes, backslashes
    /// and control characters so the path stays on one line and reads back unambiguously.
    static func quotedKey(_ key: String) -> String {
        var quoted = "\""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case "\r": quoted += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    quoted += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }
}

/// A name table that could not be read; `description` names the JSON path and what is wrong there.
public struct NameTableError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension NameTable.NameInfo {
    init(fields: JSONObject, path: String) throws(NameTableError) {
        let camelAltHosts = fields["altHosts"]
        let protoAltHosts = fields["alt_hosts"]
        if let camelAltHosts, let protoAltHosts, camelAltHosts != .null, protoAltHosts != .null {
            throw NameTableError("\(path): both altHosts and alt_hosts are given; keep one of them")
        }
        let altHostsField = (camelAltHosts == nil || camelAltHosts == .null) ? "alt_hosts" : "altHosts"
        self.init(
            ips: try Self.strings(fields["ips"], path: "\(path).ips"),
            registry: try Self.string(fields["registry"], path: "\(path).registry"),
            shortname: try Self.string(fields["shortname"], path: "\(path).shortname"),
            namespace: try Self.string(fields["namespace"], path: "\(path).namespace"),
            altHosts: try Self.strings(fields[altHostsField], path: "\(path).\(altHostsField)"))
    }

    private static func string(_ value: JSONValue?, path: String) throws(NameTableError) -> String {
        switch value {
        case nil, .null?: return ""
        case .string(let text)?: return text
        case .some(let other): throw NameTableError("\(path): expected a string, found \(other.kindDescription)")
        }
    }

    private static func strings(_ value: JSONValue?, path: String) throws(NameTableError) -> [String] {
        switch value {
        case nil, .null?:
            return []
        case .array(let elements)?:
            var texts: [String] = []
            texts.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                guard case .string(let text) = element else {
                    throw NameTableError("\(path)[\(index)]: expected a string, found \(element.kindDescription)")
                }
                texts.append(text)
            }
            return texts
        case .some(let other):
            throw NameTableError("\(path): expected a list of strings, found \(other.kindDescription)")
        }
    }
}
