/// What the kernel needs besides the nftables ruleset: policy routing for TPROXY and the `::6`
/// passthrough source on `lo` (RULES.md §1, "Then, out of process", and §3 "TPROXY mode").
///
/// A plan is a value, like the ruleset: built from the config, rendered as `ip` commands for
/// `--dry-run`, and carried out step by step over rtnetlink by `PolicyRouting`.
public struct RoutingPlan: Sendable, Hashable {
    /// One change, worded the way `ip` would do it.
    public enum Step: Sendable, Hashable, CustomStringConvertible {
        /// `ip [-6] rule add fwmark <mark> lookup <table>`: packets the mangle rules marked look up
        /// the TPROXY table. The mask is always all ones, as in Istio's `--tproxy-mark M/0xffffffff`.
        case fwmarkRule(IPFamily, mark: UInt32, table: UInt32)
        /// `ip [-6] route add local default dev lo table <table>`: everything looked up there is
        /// delivered to this host, so marked packets reach the transparent listener whatever their
        /// destination address.
        case localDefaultRoute(IPFamily, table: UInt32)
        /// `ip addr add <address>/<prefix> dev <interface>`.
        case interfaceAddress(IPAddress, prefixLength: Int, interface: String)

        public var family: IPFamily {
            switch self {
            case .fwmarkRule(let family, _, _), .localDefaultRoute(let family, _): family
            case .interfaceAddress(let address, _, _): address.family
            }
        }

        /// The `ip` command that adds this (`add`) or removes it (`del`).
        public func command(_ verb: Verb) -> String {
            let ip = family == .ipv4 ? "ip" : "ip -6"
            switch self {
            case .fwmarkRule(_, let mark, let table):
                return "\(ip) rule \(verb.rawValue) fwmark \(mark) lookup \(table)"
            case .localDefaultRoute(_, let table):
                return "\(ip) route \(verb.rawValue) local default dev lo table \(table)"
            case .interfaceAddress(let address, let prefixLength, let interface):
                return "\(ip) addr \(verb.rawValue) \(address)/\(prefixLength) dev \(interface)"
            }
        }

        public var description: String { command(.add) }
    }

    public enum Verb: String, Sendable {
        case add
        case del
    }

    /// Whether `steps` are to be put in place or taken away.
    public enum Direction: Sendable, Hashable {
        case apply
        case remove
    }

    public var direction: Direction
    /// In the order they are carried out.
    public var steps: [Step]

    public init(direction: Direction, steps: [Step]) {
        self.direction = direction
        self.steps = steps
    }

    public var isEmpty: Bool { steps.isEmpty }

    /// Istio's inbound passthrough source for IPv6: unlike 127.0.0.0/8, IPv6 `lo` owns only `::1`, so
    /// the proxy could not bind `::6` without it.
    public static let passthroughSourceIPv6 = Step.interfaceAddress(.passthroughSource(.ipv6), prefixLength: 128, interface: "lo")

    /// What a run with `config` puts in place, in Istio's order (`tproxy.ConfigureRoutes`): the `::6`
    /// address when IPv6 is on, then in TPROXY mode with inbound capture (`-b` not empty) the fwmark
    /// rules, then the local default routes, IPv4 before IPv6.
    public static func apply(for config: CaptureConfig) -> RoutingPlan {
        var steps: [Step] = []
        if config.enableIPv6 { steps.append(passthroughSourceIPv6) }
        if config.interceptionMode == .tproxy && config.inboundPorts != .none {
            steps += tproxySteps(for: config)
        }
        return RoutingPlan(direction: .apply, steps: steps)
    }

    /// What `--cleanup-only` with `config` takes away; Istio leaves all of it behind (RULES.md §5
    /// item 12). Wider than `apply` on purpose: in TPROXY mode the rules and routes of `-t`/`-r` go
    /// whatever `-b` says now, since an earlier run may have captured inbound. The fwmark rules go
    /// first, so nothing is diverted into a table that is being emptied.
    public static func cleanup(for config: CaptureConfig) -> RoutingPlan {
        var steps: [Step] = []
        if config.interceptionMode == .tproxy {
            // Istio reads -t and -r only in TPROXY mode; in REDIRECT mode they name nothing of ours.
            steps += tproxySteps(for: config)
        }
        if config.enableIPv6 { steps.append(passthroughSourceIPv6) }
        return RoutingPlan(direction: .remove, steps: steps)
    }

    private static func tproxySteps(for config: CaptureConfig) -> [Step] {
        let families = config.enabledFamilies
        return families.map { Step.fwmarkRule($0, mark: config.tproxyMark, table: config.tproxyRouteTable) }
            + families.map { Step.localDefaultRoute($0, table: config.tproxyRouteTable) }
    }

    /// The plan as `ip` commands, one per line.
    public var commands: [String] {
        steps.map { $0.command(direction == .apply ? .add : .del) }
    }

    /// The plan as `#` comment lines to append to the `--dry-run` nft text, so the whole output stays
    /// valid `nft -f` input. Empty when there is nothing to do.
    public var dryRunComments: String {
        if steps.isEmpty { return "" }
        let heading = direction == .apply
            ? "# Besides nftables, sluice-init programs over rtnetlink (after the transaction):"
            : "# Besides nftables, sluice-init removes over rtnetlink (after the transaction):"
        return ([heading] + commands.map { "# \($0)" }).joined(separator: "\n") + "\n"
    }
}
