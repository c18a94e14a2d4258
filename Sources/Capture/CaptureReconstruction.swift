/// Works back from a live ruleset to the `istio-iptables` flags that program it, for `sluice-init
/// inspect`: a node admin sees "this pod runs `-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -b '*'`"
/// instead of reading forty rules.
///
/// The guess is read off the rules each flag writes (the redirect ports, the proxy-owner triplets, the
/// named sets, the DNS chain, …) and then checked the only way that proves it: the ruleset these flags
/// build must equal the live one. Whatever differs is reported, never hidden.
public struct ReconstructedCapture: Sendable, Hashable {
    public var config: CaptureConfig
    /// `istio-iptables` arguments, as `execve` takes them (unquoted).
    public var arguments: [String]
    /// Environment the flags need beside the arguments (`ISTIO_OUTBOUND_OWNER_GROUPS`, …).
    public var environment: [EnvironmentVariable]
    /// nil when the flags rebuild the live ruleset exactly; otherwise the first difference.
    public var difference: String?

    public struct EnvironmentVariable: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    /// `ISTIO_OUTBOUND_OWNER_GROUPS=… sluice-init -p 15001 …`
    public var commandLine: String {
        (environment.map { "\($0.name)=\(Self.quoted($0.value))" } + ["sluice-init"] + arguments.map(Self.quoted)).joined(separator: " ")
    }

    static func quoted(_ text: String) -> String {
        let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "-_./:,=".contains($0) }
        return plain && !text.isEmpty ? text : "'\(text)'"
    }
}

public enum CaptureReconstruction {
    /// - Parameter readBack: how a planned ruleset reads back from the kernel (`Ruleset.readBackForm`
    ///   in `Netfilter`), so that spellings which compile alike compare equal.
    public static func reconstruct(_ live: Ruleset, readBack: (Ruleset) -> Ruleset) -> ReconstructedCapture? {
        guard !live.tables.isEmpty else { return nil }
        let base = guess(live)
        // IPv6 rules depend on the pod's addresses and `--dual-stack`, not on a flag of their own: try both.
        var candidates: [CaptureConfig] = [base]
        var other = base
        other.enableIPv6.toggle()
        candidates.append(other)
        let target = withoutComments(live)
        var best: (config: CaptureConfig, difference: String?)?
        for candidate in candidates {
            let built = withoutComments(readBack(RulesetBuilder.build(candidate)))
            let difference = firstDifference(built, target)
            if difference == nil { best = (candidate, nil); break }
            if best == nil { best = (candidate, difference) }
        }
        guard let best else { return nil }
        let (arguments, environment) = flags(for: best.config)
        return ReconstructedCapture(config: best.config, arguments: arguments, environment: environment, difference: best.difference)
    }

    // MARK: Reading the flags off the rules

    static func guess(_ ruleset: Ruleset) -> CaptureConfig {
        var config = CaptureConfig()
        let nat = ruleset.table(named: RulesetBuilder.natTable)
        let mangle = ruleset.table(named: RulesetBuilder.mangleTable)
        func rules(_ table: Table?, _ chain: String) -> [Rule] { table?.chain(named: chain)?.rules ?? [] }
        func set(_ table: Table?, _ name: String) -> NamedSet.Elements? { table?.sets.first { $0.name == name }?.elements }
        func ports(_ table: Table?, _ name: String) -> [UInt16]? {
            if case .ports(let ports)? = set(table, name) { return ports }
            return nil
        }
        func prefixes(_ table: Table?, _ prefix: String) -> [CIDR] {
            IPFamily.allCases.flatMap { family -> [CIDR] in
                if case .addresses(_, let ranges)? = set(table, "\(prefix)-\(family.rawValue)") { return ranges.flatMap(\.prefixes) }
                return []
            }
        }
        func redirectPort(_ chain: [Rule]) -> UInt16? {
            for rule in chain { for case .redirect(let port) in rule.statements { return port } }
            return nil
        }

        if let port = redirectPort(rules(nat, NatChain.istioRedirect)) { config.proxyPort = port }
        if let port = redirectPort(rules(nat, NatChain.istioInRedirect)) { config.inboundCapturePort = port }
        for rule in rules(nat, NatChain.istioInbound) {
            if case .destinationPort(.tcp, let port, false)? = rule.matches.last, rule.statements.last == .verdict(.return) {
                config.inboundTunnelPort = port
                break
            }
        }

        // The proxy owners: the bare `skuid U return` / `skgid G return` rules, in order.
        let output = rules(nat, NatChain.istioOutput)
        var uids: [UInt32] = [], gids: [UInt32] = []
        for rule in output where rule.statements.last == .verdict(.return) && rule.matches.count == 1 {
            switch rule.matches[0] {
            case .socketUID(let uid, false): uids.append(uid)
            case .socketGID(let gid, false): gids.append(gid)
            default: break
            }
        }
        // Excluded owner groups write the same bare rule; they come after the proxy triplets and say so.
        let excludedGroups = output.filter { $0.comment.hasPrefix("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE") }
            .compactMap { rule -> UInt32? in if case .socketGID(let gid, false)? = rule.matches.first { return gid }; return nil }
        gids.removeAll { excludedGroups.contains($0) }
        if !uids.isEmpty { config.proxyUIDs = uids }
        config.proxyGIDs = gids.isEmpty ? config.proxyUIDs : gids
        if !excludedGroups.isEmpty {
            config.ownerGroups = .allExcept(excludedGroups)
        } else if let only = output.first(where: { $0.comment.hasPrefix("ISTIO_OUTBOUND_OWNER_GROUPS:") }) {
            config.ownerGroups = .only(only.matches.compactMap { match -> UInt32? in
                if case .socketGID(let gid, true) = match { return gid }
                return nil
            })
        }

        // Inbound: REDIRECT in nat, or TPROXY in mangle.
        // TPROXY writes its mark rules even with `-b ""`, so the mark's save to the connection tells the mode.
        let tproxy = mangle?.chains.contains { chain in
            chain.rules.contains { rule in
                rule.statements.contains { statement in
                    switch statement {
                    case .tproxy, .saveMarkToConnection: true
                    default: false
                    }
                }
            }
        } ?? false
        let inboundTable = tproxy ? mangle : nat
        if tproxy {
            config.interceptionMode = .tproxy
            for rule in rules(mangle, MangleChain.istioTproxy) {
                for case .tproxy(_, let port) in rule.statements { config.inboundCapturePort = port }
            }
            for rule in rules(mangle, MangleChain.istioDivert) {
                for case .setPacketMark(let mark) in rule.statements { config.tproxyMark = mark }
            }
        }
        let hooksInbound = rules(inboundTable, "prerouting").contains { $0.jumpTarget == "istio-inbound" }
        if hooksInbound {
            let capturesAll = rules(inboundTable, "istio-inbound").contains { rule in
                rule.matches == [.transportProtocol(.tcp)] && (rule.jumpTarget == NatChain.istioInRedirect || rule.jumpTarget == MangleChain.istioTproxy)
            }
            if capturesAll {
                config.inboundPorts = .all
                config.inboundExcludedPorts = ports(inboundTable, "inbound-exclude-ports") ?? []
            } else {
                config.inboundPorts = .only(ports(inboundTable, "inbound-ports") ?? [])
            }
        } else if tproxy {
            config.inboundPorts = .none
        }

        // Interfaces: `-c` returns both ways; `-k` only returns (or redirects) what arrives.
        let leaving = Set(rules(nat, "output").compactMap { rule -> String? in
            if case .outputInterface(let name)? = rule.matches.first, rule.matches.count == 1 { return name }
            return nil
        })
        for rule in rules(nat, "prerouting") where rule.matches.count == 1 && rule.statements.last == .verdict(.return) {
            guard case .inputInterface(let name) = rule.matches[0] else { continue }
            if leaving.contains(name) {
                if !config.excludedInterfaces.contains(name) { config.excludedInterfaces.append(name) }
            } else if !config.virtualInterfaces.contains(name) {
                config.virtualInterfaces.insert(name, at: 0)   // inserted at the top, so listed newest first
            }
        }

        // Outbound.
        if output.contains(where: { $0.matches.isEmpty && $0.jumpTarget == NatChain.istioRedirect }) {
            config.outboundDestinations = .all
        } else {
            let included = prefixes(nat, "outbound-include")
            if !included.isEmpty { config.outboundDestinations = .only(included) }
        }
        config.outboundExcludedCIDRs = prefixes(nat, "outbound-exclude")
        config.outboundIncludedPorts = ports(nat, "outbound-include-ports") ?? []
        config.outboundExcludedPorts = ports(nat, "outbound-exclude-ports") ?? []
        for rule in output where rule.statements.last == .verdict(.return) && rule.matches.count == 1 {
            if case .destinationAddress(let cidr, false) = rule.matches[0], cidr.family == .ipv4, rule.comment.contains("localhost") {
                config.ipv4LoopbackCIDR = cidr
            }
        }

        // DNS.
        let dnsRules = rules(nat, NatChain.istioOutputDNS)
        if !dnsRules.isEmpty {
            var servers: [IPAddress] = []
            var captureAll = false
            for rule in dnsRules {
                if case .destinationAddress(let cidr, false)? = rule.matches.first {
                    if !servers.contains(cidr.address) { servers.append(cidr.address) }
                } else {
                    captureAll = true
                }
            }
            config.dns = CaptureConfig.DNSCapture(captureAll: captureAll, servers: captureAll ? [] : servers)
        }
        config.dropInvalid = mangle?.chain(named: MangleChain.istioDrop) != nil
        config.enableIPv6 = output.contains { rule in
            rule.matches.contains { if case .sourceAddress(let cidr, false) = $0 { cidr.family == .ipv6 } else { false } }
        }
        return config
    }

    // MARK: Writing the flags

    static func flags(for config: CaptureConfig) -> ([String], [ReconstructedCapture.EnvironmentVariable]) {
        func list<T>(_ values: [T]) -> String { values.map { "\($0)" }.joined(separator: ",") }
        var arguments = ["-p", "\(config.proxyPort)", "-z", "\(config.inboundCapturePort)"]
        if config.inboundTunnelPort != 15008 { arguments += ["-e", "\(config.inboundTunnelPort)"] }
        arguments += ["-u", list(config.proxyUIDs)]
        if config.proxyGIDs != config.proxyUIDs { arguments += ["-g", list(config.proxyGIDs)] }
        arguments += ["-m", config.interceptionMode.rawValue]
        if config.interceptionMode == .tproxy && config.tproxyMark != 1337 { arguments += ["-t", "\(config.tproxyMark)"] }
        switch config.outboundDestinations {
        case .all: arguments += ["-i", "*"]
        case .only(let cidrs): arguments += ["-i", list(cidrs)]
        case .none: arguments += ["-i", ""]
        }
        arguments += ["-x", list(config.outboundExcludedCIDRs)]
        switch config.inboundPorts {
        case .all: arguments += ["-b", "*"]
        case .only(let ports): arguments += ["-b", ports.isEmpty ? "," : list(ports)]
        case .none: arguments += ["-b", ""]
        }
        arguments += ["-d", list(config.inboundExcludedPorts)]
        if !config.outboundIncludedPorts.isEmpty { arguments += ["-q", list(config.outboundIncludedPorts)] }
        if !config.outboundExcludedPorts.isEmpty { arguments += ["-o", list(config.outboundExcludedPorts)] }
        if !config.excludedInterfaces.isEmpty { arguments += ["-c", list(config.excludedInterfaces)] }
        if !config.virtualInterfaces.isEmpty { arguments += ["-k", list(config.virtualInterfaces)] }
        if let dns = config.dns {
            arguments.append("--redirect-dns")
            if dns.captureAll { arguments.append("--capture-all-dns") }
        }
        if config.dropInvalid { arguments.append("--drop-invalid") }
        if config.enableIPv6 { arguments.append("--dual-stack") }
        var environment: [ReconstructedCapture.EnvironmentVariable] = []
        switch config.ownerGroups {
        case .all: break
        case .only(let groups): environment.append(.init(name: "ISTIO_OUTBOUND_OWNER_GROUPS", value: list(groups)))
        case .allExcept(let groups): environment.append(.init(name: "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", value: list(groups)))
        }
        if config.ipv4LoopbackCIDR != CIDR("127.0.0.1/32")! {
            environment.append(.init(name: "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", value: "\(config.ipv4LoopbackCIDR)"))
        }
        return (arguments, environment)
    }

    // MARK: Comparing

    public static func withoutComments(_ ruleset: Ruleset) -> Ruleset {
        var result = ruleset
        for index in result.tables.indices { result.tables[index].comment = nil }
        return result
    }

    /// The first difference between two rulesets, in words: a table, a set, a chain or a rule.
    public static func firstDifference(_ planned: Ruleset, _ live: Ruleset) -> String? {
        for name in Ruleset.ownedTableNames {
            let want = planned.table(named: name), have = live.table(named: name)
            switch (want, have) {
            case (nil, nil): continue
            case (nil, .some): return "table inet \(name) is in the kernel but not in the plan"
            case (.some, nil): return "table inet \(name) is planned but not in the kernel"
            case (.some(let want), .some(let have)):
                for set in want.sets where !have.sets.contains(set) {
                    return "set \(name)/\(set.name) differs or is missing in the kernel"
                }
                for set in have.sets where !want.sets.contains(where: { $0.name == set.name }) {
                    return "set \(name)/\(set.name) is in the kernel but not in the plan"
                }
                for chain in want.chains {
                    guard let held = have.chain(named: chain.name) else { return "chain \(name)/\(chain.name) is missing in the kernel" }
                    if held.base != chain.base { return "chain \(name)/\(chain.name) is hooked differently" }
                    for index in 0..<max(chain.rules.count, held.rules.count) {
                        let planned = index < chain.rules.count ? chain.rules[index] : nil
                        let kernel = index < held.rules.count ? held.rules[index] : nil
                        guard planned != kernel else { continue }
                        return "\(name)/\(chain.name) rule \(index + 1): planned "
                            + (planned.map { "`\(NftTextRenderer.render($0))`" } ?? "nothing")
                            + ", kernel has " + (kernel.map { "`\(NftTextRenderer.render($0))`" } ?? "nothing")
                    }
                }
                for chain in have.chains where want.chain(named: chain.name) == nil {
                    return "chain \(name)/\(chain.name) is in the kernel but not in the plan"
                }
            }
        }
        return nil
    }
}
