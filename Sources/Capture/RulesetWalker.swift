/// `sluice-init explain`'s engine: where one packet goes under a ruleset, rule by rule, as the kernel's
/// netfilter would take it. Pure: the rules, the namespace's addresses and the packet are all given.
///
/// The walk follows the kernel, not intuition (it is checked against real packets on every probe of
/// the conformance matrix):
/// - a locally sent packet runs the `output` base chains, then, when its destination is local, comes
///   back in through `lo` and runs the `prerouting` base chains without a socket and without NAT (NAT
///   is decided once per connection, at the first hook that sees it);
/// - an arriving packet runs the `prerouting` base chains;
/// - base chains of a hook run in priority order, except that every nat chain runs at the NAT core's
///   fixed place (priority -100 on these hooks), where the nat chains among themselves go by priority;
/// - a `redirect` ends NAT for the connection: later nat chains of the hook are skipped, other chains
///   still run.
public struct RulesetWalker: Sendable {
    public let ruleset: Ruleset
    public let unknownRules: Set<RuleLocation>
    public let environment: WalkEnvironment

    /// `unknownRules`: rules read from the kernel that could not be decoded (their place in `ruleset` holds
    /// an empty placeholder rule); reaching one ends the walk as `.undetermined`.
    public init(ruleset: Ruleset, unknownRules: Set<RuleLocation> = [], environment: WalkEnvironment) {
        self.ruleset = ruleset
        self.unknownRules = unknownRules
        self.environment = environment
    }

    public func walk(_ probe: PacketProbe) -> PacketWalk {
        var walk = WalkInProgress(walker: self, probe: probe)
        let fate = walk.run()
        return PacketWalk(probe: probe, steps: walk.steps, fate: fate, notes: walk.notes)
    }

    /// The base chains attached to `hook`, in the order the kernel runs them.
    func baseChains(for hook: BaseChain.Hook) -> [BaseChainReference] {
        var chains: [BaseChainReference] = []
        for (tableIndex, table) in ruleset.tables.enumerated() {
            for (chainIndex, chain) in table.chains.enumerated() {
                guard let base = chain.base, base.hook == hook else { continue }
                chains.append(BaseChainReference(tableIndex: tableIndex, chainIndex: chainIndex, base: base))
            }
        }
        // A stable sort keeps ties in table order, the order Sluice registers them in (the kernel puts a
        // chain after those already registered at the same priority).
        return chains.enumerated().sorted { left, right in
            let leftKey = left.element.sortKey, rightKey = right.element.sortKey
            if leftKey != rightKey { return leftKey.lexicographicallyPrecedes(rightKey) }
            return left.offset < right.offset
        }.map(\.element)
    }
}

/// Where a rule sits: table name, chain name, 0-based index in the chain.
public struct RuleLocation: Sendable, Hashable, CustomStringConvertible {
    public var table: String
    public var chain: String
    public var index: Int

    public init(table: String, chain: String, index: Int) {
        self.table = table
        self.chain = chain
        self.index = index
    }

    /// "istio-output rule 9": 1-based, as people count rules and as `inspect` numbers them.
    public var description: String { "\(chain) rule \(index + 1)" }

    /// "istio-proxy-nat/istio-output rule 9".
    public var qualifiedDescription: String { "\(table)/\(description)" }
}

/// The packet `explain` asks about: the first packet of a connection (or one datagram) unless told otherwise.
public struct PacketProbe: Sendable, Hashable {
    public enum Origin: Sendable, Hashable {
        /// Sent by a process in this network namespace: the sending socket's owner, and the interface the
        /// route lookup chose (before any NAT): "eth0", or "lo" for a local destination.
        case local(uid: UInt32, gid: UInt32, outputInterface: String)
        /// Arriving from outside on `inputInterface`.
        case arriving(inputInterface: String)
    }

    public var transport: TransportProtocol
    /// The caller fills in the route's preferred source and a port.
    public var source: Endpoint
    public var destination: Endpoint
    public var origin: Origin
    public var mark: UInt32
    /// One state bit; `.new` for the first packet of a connection.
    public var connectionState: ConnectionStates
    public var connectionMark: UInt32

    public init(transport: TransportProtocol, source: Endpoint, destination: Endpoint, origin: Origin,
                mark: UInt32 = 0, connectionState: ConnectionStates = .new, connectionMark: UInt32 = 0) {
        self.transport = transport
        self.source = source
        self.destination = destination
        self.origin = origin
        self.mark = mark
        self.connectionState = connectionState
        self.connectionMark = connectionMark
    }
}

/// What the walker must know about the namespace besides the rules.
public struct WalkEnvironment: Sendable, Hashable {
    /// Addresses assigned to each interface, in the kernel's order (the first of a family is the one
    /// REDIRECT in prerouting rewrites to).
    public var interfaceAddresses: [String: [IPAddress]]

    public init(interfaceAddresses: [String: [IPAddress]] = [:]) {
        self.interfaceAddresses = interfaceAddresses
    }

    /// Local: assigned to any interface, or loopback (127/8, ::1).
    public func isLocal(_ address: IPAddress) -> Bool {
        address.isLoopback || interfaceAddresses.values.contains { $0.contains(address) }
    }

    /// The address `redirect` in prerouting rewrites a packet for `destination` arriving on `interface`
    /// to. IPv4: the interface's first address (`nf_nat_redirect_ipv4`). IPv6: its first address of the
    /// destination's scope (`nf_nat_redirect_ipv6`), so a global destination never gets the link-local
    /// address. nil: the kernel drops the packet.
    func redirectAddress(arrivingOn interface: String, for destination: IPAddress) -> IPAddress? {
        let candidates = (interfaceAddresses[interface] ?? []).filter { $0.family == destination.family }
        guard destination.family == .ipv6 else { return candidates.first }
        let scope = IPv6Scope(destination)
        return candidates.first { IPv6Scope($0) == scope }
    }
}

/// The scope classes the kernel's `ipv6_addr_scope` tells apart for unicast addresses.
private enum IPv6Scope: Equatable {
    case global, site, link, loopback

    init(_ address: IPAddress) {
        let bytes = address.bytes
        if address.isLoopback {
            self = .loopback
        } else if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80 {
            self = .link
        } else if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0xc0 {
            self = .site
        } else {
            self = .global
        }
    }
}

public enum PacketFate: Sendable, Hashable {
    /// NAT REDIRECT: delivered to `to` (127.0.0.1/::1:port in output, the input interface's first address
    /// in prerouting); the socket reads the original destination with SO_ORIGINAL_DST.
    case redirected(to: Endpoint, by: RuleLocation)
    /// TPROXY: handed to the transparent listener on `port` of this namespace, packet unchanged.
    case transparentProxy(port: UInt16, by: RuleLocation)
    /// Not captured, destination local: delivered to whatever listens on it.
    case delivered(Endpoint)
    /// Not captured, leaves the namespace through `interface`.
    case leaves(Endpoint, interface: String)
    /// Arrived for an address that is not local and was not captured: routed onward (forwarding).
    case forwarded(Endpoint)
    case dropped(by: RuleLocation)
    /// The walk reached a rule the walker cannot evaluate (an expression outside Sluice's vocabulary).
    case undetermined(at: RuleLocation, reason: String)
}

public struct WalkStep: Sendable, Hashable {
    public enum Hook: String, Sendable { case prerouting, output }

    public var hook: Hook
    /// True for the second pass of a locally generated packet that loops back through `lo`
    /// (prerouting, iif lo, no socket).
    public var loopedBack: Bool
    public var location: RuleLocation
    public var rule: Rule
    /// nil when the rule matched; otherwise the first match that did not hold, in nft words
    /// plus the packet's value, e.g. `meta skuid 1337 (packet: uid 1000)`.
    public var mismatch: String?
    /// What the rule did when it matched, in words: "jump istio-redirect", "redirect to :15001", "return",
    /// "meta mark set 1338", "accept"...
    public var effect: String?

    public init(hook: Hook, loopedBack: Bool, location: RuleLocation, rule: Rule, mismatch: String?, effect: String?) {
        self.hook = hook
        self.loopedBack = loopedBack
        self.location = location
        self.rule = rule
        self.mismatch = mismatch
        self.effect = effect
    }

    public var matched: Bool { mismatch == nil }
}

public struct PacketWalk: Sendable, Hashable {
    public var probe: PacketProbe
    /// Every rule evaluated, in order.
    public var steps: [WalkStep]
    public var fate: PacketFate
    /// Things the reader should know: "nat chains see only the first packet of a connection", "the policy
    /// accept of istio-proxy-nat/output ended the chain" ...
    public var notes: [String]

    public init(probe: PacketProbe, steps: [WalkStep], fate: PacketFate, notes: [String]) {
        self.probe = probe
        self.steps = steps
        self.fate = fate
        self.notes = notes
    }
}

/// A base chain found in the ruleset, with its place in the kernel's order.
struct BaseChainReference {
    var tableIndex: Int
    var chainIndex: Int
    var base: BaseChain

    /// The NAT core runs every nat chain of a hook from its one hook entry at a fixed priority
    /// (NF_IP_PRI_NAT_DST, -100, on prerouting and output; `nf_nat_register_fn`), the nat chains among
    /// themselves by their priority; any other chain runs at its own priority. A filter chain at exactly
    /// -100 is put before the NAT entry (the kernel orders that tie by registration time).
    var sortKey: [Int] {
        if base.type == .nat { return [Int(effectivePriority), 1, Int(base.priority)] }
        return [Int(base.priority), 0, 0]
    }

    /// Where on the hook the chain's rules actually run.
    var effectivePriority: Int32 { base.type == .nat ? Self.natCorePriority : base.priority }

    static let natCorePriority: Int32 = -100
}
