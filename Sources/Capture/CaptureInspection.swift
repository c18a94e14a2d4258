/// What `sluice-init inspect` found in a network namespace, and what it means: the live tables with
/// their counters, the flags they correspond to, and warnings about everything known to break capture.
/// Built from facts the kernel edge gathered; pure, so every warning is tested without a kernel.
public struct CaptureInspection: Sendable {
    /// The facts the report is made of.
    public struct Facts: Sendable {
        public var kernel: KernelRuleset
        /// iptables-legacy tables registered in the namespace (`/proc/net/ip_tables_names`, `ip6_tables_names`).
        public var legacyTables: [LegacyTable]
        /// Addresses on `lo` (`::6` must be there for the IPv6 inbound passthrough).
        public var loopbackAddresses: [IPAddress]
        /// `ip rule` entries with an fwmark, as (mark, table).
        public var fwmarkRules: [(mark: UInt32, table: UInt32)]
        /// The pod's resolv.conf nameservers, nil when it could not be read.
        public var nameservers: [IPAddress]?
        /// Where the nameservers came from, for the warning.
        public var resolvConfPath: String

        public init(kernel: KernelRuleset, legacyTables: [LegacyTable] = [], loopbackAddresses: [IPAddress] = [],
                    fwmarkRules: [(mark: UInt32, table: UInt32)] = [], nameservers: [IPAddress]? = nil,
                    resolvConfPath: String = "/etc/resolv.conf") {
            self.kernel = kernel
            self.legacyTables = legacyTables
            self.loopbackAddresses = loopbackAddresses
            self.fwmarkRules = fwmarkRules
            self.nameservers = nameservers
            self.resolvConfPath = resolvConfPath
        }
    }

    public struct Warning: Sendable, Hashable, CustomStringConvertible {
        /// A short stable identifier, for `--json` consumers: `legacy-iptables`, `competing-nat`, …
        public var kind: String
        public var message: String
        public var description: String { message }
    }

    public var facts: Facts
    public var reconstruction: ReconstructedCapture?
    public var warnings: [Warning]

    public init(facts: Facts, readBack: (Ruleset) -> Ruleset) {
        self.facts = facts
        let (ruleset, unknown) = facts.kernel.walkableRuleset()
        reconstruction = unknown.isEmpty ? CaptureReconstruction.reconstruct(ruleset, readBack: readBack) : nil
        warnings = Self.warnings(facts, ruleset: ruleset, unknownRules: unknown.count)
    }

    // MARK: Warnings

    static func warnings(_ facts: Facts, ruleset: Ruleset, unknownRules: Int) -> [Warning] {
        var warnings: [Warning] = []
        let owned = facts.kernel.ownedTables
        if owned.isEmpty {
            warnings.append(Warning(kind: "no-capture", message:
                "no istio-proxy tables: nothing in this network namespace redirects traffic to the sidecar "
                + "(run sluice-init with the pod's flags, or check that the init container ran here)"))
        }
        if unknownRules > 0 {
            warnings.append(Warning(kind: "undecoded-rules", message:
                "\(unknownRules) rule(s) of the istio-proxy tables use expressions outside Sluice's vocabulary "
                + "(shown as netlink expressions); explain stops where a packet reaches one"))
        }
        for table in facts.legacyTables where table.ruleCount > 0 {
            let chains = table.chains.filter { !$0.rules.isEmpty }.map { "\($0.name): \($0.rules.count)" }.joined(separator: ", ")
            warnings.append(Warning(kind: "legacy-iptables", message:
                "iptables-legacy \(table.family == .ipv4 ? "IPv4" : "IPv6") table \(table.name) holds \(table.ruleCount) rule(s) "
                + "(\(chains)). Legacy rules run on their own hooks beside nftables, invisible to `nft list ruleset`: "
                + "a legacy nat rule can take a connection before or after Sluice's (istio#15519). "
                + "Remove them (`\(table.family == .ipv4 ? "iptables" : "ip6tables")-legacy -t \(table.name) -F`) or program "
                + "every rule through one backend"))
        }
        for table in facts.kernel.foreignTables where ["ip", "ip6", "inet"].contains(table.family) {
            for chain in table.chains {
                guard let hook = chain.hook, hook.type == "nat", hook.hook == "prerouting" || hook.hook == "output" else { continue }
                let ours = owned.first { $0.name == RulesetBuilder.natTable }?.chains.first { $0.hook?.hook == hook.hook }?.hook?.priority
                let when: String
                if let ours {
                    guard hook.priority <= ours else {
                        warnings.append(Warning(kind: "foreign-nat", message:
                            "\(table.qualifiedName) chain \(chain.name) also does NAT on \(hook.hook) (priority \(hook.priority), "
                            + "after Sluice's \(ours)); it sees only connections Sluice's rules did not redirect"))
                        continue
                    }
                    when = hook.priority < ours ? "before Sluice's (\(ours))" : "at the same priority as Sluice's (\(ours)), in an order the kernel does not promise"
                } else {
                    when = "and Sluice has no nat chain there"
                }
                warnings.append(Warning(kind: "competing-nat", message:
                    "\(table.qualifiedName) chain \(chain.name) does NAT on \(hook.hook) at priority \(hook.priority), \(when): "
                    + "the first nat chain that rewrites a connection wins and later ones are skipped for it, so its "
                    + "\(chain.rules.count) rule(s) can take connections away from the sidecar"))
            }
        }

        let rules = ruleset.tables.flatMap(\.chains).flatMap(\.rules)
        let usesTproxy = rules.contains { $0.statements.contains { if case .tproxy = $0 { true } else { false } } }
        if usesTproxy {
            let marks = ruleset.tables.flatMap(\.chains).filter { $0.name == MangleChain.istioDivert }.flatMap(\.rules)
                .flatMap(\.statements).compactMap { statement -> UInt32? in
                    if case .setPacketMark(let mark) = statement { return mark }
                    return nil
                }
            for mark in Set(marks).sorted() where !facts.fwmarkRules.contains(where: { $0.mark == mark }) {
                warnings.append(Warning(kind: "tproxy-route", message:
                    "TPROXY marks inbound packets \(mark) but no `ip rule fwmark \(mark) lookup <table>` exists: marked packets "
                    + "are not routed to lo, so inbound connections stall (re-run sluice-init with the same flags)"))
            }
        }
        let ipv6Passthrough = rules.contains { rule in
            rule.matches.contains { $0 == .sourceAddress(IPAddress.passthroughSource(.ipv6).hostPrefix, negated: false) }
        }
        if ipv6Passthrough && !facts.loopbackAddresses.contains(IPAddress.passthroughSource(.ipv6)) {
            warnings.append(Warning(kind: "missing-ipv6-passthrough", message:
                "IPv6 capture is on but ::6 is not assigned to lo: the proxy cannot bind ::6 to forward inbound IPv6 "
                + "connections to the app (they fail with EADDRNOTAVAIL); re-run sluice-init, which adds it"))
        }

        let dnsRules = ruleset.table(named: RulesetBuilder.natTable)?.chain(named: NatChain.istioOutputDNS)?.rules ?? []
        let dnsRedirects = dnsRules.filter { $0.statements.contains { if case .redirect = $0 { true } else { false } } }
        let capturedServers = Set(dnsRedirects.compactMap { rule -> IPAddress? in
            if case .destinationAddress(let cidr, false)? = rule.matches.first { return cidr.address }
            return nil
        })
        let capturesAllDNS = dnsRedirects.contains { rule in
            !rule.matches.contains { if case .destinationAddress = $0 { true } else { false } }
        }
        let zones = ruleset.table(named: RulesetBuilder.rawTable) != nil
        if zones && dnsRedirects.isEmpty {
            warnings.append(Warning(kind: "dns-not-captured", message:
                "DNS conntrack zones are set but no rule redirects DNS to the agent: DNS capture is on with no resolver captured"))
        }
        if !dnsRedirects.isEmpty && !capturesAllDNS, let nameservers = facts.nameservers {
            let missed = nameservers.filter { !capturedServers.contains($0) }
            if !missed.isEmpty {
                let which = missed.count == nameservers.count ? "none of" : "not all of"
                warnings.append(Warning(kind: "dns-not-captured", message:
                    "DNS capture is on but \(which) \(facts.resolvConfPath)'s nameservers are captured: "
                    + "\(missed.map(\.description).joined(separator: ", ")) not in the rules (captured: "
                    + "\(capturedServers.sorted().map(\.description).joined(separator: ", "))); queries to them bypass the agent. "
                    + "resolv.conf changed after sluice-init ran: re-run it, or use --capture-all-dns"))
            }
        }
        return warnings
    }
}

/// An iptables-legacy table as read through `IPT_SO_GET_ENTRIES`.
public struct LegacyTable: Sendable, Hashable {
    public var family: IPFamily
    public var name: String
    public var chains: [LegacyChain]

    public init(family: IPFamily, name: String, chains: [LegacyChain]) {
        self.family = family
        self.name = name
        self.chains = chains
    }

    public var ruleCount: Int { chains.reduce(0) { $0 + $1.rules.count } }
}

public struct LegacyChain: Sendable, Hashable {
    public var name: String
    /// `ACCEPT`/`DROP` for a built-in chain, nil for a user chain.
    public var policy: String?
    public var rules: [LegacyRule]

    public init(name: String, policy: String?, rules: [LegacyRule]) {
        self.name = name
        self.policy = policy
        self.rules = rules
    }
}

public struct LegacyRule: Sendable, Hashable {
    /// In iptables-save's words: `-p tcp -m owner -j REDIRECT`.
    public var text: String
    public var counter: RuleCounter

    public init(text: String, counter: RuleCounter) {
        self.text = text
        self.counter = counter
    }
}
