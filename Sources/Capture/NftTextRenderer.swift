/// Renders a ruleset as the nft transaction that programs it: the text `--dry-run` prints, which
/// `nft -f` accepts and which has exactly the effect of `sluice-init`'s netlink batch.
///
/// Each owned table is replaced whole ("add, delete, add": creating first makes the delete legal when
/// the table is absent), and each owned table the ruleset does not need is removed the same way, so
/// the text converges from any previous state, like the batch does.
public enum NftTextRenderer {
    public static func render(_ ruleset: Ruleset) -> String {
        var lines: [String] = []
        for name in Ruleset.ownedTableNames {
            lines.append("add table inet \(name)")
            lines.append("delete table inet \(name)")
            guard let table = ruleset.table(named: name) else { continue }
            lines += renderTable(table)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The cleanup transaction: every owned table removed, nothing else touched.
    public static func renderCleanup() -> String { render(Ruleset(tables: [])) }

    static func renderTable(_ table: Table) -> [String] {
        let prefix = "inet \(table.name)"
        var lines: [String] = []
        if let comment = table.comment {
            lines.append("add table \(prefix) { comment \(quoted(comment)) ; }")
        } else {
            lines.append("add table \(prefix)")
        }
        for set in table.sets {
            lines.append("add set \(prefix) \(set.name) { \(setDeclaration(set.elements)) }")
            let elements = setElements(set.elements)
            if !elements.isEmpty {
                lines.append("add element \(prefix) \(set.name) { \(elements.joined(separator: ", ")) }")
            }
        }
        for chain in table.chains {
            if let base = chain.base {
                lines.append("add chain \(prefix) \(chain.name) { type \(base.type.rawValue) hook \(base.hook.rawValue) "
                             + "priority \(base.priority) ; policy accept ; }")
            } else {
                lines.append("add chain \(prefix) \(chain.name)")
            }
        }
        for chain in table.chains {
            for rule in chain.rules {
                lines.append("add rule \(prefix) \(chain.name) \(render(rule))")
            }
        }
        return lines
    }

    /// One rule's body: matches, statements, comment.
    public static func render(_ rule: Rule) -> String {
        var words = rule.matches.map(render(_:)) + rule.statements.map(render(_:))
        if !rule.comment.isEmpty { words.append("comment \(quoted(rule.comment))") }
        return words.joined(separator: " ")
    }

    public static func render(_ match: Match) -> String {
        func not(_ negated: Bool) -> String { negated ? "!= " : "" }
        switch match {
        case .transportProtocol(let proto):
            return "meta l4proto \(proto.rawValue)"
        case .inputInterface(let name):
            return "iifname \(quoted(name))"
        case .outputInterface(let name):
            return "oifname \(quoted(name))"
        case .sourceAddress(let cidr, let negated):
            return "\(cidr.family.nftKeyword) saddr \(not(negated))\(cidr)"
        case .destinationAddress(let cidr, let negated):
            return "\(cidr.family.nftKeyword) daddr \(not(negated))\(cidr)"
        case .destinationAddressInSet(let family, let set):
            return "\(family.nftKeyword) daddr @\(set)"
        case .destinationPort(let proto, let port, let negated):
            return "\(proto.rawValue) dport \(not(negated))\(port)"
        case .destinationPortInSet(let proto, let set):
            return "\(proto.rawValue) dport @\(set)"
        case .sourcePort(let proto, let port):
            return "\(proto.rawValue) sport \(port)"
        case .socketUID(let uid, let negated):
            return "meta skuid \(not(negated))\(uid)"
        case .socketGID(let gid, let negated):
            return "meta skgid \(not(negated))\(gid)"
        case .connectionState(let states):
            return "ct state \(stateNames(states).joined(separator: ","))"
        case .packetMark(let mark, let negated):
            return "meta mark \(not(negated))\(mark)"
        case .connectionMark(let mark):
            return "ct mark \(mark)"
        }
    }

    public static func render(_ statement: Statement) -> String {
        switch statement {
        case .counter: return "counter"
        case .redirect(let port): return "redirect to :\(port)"
        case .tproxy(let family, let port): return "tproxy \(family.nftKeyword) to :\(port)"
        case .setConntrackZone(let zone): return "ct zone set \(zone)"
        case .setPacketMark(let mark): return "meta mark set \(mark)"
        case .saveMarkToConnection: return "ct mark set meta mark"
        case .restoreMarkFromConnection: return "meta mark set ct mark"
        case .verdict(.accept): return "accept"
        case .verdict(.drop): return "drop"
        case .verdict(.return): return "return"
        case .verdict(.jump(let chain)): return "jump \(chain)"
        }
    }

    static func setDeclaration(_ elements: NamedSet.Elements) -> String {
        switch elements {
        case .addresses(let family, _):
            return "type \(family == .ipv4 ? "ipv4_addr" : "ipv6_addr") ; flags interval ;"
        case .ports:
            return "type inet_service ;"
        }
    }

    public static func setElements(_ elements: NamedSet.Elements) -> [String] {
        switch elements {
        case .addresses(_, let ranges):
            return ranges.map { range in range.singlePrefix.map { "\($0)" } ?? "\(range.first)-\(range.last)" }
        case .ports(let ports):
            return ports.map(String.init)
        }
    }

    static func stateNames(_ states: ConnectionStates) -> [String] {
        let names: [(ConnectionStates, String)] = [
            (.invalid, "invalid"), (.related, "related"), (.established, "established"),
            (.new, "new"), (.untracked, "untracked"),
        ]
        return names.filter { states.contains($0.0) }.map(\.1)
    }

    /// nft string literal. Comments and interface names never contain quotes in Sluice's own
    /// rules, and user-supplied interface names are validated before they get here.
    static func quoted(_ text: String) -> String { "\"\(text)\"" }
}
