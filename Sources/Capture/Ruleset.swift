/// The ruleset as plain values: what `sluice-init` programs, renders for `--dry-run`, and (later) reads
/// back from the kernel. Every table is of the `inet` family, so one table serves IPv4 and IPv6.
///
/// The vocabulary is deliberately small: exactly the matches and statements Istio's capture rules use,
/// each with one nft spelling (see `NftTextRenderer`) and one netlink encoding (see `Netfilter`).
public struct Ruleset: Sendable, Hashable {
    public var tables: [Table]

    public init(tables: [Table]) { self.tables = tables }

    /// The tables Sluice owns: the names Istio's native-nftables mode uses, so `--cleanup-only` of either
    /// tool removes the other's rules and a pod never ends up with both.
    public static let ownedTableNames = [RulesetBuilder.natTable, RulesetBuilder.mangleTable, RulesetBuilder.rawTable]

    public func table(named name: String) -> Table? { tables.first { $0.name == name } }

    public var ruleCount: Int { tables.reduce(0) { $0 + $1.ruleCount } }
}

public struct Table: Sendable, Hashable {
    public var name: String
    /// Shown by `nft list ruleset`; Sluice stamps its tables with the ruleset's fingerprint here.
    public var comment: String?
    public var sets: [NamedSet]
    public var chains: [Chain]

    public init(name: String, comment: String? = nil, sets: [NamedSet] = [], chains: [Chain] = []) {
        self.name = name
        self.comment = comment
        self.sets = sets
        self.chains = chains
    }

    public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }

    public var ruleCount: Int { chains.reduce(0) { $0 + $1.rules.count } }
}

public struct Chain: Sendable, Hashable {
    public var name: String
    /// Set for chains attached to a netfilter hook; nil for regular chains reached by `jump`.
    public var base: BaseChain?
    public var rules: [Rule]

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = []) {
        self.name = name
        self.base = base
        self.rules = rules
    }
}

public struct BaseChain: Sendable, Hashable {
    public enum ChainType: String, Sendable { case nat, filter, route }
    public enum Hook: String, Sendable { case prerouting, output }

    public var type: ChainType
    public var hook: Hook
    public var priority: Int32

    public init(type: ChainType, hook: Hook, priority: Int32) {
        self.type = type
        self.hook = hook
        self.priority = priority
    }
}

/// A named set in a table. Lists of CIDRs become interval sets and lists of ports plain sets, so a
/// list of 10,000 entries costs one lookup per packet instead of 10,000 rules.
public struct NamedSet: Sendable, Hashable {
    public enum Elements: Sendable, Hashable {
        /// Interval set of addresses (`type ipv4_addr; flags interval`), ranges sorted and disjoint.
        case addresses(IPFamily, [AddressRange])
        /// Set of TCP/UDP ports (`type inet_service`), sorted and unique.
        case ports([UInt16])
    }

    public var name: String
    public var elements: Elements

    public init(name: String, elements: Elements) {
        self.name = name
        self.elements = elements
    }
}

public enum TransportProtocol: String, Sendable, Hashable {
    case tcp
    case udp

    /// IANA protocol number (`meta l4proto`).
    public var number: UInt8 { self == .tcp ? 6 : 17 }
}

/// Conntrack states as the kernel's bit mask (`ct state`).
public struct ConnectionStates: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let invalid = ConnectionStates(rawValue: 1 << 0)
    public static let established = ConnectionStates(rawValue: 1 << 1)
    public static let related = ConnectionStates(rawValue: 1 << 2)
    public static let new = ConnectionStates(rawValue: 1 << 3)
    public static let untracked = ConnectionStates(rawValue: 1 << 6)
}

/// One condition of a rule. All conditions of a rule must hold (logical AND), in order.
public enum Match: Sendable, Hashable {
    /// `meta l4proto tcp`
    case transportProtocol(TransportProtocol)
    /// `iifname "eth1"`: the exact name, or every name with the prefix when it ends in `*` (`"veth*"`)
    case inputInterface(String)
    /// `oifname "lo"`: exact, or a prefix when it ends in `*`
    case outputInterface(String)
    /// `ip saddr 127.0.0.6/32`, `ip6 saddr != ::6/128`
    case sourceAddress(CIDR, negated: Bool)
    /// `ip daddr 127.0.0.1/32`, `ip daddr != 127.0.0.1/32`
    case destinationAddress(CIDR, negated: Bool)
    /// `ip daddr @set` (an address set of that family in the same table)
    case destinationAddressInSet(IPFamily, set: String)
    /// `tcp dport 53`, `tcp dport != 15008`
    case destinationPort(TransportProtocol, UInt16, negated: Bool)
    /// `tcp dport @set` (a port set in the same table)
    case destinationPortInSet(TransportProtocol, set: String)
    /// `udp sport 53`
    case sourcePort(TransportProtocol, UInt16)
    /// `skuid 1337`, `skuid != 1337`: the UID owning the sending socket.
    case socketUID(UInt32, negated: Bool)
    /// `skgid 1337`, `skgid != 1337`: the GID owning the sending socket.
    case socketGID(UInt32, negated: Bool)
    /// `ct state related,established`: any of the states.
    case connectionState(ConnectionStates)
    /// `mark 1337`, `mark != 1338`
    case packetMark(UInt32, negated: Bool)
    /// `ct mark 1337`
    case connectionMark(UInt32)
}

public enum Verdict: Sendable, Hashable {
    case accept
    case drop
    /// Leave this chain; in a base chain, fall through to its policy (accept).
    case `return`
    case jump(String)
}

/// What a rule does once its matches hold, in order. A verdict, if any, comes last.
public enum Statement: Sendable, Hashable {
    /// `counter`: packets and bytes, shown by `sluice-init inspect` and `nft list ruleset`.
    case counter
    /// `redirect to :15001`: DNAT to the local address of the incoming interface, keeping the original
    /// destination for `SO_ORIGINAL_DST`.
    case redirect(toPort: UInt16)
    /// `tproxy ip to :15006`: deliver to the local transparent listener without rewriting the packet.
    case tproxy(IPFamily, toPort: UInt16)
    /// `ct zone set 1`
    case setConntrackZone(UInt16)
    /// `meta mark set 1338`
    case setPacketMark(UInt32)
    /// `ct mark set mark`
    case saveMarkToConnection
    /// `meta mark set ct mark`
    case restoreMarkFromConnection
    case verdict(Verdict)
}

public struct Rule: Sendable, Hashable {
    public var matches: [Match]
    public var statements: [Statement]
    /// Why the rule exists, in a user's words; stored in the kernel as the rule's comment.
    public var comment: String

    public init(_ matches: [Match], _ statements: [Statement], comment: String) {
        self.matches = matches
        self.statements = statements
        self.comment = comment
    }

    /// The chain this rule jumps to, if any.
    public var jumpTarget: String? {
        for case .verdict(.jump(let target)) in statements { return target }
        return nil
    }
}
