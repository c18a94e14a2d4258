import Capture
import Netfilter
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// `sluice-init graph`: the capture chains as a picture. DOT is Sluice's own text; SVG is Graphviz's
/// `dot` rendering it, when installed.
enum GraphCommand {
    static func run(_ options: GraphOptions, environment: [String: String], output: inout StandardStreams) -> Int32 {
        let tables: [KernelTable]
        do {
            if let flags = options.flagArguments {
                tables = RulesetGraph.tables(of: try RulesetFromFlags.build(flags, environment: environment))
            } else {
                tables = try NftablesReadback().readInventory().ownedTables
            }
        } catch {
            return DebugCommands.report(error, output: &output)
        }
        let dot = RulesetGraph.dot(tables)
        switch options.format {
        case .dot:
            guard let path = options.outputPath else {
                output.out(dot, terminator: "")
                return 0
            }
            do {
                try TextFile.writeAtomically(dot, to: path, mode: 0o644)
            } catch {
                output.err("sluice-init: cannot write --output \(path): \(error)")
                return 2
            }
            return 0
        case .svg:
            return renderSVG(dot, to: options.outputPath, output: &output)
        }
    }

    /// Runs `dot -Tsvg` on the DOT text (through a temporary file), writing to `path` or stdout.
    static func renderSVG(_ dot: String, to path: String?, output: inout StandardStreams) -> Int32 {
        guard let graphviz = executableInPath("dot") else {
            output.err("sluice-init: --format svg needs Graphviz's dot (apt-get install graphviz); --format dot prints the graph without it")
            return 2
        }
        var template = Array("/tmp/sluice-graph-XXXXXX.dot".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard fd >= 0 else {
            output.err("sluice-init: cannot create a temporary file for dot: \(String(cString: strerror(errno)))")
            return 1
        }
        let temporary = String(cString: template)
        defer { unlink(temporary) }
        let bytes = Array(dot.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else {
            output.err("sluice-init: cannot write the temporary file for dot")
            return 1
        }
        var arguments = [graphviz, "-Tsvg"]
        if let path { arguments += ["-o", path] }
        arguments.append(temporary)
        let status = spawnAndWait(arguments)
        guard status == 0 else {
            output.err("sluice-init: \(graphviz) -Tsvg failed (exit status \(status))")
            return 1
        }
        return 0
    }

    static func executableInPath(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// posix_spawn with stdout and stderr inherited; the exit status, or -1 when it could not start.
    private static func spawnAndWait(_ arguments: [String]) -> Int32 {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, arguments[0], nil, nil, &argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        // Bounded by the child's life: waitpid returns when dot exits (retried only on EINTR).
        for _ in 0..<1000 {
            if waitpid(pid, &status, 0) == pid { break }
            if errno != EINTR { return -1 }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }
}

/// Chains as boxes, jumps and verdicts as edges labelled with the rule and its counter: the shape of
/// the ruleset at a glance. Pure; the DOT text is snapshot-tested.
enum RulesetGraph {
    /// A planned ruleset in the inventory's form (no handles, no counters).
    static func tables(of ruleset: Ruleset) -> [KernelTable] {
        ruleset.tables.map { table in
            KernelTable(family: "inet", name: table.name, comment: table.comment,
                        sets: table.sets.map { KernelSet(name: $0.name, contents: $0, declaration: "") },
                        chains: table.chains.map { chain in
                            KernelChain(name: chain.name,
                                        hook: chain.base.map { KernelHook(type: $0.type.rawValue, hook: $0.hook.rawValue, priority: $0.priority, policy: "accept") },
                                        rules: chain.rules.map { KernelRule(handle: 0, rule: $0, text: NftTextRenderer.render($0), comment: $0.comment, counter: nil) })
                        })
        }
    }

    static func dot(_ tables: [KernelTable]) -> String {
        var lines = [
            "digraph sluice {",
            "  rankdir=LR;",
            "  node [shape=box, style=rounded, fontname=\"monospace\", fontsize=10];",
            "  edge [fontname=\"monospace\", fontsize=9];",
        ]
        var terminals: [String: String] = [:]
        var hooks: [String: [(priority: Int32, node: String)]] = [:]
        for table in tables {
            lines.append("  subgraph \(quoted("cluster_" + table.name)) {")
            lines.append("    label=\(quoted("table \(table.qualifiedName)")); style=dashed;")
            for chain in table.chains {
                let node = nodeName(table, chain.name)
                var label = chain.name
                if let hook = chain.hook {
                    label += "\\n\(hook.type), \(hook.hook) \(hook.priority)"
                    hooks[hook.hook, default: []].append((hook.priority, node))
                }
                label += "\\n\(chain.rules.count) rule\(chain.rules.count == 1 ? "" : "s")"
                lines.append("    \(quoted(node)) [label=\(quoted(label))\(chain.hook == nil ? "" : ", penwidth=2")];")
            }
            lines.append("  }")
        }
        for hook in hooks.keys.sorted() {
            let node = "hook " + hook
            let arriving = hook == "prerouting"
            lines.append("  \(quoted(node)) [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", label=\(quoted("\(hook) hook\\n\(arriving ? "packets arriving" : "packets sent here")"))];")
            for (order, entry) in hooks[hook]!.sorted(by: { $0.priority < $1.priority }).enumerated() {
                lines.append("  \(quoted(node)) -> \(quoted(entry.node)) [label=\(quoted("\(order + 1). priority \(entry.priority)")), style=bold];")
            }
        }
        for table in tables {
            for chain in table.chains {
                let from = nodeName(table, chain.name)
                for (index, kernelRule) in chain.rules.enumerated() {
                    guard let rule = kernelRule.rule else { continue }
                    let label = edgeLabel(index, rule, kernelRule.counter)
                    if let target = rule.jumpTarget {
                        lines.append("  \(quoted(from)) -> \(quoted(nodeName(table, target))) [label=\(quoted(label))];")
                    }
                    for statement in rule.statements {
                        let terminal: (String, String)?
                        switch statement {
                        case .redirect(let port): terminal = ("redirect \(port)", "redirect to :\(port)")
                        case .tproxy(_, let port): terminal = ("tproxy \(port)", "tproxy to :\(port)")
                        case .verdict(.drop): terminal = ("drop", "drop")
                        default: terminal = nil
                        }
                        guard let (node, text) = terminal else { continue }
                        terminals[node] = text
                        lines.append("  \(quoted(from)) -> \(quoted(node)) [label=\(quoted(label)), color=\"#1f6feb\"];")
                    }
                }
            }
        }
        for node in terminals.keys.sorted() {
            let drop = node == "drop"
            lines.append("  \(quoted(node)) [shape=doubleoctagon, style=filled, fillcolor=\(drop ? "\"#ffd8d8\"" : "\"#d8e8ff\""), label=\(quoted(terminals[node]!))];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func nodeName(_ table: KernelTable, _ chain: String) -> String { "\(table.name)/\(chain)" }

    /// `3: meta l4proto tcp` and, when counted, `12 pkts`.
    private static func edgeLabel(_ index: Int, _ rule: Rule, _ counter: RuleCounter?) -> String {
        var matches = rule.matches.map(NftTextRenderer.render).joined(separator: " ")
        if matches.count > 48 { matches = String(matches.prefix(45)) + "..." }
        var label = "\(index + 1): " + (matches.isEmpty ? "all" : matches)
        if let counter { label += "\\n\(counter.packets) pkts" }
        return label
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingQuotes() + "\""
    }
}

private extension String {
    /// DOT strings end at an unescaped quote; `\n` in labels is kept as DOT's line break.
    func replacingQuotes() -> String {
        var result = ""
        for character in self { result += character == "\"" ? "\\\"" : String(character) }
        return result
    }
}
