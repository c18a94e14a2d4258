import Capture
import ConfigFormats
import Netfilter
import Sockets
#if canImport(Glibc)
import Glibc
#endif

/// `sluice-init explain`: one packet walked through the live rules (or the rules some flags would
/// program) by the pure `RulesetWalker`, with the namespace's real addresses and route choice.
enum ExplainCommand {
    static func run(_ options: ExplainOptions, environment: [String: String], output: inout StandardStreams) -> Int32 {
        let walk: PacketWalk
        do {
            walk = try explain(options, environment: environment)
        } catch {
            return DebugCommands.report(error, output: &output)
        }
        if options.json {
            output.out(json(walk).renderedJSON(), terminator: "")
        } else {
            let text = walk.explanation(verbose: options.verbose)
            output.out(text, terminator: text.hasSuffix("\n") ? "" : "\n")
        }
        return 0
    }

    /// The walk, from the ruleset and this namespace's addresses and routes.
    static func explain(_ options: ExplainOptions, environment: [String: String]) throws -> PacketWalk {
        let ruleset: Ruleset
        var unknown: Set<RuleLocation> = []
        var unwalked: [String] = []
        if let flags = options.flagArguments {
            ruleset = try RulesetFromFlags.build(flags, environment: environment)
        } else {
            let inventory = try NftablesReadback().readInventory()
            (ruleset, unknown) = inventory.walkableRuleset()
            unwalked = otherRulesOnThePath(inventory, legacy: try LegacyIptables.readAll())
        }
        let walkEnvironment = currentEnvironment()
        let probe = try packet(options, environment: walkEnvironment)
        var walk = RulesetWalker(ruleset: ruleset, unknownRules: unknown, environment: walkEnvironment).walk(probe)
        walk.notes += unwalked
        return walk
    }

    /// Chains on the same hooks that the walk does not evaluate (other programs' nftables tables,
    /// iptables-legacy): the answer holds only if they let the packet through unchanged, so say so.
    static func otherRulesOnThePath(_ inventory: KernelRuleset, legacy: [LegacyTable]) -> [String] {
        var notes: [String] = []
        for table in inventory.foreignTables where ["ip", "ip6", "inet"].contains(table.family) {
            for chain in table.chains {
                guard let hook = chain.hook, hook.hook == "prerouting" || hook.hook == "output" else { continue }
                notes.append("not walked: \(table.qualifiedName) chain \(chain.name) (\(hook.type), \(hook.hook) priority "
                             + "\(hook.priority), \(chain.rules.count) rules) is on this path too; see sluice-init inspect")
            }
        }
        for table in legacy where table.ruleCount > 0 {
            notes.append("not walked: iptables-legacy \(table.family == .ipv4 ? "ip" : "ip6") table \(table.name) holds "
                         + "\(table.ruleCount) rule(s) on the same hooks; see sluice-init inspect")
        }
        return notes
    }

    /// Every interface's addresses, loopback included, in the kernel's order.
    static func currentEnvironment() -> WalkEnvironment {
        var addresses: [String: [IPAddress]] = [:]
        for entry in InterfaceAddress.all() { addresses[entry.interface, default: []].append(entry.address) }
        return WalkEnvironment(interfaceAddresses: addresses)
    }

    /// The packet the options describe. Outbound, the source address and the interface are what the
    /// kernel's route lookup picks for the destination (unless given); inbound, the source is the one given.
    static func packet(_ options: ExplainOptions, environment: WalkEnvironment) throws -> PacketProbe {
        let family = options.destination.address.family
        let origin: PacketProbe.Origin
        var source = options.source
        if let input = options.inputInterface {
            origin = .arriving(inputInterface: input)
            if source == nil { source = family == .ipv4 ? IPAddress("0.0.0.0")! : IPAddress("::")! }
        } else {
            let route = routeChoice(to: options.destination, from: options.source)
            guard let chosen = source ?? route else {
                throw ConfigurationError("no route to \(options.destination.address) from this network namespace: "
                                         + "a connection fails before any rule sees it (give --out IFACE and --from ADDRESS to ask anyway)")
            }
            source = chosen
            let interface = options.outputInterface
                ?? (environment.isLocal(options.destination.address) ? "lo" : route.flatMap { interfaceHolding($0, environment) })
                ?? "lo"
            origin = .local(uid: options.uid, gid: options.gid ?? options.uid, outputInterface: interface)
        }
        return PacketProbe(transport: options.transport, source: Endpoint(source!, options.sourcePort ?? 40000),
                           destination: options.destination, origin: origin, mark: options.mark, connectionState: options.state)
    }

    /// The source address the kernel picks for `destination`: a UDP socket's `connect` does the route
    /// lookup and sends nothing.
    static func routeChoice(to destination: Endpoint, from source: IPAddress?) -> IPAddress? {
        let family = destination.address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if let source {
            let bound = Endpoint(source, 0).withSocketAddress { bind(fd, $0, $1) }
            guard bound == 0 else { return nil }
        }
        let connected = destination.withSocketAddress { connect(fd, $0, $1) }
        guard connected == 0, let local = Endpoint.local(of: fd) else { return nil }
        return local.address
    }

    private static func interfaceHolding(_ address: IPAddress, _ environment: WalkEnvironment) -> String? {
        environment.interfaceAddresses.sorted { $0.key < $1.key }.first { $0.value.contains(address) }?.key
    }

    // MARK: JSON

    static func json(_ walk: PacketWalk) -> JSONValue {
        let fate: JSONObject
        switch walk.fate {
        case .redirected(let to, let by):
            fate = JSONObject([("verdict", .string("redirected")), ("to", .string("\(to)")), ("port", .integer(Int64(to.port))),
                               ("rule", .string(by.qualifiedDescription))])
        case .transparentProxy(let port, let by):
            fate = JSONObject([("verdict", .string("tproxy")), ("port", .integer(Int64(port))), ("rule", .string(by.qualifiedDescription))])
        case .delivered(let endpoint):
            fate = JSONObject([("verdict", .string("delivered")), ("to", .string("\(endpoint)"))])
        case .leaves(let endpoint, let interface):
            fate = JSONObject([("verdict", .string("leaves")), ("to", .string("\(endpoint)")), ("interface", .string(interface))])
        case .forwarded(let endpoint):
            fate = JSONObject([("verdict", .string("forwarded")), ("to", .string("\(endpoint)"))])
        case .dropped(let by):
            fate = JSONObject([("verdict", .string("dropped")), ("rule", .string(by.qualifiedDescription))])
        case .undetermined(let at, let reason):
            fate = JSONObject([("verdict", .string("undetermined")), ("rule", .string(at.qualifiedDescription)), ("reason", .string(reason))])
        }
        let steps: [JSONValue] = walk.steps.map { step in
            .object(JSONObject([
                ("hook", .string(step.hook.rawValue)),
                ("loopedBack", .bool(step.loopedBack)),
                ("table", .string(step.location.table)),
                ("chain", .string(step.location.chain)),
                ("rule", .integer(Int64(step.location.index + 1))),
                ("text", .string(NftTextRenderer.render(step.rule))),
                ("matched", .bool(step.matched)),
                ("mismatch", step.mismatch.map { .string($0) } ?? .null),
                ("effect", step.effect.map { .string($0) } ?? .null),
            ]))
        }
        return .object(JSONObject([
            ("summary", .string(walk.summary)),
            ("fate", .object(fate)),
            ("steps", .array(steps)),
            ("notes", .array(walk.notes.map { .string($0) })),
        ]))
    }
}
