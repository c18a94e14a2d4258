/// Every nftables table a network namespace holds, as `sluice-init inspect` reads it: Sluice's (or
/// Istio's) own tables decoded into the ruleset model, and everyone else's kept as text, so that the
/// debugging commands can show, walk and compare them without touching the kernel again.
public struct KernelRuleset: Sendable, Hashable {
    public var tables: [KernelTable]

    public init(tables: [KernelTable]) { self.tables = tables }

    /// The `inet istio-proxy-*` tables, in `Ruleset.ownedTableNames` order.
    public var ownedTables: [KernelTable] {
        Ruleset.ownedTableNames.compactMap { name in tables.first { $0.isOwned && $0.name == name } }
    }

    /// Tables of other programs: iptables-nft's `ip nat`, kube-proxy's, a CNI's, a hand-made one.
    public var foreignTables: [KernelTable] { tables.filter { !$0.isOwned } }

    /// The owned tables as the walker's model. A rule that did not decode keeps its place as an empty
    /// rule, and its location is returned so a walk that reaches it stops instead of guessing; a set
    /// that did not decode is left out, so a lookup in it finds nothing.
    public func walkableRuleset() -> (ruleset: Ruleset, unknownRules: Set<RuleLocation>) {
        var unknown: Set<RuleLocation> = []
        let tables = ownedTables.map { table in
            Table(name: table.name, comment: table.comment, sets: table.sets.compactMap(\.contents),
                  chains: table.chains.map { chain in
                      Chain(name: chain.name, base: chain.hook?.baseChain,
                            rules: chain.rules.enumerated().map { index, rule in
                                if let decoded = rule.rule { return decoded }
                                unknown.insert(RuleLocation(table: table.name, chain: chain.name, index: index))
                                return Rule([], [], comment: rule.comment ?? "")
                            })
                  })
        }
        return (Ruleset(tables: tables), unknown)
    }
}

public struct KernelTable: Sendable, Hashable {
    /// `inet`, `ip`, `ip6`, `arp`, `bridge` or `netdev`.
    public var family: String
    public var name: String
    public var comment: String?
    public var sets: [KernelSet]
    public var chains: [KernelChain]

    public init(family: String, name: String, comment: String? = nil, sets: [KernelSet] = [], chains: [KernelChain] = []) {
        self.family = family
        self.name = name
        self.comment = comment
        self.sets = sets
        self.chains = chains
    }

    /// One of the tables Sluice and Istio's native-nftables mode share.
    public var isOwned: Bool { family == "inet" && Ruleset.ownedTableNames.contains(name) }

    /// `inet istio-proxy-nat`, as nft names a table.
    public var qualifiedName: String { "\(family) \(name)" }

    public func chain(named name: String) -> KernelChain? { chains.first { $0.name == name } }

    public var ruleCount: Int { chains.reduce(0) { $0 + $1.rules.count } }
}

public struct KernelSet: Sendable, Hashable {
    public var name: String
    /// The elements in Sluice's model; nil for a set of another kind (a map, other key types).
    public var contents: NamedSet?
    /// `type inet_service`, `type ipv4_addr; flags interval`.
    public var declaration: String

    public init(name: String, contents: NamedSet?, declaration: String) {
        self.name = name
        self.contents = contents
        self.declaration = declaration
    }
}

public struct KernelChain: Sendable, Hashable {
    public var name: String
    /// Set for a base chain; nil for a regular chain reached by `jump`/`goto`.
    public var hook: KernelHook?
    public var rules: [KernelRule]

    public init(name: String, hook: KernelHook? = nil, rules: [KernelRule] = []) {
        self.name = name
        self.hook = hook
        self.rules = rules
    }
}

/// Where a base chain is attached, in nft's words.
public struct KernelHook: Sendable, Hashable {
    /// `nat`, `filter` or `route`.
    public var type: String
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`, `ingress`.
    public var hook: String
    public var priority: Int32
    /// `accept` or `drop`.
    public var policy: String

    public init(type: String, hook: String, priority: Int32, policy: String) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }

    /// The model's base chain, nil for a hook or type Sluice never programs (the walker then ignores it).
    public var baseChain: BaseChain? {
        guard let type = BaseChain.ChainType(rawValue: type), let hook = BaseChain.Hook(rawValue: hook) else { return nil }
        return BaseChain(type: type, hook: hook, priority: priority)
    }

    /// `type nat hook output priority -100; policy accept`
    public var description: String { "type \(type) hook \(hook) priority \(priority); policy \(policy)" }
}

public struct KernelRule: Sendable, Hashable {
    /// The kernel's handle: stable for the rule's life, what `nft delete rule … handle N` and trace events name.
    public var handle: UInt64
    /// The rule in Sluice's vocabulary; nil when it uses an expression outside it.
    public var rule: Rule?
    /// The rule as nft text when decoded, otherwise libnftnl's expression listing.
    public var text: String
    public var comment: String?
    /// The rule's `counter`, nil when it has none.
    public var counter: RuleCounter?

    public init(handle: UInt64, rule: Rule?, text: String, comment: String?, counter: RuleCounter?) {
        self.handle = handle
        self.rule = rule
        self.text = text
        self.comment = comment
        self.counter = counter
    }
}

public struct RuleCounter: Sendable, Hashable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
}
