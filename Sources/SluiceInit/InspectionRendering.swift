import Capture
import ConfigFormats

/// `inspect`'s two outputs: text for people, JSON for machines.
enum InspectionRendering {
    static func text(_ inspection: CaptureInspection, namespace: NamespaceTarget) -> String {
        var lines: [String] = []
        let kernel = inspection.facts.kernel
        let place: String
        switch namespace {
        case .current: place = "this network namespace"
        case .path(let path): place = path
        case .process(let pid): place = "pid \(pid)'s network namespace"
        }
        let owned = kernel.ownedTables
        lines.append("Capture rules in \(place): "
                     + (owned.isEmpty ? "none" : owned.map { "\($0.qualifiedName) (\($0.ruleCount) rules)" }.joined(separator: ", ")))
        if let stamp = owned.compactMap(\.comment).first { lines.append("Programmed by: \(stamp)") }
        if let reconstruction = inspection.reconstruction {
            lines.append("Flags: \(reconstruction.commandLine)")
            lines.append(reconstruction.difference.map { "       (closest flags; the live rules differ: \($0))" }
                         ?? "       (these flags rebuild the live rules exactly)")
        }
        if inspection.warnings.isEmpty {
            lines.append("Warnings: none")
        } else {
            lines.append("Warnings:")
            for warning in inspection.warnings { lines.append("  ! \(warning.message)") }
        }
        for table in owned + kernel.foreignTables {
            lines.append("")
            lines.append("table \(table.qualifiedName)" + (table.isOwned ? "" : "  (not Sluice's)"))
            for set in table.sets {
                let elements = set.contents.map { NftTextRenderer.setElements($0.elements).joined(separator: ", ") } ?? "…"
                lines.append("  set \(set.name) { \(set.declaration); elements { \(elements) } }")
            }
            for chain in table.chains {
                lines.append("  chain \(chain.name)" + (chain.hook.map { "  (\($0.type), hook \($0.hook), priority \($0.priority), policy \($0.policy))" } ?? ""))
                for (index, rule) in chain.rules.enumerated() {
                    lines.append("    " + pad("\(index + 1)", 3, right: true) + "  " + counterText(rule.counter) + "  " + ruleText(rule))
                }
            }
        }
        for table in inspection.facts.legacyTables {
            lines.append("")
            lines.append("iptables-legacy \(table.family == .ipv4 ? "ip" : "ip6") table \(table.name)  (not nftables: invisible to nft)")
            for chain in table.chains {
                lines.append("  chain \(chain.name)" + (chain.policy.map { "  (policy \($0))" } ?? ""))
                for (index, rule) in chain.rules.enumerated() {
                    lines.append("    " + pad("\(index + 1)", 3, right: true) + "  " + counterText(rule.counter) + "  " + rule.text)
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A rule's nft text without its comment, which follows after `#`, and without `counter`, whose
    /// values have their own columns.
    static func ruleText(_ rule: KernelRule) -> String {
        guard var decoded = rule.rule else { return rule.text }
        let comment = decoded.comment
        decoded.comment = ""
        decoded.statements.removeAll { $0 == .counter }
        return NftTextRenderer.render(decoded) + (comment.isEmpty ? "" : "   # \(comment)")
    }

    /// `  12 pkts    720 B` in a fixed width, or dashes for a rule without a counter.
    static func counterText(_ counter: RuleCounter?) -> String {
        guard let counter else { return pad("-", 9, right: true) + "      " + pad("-", 7, right: true) + "  " }
        return pad(humanCount(counter.packets), 9, right: true) + " pkts " + pad(humanBytes(counter.bytes), 7, right: true) + "  "
    }

    static func humanCount(_ value: UInt64) -> String {
        switch value {
        case ..<100_000: return "\(value)"
        case ..<100_000_000: return "\(value / 1000)K"
        default: return "\(value / 1_000_000)M"
        }
    }

    static func humanBytes(_ value: UInt64) -> String {
        switch value {
        case ..<10_000: return "\(value) B"
        case ..<10_000_000: return "\(value / 1024) KiB"
        default: return "\(value / (1024 * 1024)) MiB"
        }
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }

    // MARK: JSON

    static func json(_ inspection: CaptureInspection) -> JSONValue {
        let kernel = inspection.facts.kernel
        func counter(_ counter: RuleCounter?) -> JSONValue {
            guard let counter else { return .null }
            return .object(JSONObject([("packets", .integer(Int64(clamping: counter.packets))),
                                       ("bytes", .integer(Int64(clamping: counter.bytes)))]))
        }
        let tables: [JSONValue] = kernel.tables.map { table in
            .object(JSONObject([
                ("family", .string(table.family)),
                ("name", .string(table.name)),
                ("owned", .bool(table.isOwned)),
                ("comment", table.comment.map { .string($0) } ?? .null),
                ("sets", .array(table.sets.map { set in
                    .object(JSONObject([("name", .string(set.name)), ("declaration", .string(set.declaration)),
                                        ("elements", set.contents.map { .array(NftTextRenderer.setElements($0.elements).map { .string($0) }) } ?? .null)]))
                })),
                ("chains", .array(table.chains.map { chain in
                    .object(JSONObject([
                        ("name", .string(chain.name)),
                        ("hook", chain.hook.map { hook in
                            .object(JSONObject([("type", .string(hook.type)), ("hook", .string(hook.hook)),
                                                ("priority", .integer(Int64(hook.priority))), ("policy", .string(hook.policy))]))
                        } ?? .null),
                        ("rules", .array(chain.rules.map { rule in
                            .object(JSONObject([
                                ("handle", .integer(Int64(clamping: rule.handle))),
                                ("text", .string(rule.text)),
                                ("comment", rule.comment.map { .string($0) } ?? .null),
                                ("decoded", .bool(rule.rule != nil)),
                                ("counter", counter(rule.counter)),
                            ]))
                        })),
                    ]))
                })),
            ]))
        }
        let legacy: [JSONValue] = inspection.facts.legacyTables.map { table in
            .object(JSONObject([
                ("family", .string(table.family == .ipv4 ? "ip" : "ip6")),
                ("name", .string(table.name)),
                ("chains", .array(table.chains.map { chain in
                    .object(JSONObject([
                        ("name", .string(chain.name)),
                        ("policy", chain.policy.map { .string($0) } ?? .null),
                        ("rules", .array(chain.rules.map { rule in
                            .object(JSONObject([("text", .string(rule.text)), ("counter", counter(rule.counter))]))
                        })),
                    ]))
                })),
            ]))
        }
        var object: [(String, JSONValue)] = [("tables", .array(tables)), ("legacyTables", .array(legacy))]
        if let reconstruction = inspection.reconstruction {
            object.append(("flags", .object(JSONObject([
                ("arguments", .array(reconstruction.arguments.map { .string($0) })),
                ("environment", .object(JSONObject(reconstruction.environment.map { ($0.name, .string($0.value)) }))),
                ("commandLine", .string(reconstruction.commandLine)),
                ("exact", .bool(reconstruction.difference == nil)),
                ("difference", reconstruction.difference.map { .string($0) } ?? .null),
            ]))))
        } else {
            object.append(("flags", .null))
        }
        object.append(("warnings", .array(inspection.warnings.map { warning in
            .object(JSONObject([("kind", .string(warning.kind)), ("message", .string(warning.message))]))
        })))
        return .object(JSONObject(object))
    }
}
