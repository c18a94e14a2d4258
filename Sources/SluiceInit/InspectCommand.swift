import Capture
import ConfigFormats
import Netfilter
import Sockets
import TextFiles

/// `sluice-init inspect`: the capture rules of the namespace this thread is in, read over netlink,
/// with counters, the flags they correspond to and every warning `CaptureInspection` knows.
enum InspectCommand {
    static func run(_ options: InspectOptions, namespace: NamespaceTarget, environment: [String: String],
                    output: inout StandardStreams) -> Int32 {
        let inspection: CaptureInspection
        do {
            inspection = try gather(options, namespace: namespace)
        } catch {
            output.err("sluice-init: \(error)")
            return error.exitCode
        }
        if let flags = options.diffArguments {
            return diff(inspection, flags: flags, environment: environment, json: options.json, output: &output)
        }
        if options.json {
            output.out(InspectionRendering.json(inspection).renderedJSON(), terminator: "")
        } else {
            output.out(InspectionRendering.text(inspection, namespace: namespace), terminator: "")
        }
        return 0
    }

    /// Everything the report needs, read from the kernel (and the pod's resolv.conf) in one go.
    static func gather(_ options: InspectOptions, namespace: NamespaceTarget) throws(KernelError) -> CaptureInspection {
        let kernel = try NftablesReadback().readInventory()
        let legacy = try LegacyIptables.readAll()
        let loopback = InterfaceAddress.all().filter(\.isLoopbackInterface).map(\.address)
        var fwmarks: [(mark: UInt32, table: UInt32)] = []
        if let route = try? RouteNetlink() {
            for family in IPFamily.allCases {
                for rule in (try? route.fibRules(family: family)) ?? [] {
                    if let mark = rule.mark { fwmarks.append((mark, rule.table)) }
                }
            }
        }
        let path = options.resolvConfPath ?? namespace.rootPrefix + "/etc/resolv.conf"
        let nameservers = (try? TextFile.read(path, limit: 1 << 20)).map { ResolvConf.parse($0).resolvConf.nameservers.map(\.address) }
        let facts = CaptureInspection.Facts(kernel: kernel, legacyTables: legacy, loopbackAddresses: loopback, fwmarkRules: fwmarks,
                                            nameservers: nameservers, resolvConfPath: path)
        return CaptureInspection(facts: facts, readBack: \.readBackForm)
    }

    /// `--diff -- <flags>`: the live owned tables against what the flags program here. Exit 0 when the
    /// same, 3 when they differ (1 and 2 stay kernel and configuration errors).
    static func diff(_ inspection: CaptureInspection, flags: [String], environment: [String: String], json: Bool,
                     output: inout StandardStreams) -> Int32 {
        let planned: Ruleset
        do {
            planned = try RulesetFromFlags.build(flags, environment: environment)
        } catch {
            output.err("sluice-init: --diff: \(error.message)")
            return 2
        }
        let (live, unknown) = inspection.facts.kernel.walkableRuleset()
        let lines = RulesetDiff.lines(planned: CaptureReconstruction.withoutComments(planned.readBackForm),
                                      live: CaptureReconstruction.withoutComments(live), unknownRules: unknown)
        let same = lines.allSatisfy { $0.first == " " }
        if json {
            let value = JSONValue.object(JSONObject([
                ("same", .bool(same)),
                ("lines", .array(lines.map { JSONValue.string($0) })),
            ]))
            output.out(value.renderedJSON(), terminator: "")
        } else if same {
            output.out("sluice-init: the live rules are exactly what these flags program (\(planned.ruleCount) rules)")
        } else {
            output.out("--- planned by the flags\n+++ live in the kernel")
            for line in lines { output.out(line) }
        }
        return same ? 0 : 3
    }
}

/// The ruleset istio-iptables flags program in this namespace (its resolv.conf and addresses), for
/// `--diff`, `explain -- <flags>` and `graph -- <flags>`.
enum RulesetFromFlags {
    static func build(_ flags: [String], environment: [String: String]) throws(ConfigurationError) -> Ruleset {
        let arguments = flags.first == "istio-iptables" ? Array(flags.dropFirst()) : flags
        let settings = try CaptureSettings.parse(arguments: arguments, environment: environment)
        return RulesetBuilder.build(try CaptureConfig.resolve(settings, facts: LiveSystemFacts()).config)
    }
}

/// A line diff of two rulesets, chain by chain, in `nft` words: ` ` same, `-` only planned, `+` only live.
enum RulesetDiff {
    static func lines(planned: Ruleset, live: Ruleset, unknownRules: Set<RuleLocation>) -> [String] {
        var lines: [String] = []
        for name in Ruleset.ownedTableNames {
            let want = planned.table(named: name), have = live.table(named: name)
            if want == nil && have == nil { continue }
            let header = "table inet \(name)"
            switch (want, have) {
            case (nil, _): lines.append("+\(header) (not planned)")
            case (_, nil): lines.append("-\(header) (missing in the kernel)")
            default: lines.append(" \(header)")
            }
            let wantSets = (want?.sets ?? []).map(setLine), haveSets = (have?.sets ?? []).map(setLine)
            lines += merge(wantSets, haveSets).map { "\($0.marker)  \($0.text)" }
            var chainNames = (want?.chains ?? []).map(\.name)
            for chain in have?.chains ?? [] where !chainNames.contains(chain.name) { chainNames.append(chain.name) }
            for chainName in chainNames {
                let wantChain = want?.chain(named: chainName), haveChain = have?.chain(named: chainName)
                let mark = wantChain == nil ? "+" : haveChain == nil ? "-" : wantChain?.base == haveChain?.base ? " " : "!"
                lines.append("\(mark)  chain \(chainName)" + ((wantChain ?? haveChain)?.base.map { " (\($0.type.rawValue), hook \($0.hook.rawValue), priority \($0.priority))" } ?? ""))
                let wantRules = (wantChain?.rules ?? []).map { NftTextRenderer.render($0) }
                let haveRules = (haveChain?.rules ?? []).enumerated().map { index, rule in
                    unknownRules.contains(RuleLocation(table: name, chain: chainName, index: index))
                        ? "(a rule outside Sluice's vocabulary)" : NftTextRenderer.render(rule)
                }
                lines += merge(wantRules, haveRules).map { "\($0.marker)    \($0.text)" }
            }
        }
        return lines
    }

    private static func setLine(_ set: NamedSet) -> String {
        "set \(set.name) { " + NftTextRenderer.setElements(set.elements).joined(separator: ", ") + " }"
    }

    /// A longest-common-subsequence merge: lines in both keep their place, the rest are marked.
    static func merge(_ planned: [String], _ live: [String]) -> [(marker: Character, text: String)] {
        let rows = planned.count, columns = live.count
        var table = [[Int]](repeating: [Int](repeating: 0, count: columns + 1), count: rows + 1)
        for row in stride(from: rows - 1, through: 0, by: -1) {
            for column in stride(from: columns - 1, through: 0, by: -1) {
                table[row][column] = planned[row] == live[column]
                    ? table[row + 1][column + 1] + 1 : max(table[row + 1][column], table[row][column + 1])
            }
        }
        var result: [(marker: Character, text: String)] = []
        var row = 0, column = 0
        while row < rows || column < columns {
            if row < rows && column < columns && planned[row] == live[column] {
                result.append((" ", planned[row])); row += 1; column += 1
            } else if column < columns && (row == rows || table[row][column + 1] >= table[row + 1][column]) {
                result.append(("+", live[column])); column += 1
            } else {
                result.append(("-", planned[row])); row += 1
            }
        }
        return result
    }
}
