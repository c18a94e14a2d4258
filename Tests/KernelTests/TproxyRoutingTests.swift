import Capture
import Glibc
import Netfilter
import PodLab
import Testing

/// The rtnetlink layer under TPROXY (fib rules, route and address listing/deletion) and
/// `PolicyRouting`, in a bare namespace of the test's own, checked against what `ip` shows.
@Suite("TPROXY policy routing over rtnetlink")
struct TproxyRoutingTests {
    /// A fresh namespace with `lo` up, removed when the test drops it.
    static func scratch() throws -> PodLab.ScratchNamespace {
        try requireRoot()
        return try PodLab.ScratchNamespace(prefix: "sluice-tproxy", loopbackUp: true)
    }

    @Test("fwmark rules: the kernel's priority as for `ip rule add`, listed, told apart, deleted", arguments: IPFamily.allCases)
    func fwmarkRules(family: IPFamily) throws {
        let scratch = try Self.scratch()
        let flag = family == .ipv4 ? [String]() : ["-6"]
        try scratch.namespace.run {
            let netlink = try RouteNetlink()
            try netlink.addFwmarkRule(family: family, mark: 1337, table: 133)
            // The kernel would take the same rule again one priority up: why callers list first.
            try netlink.addFwmarkRule(family: family, mark: 1337, table: 133)
            try netlink.addFwmarkRule(family: family, mark: 1337, table: 70_000, priority: 100)
            let rules = try netlink.fibRules(family: family)
            let ours = rules.filter { $0.isFwmarkLookup(mark: 1337, table: 133) }
            #expect(ours.map(\.priority) == [32764, 32765], "\(rules)")
            #expect(rules.contains { $0.isFwmarkLookup(mark: 1337, table: 70_000) && $0.priority == 100 })
            // Plain lookups (local, main, default) are not fwmark rules.
            #expect(rules.filter { $0.mark == nil }.map(\.table) == (family == .ipv4 ? [255, 254, 253] : [255, 254]))
            for rule in ours { try netlink.deleteFibRule(rule) }
            #expect(try netlink.fibRules(family: family).filter { $0.isFwmarkLookup(mark: 1337, table: 133) }.isEmpty)
        }
        let shown = try ip(flag + ["rule", "show"], in: scratch.namespace)
        #expect(shown.contains("100:\tfrom all fwmark 0x539 lookup 70000"), "\(shown)")
        #expect(!shown.contains("lookup 133"), "\(shown)")
    }

    @Test("a rule with more selectors than fwmark is not taken for Sluice's")
    func rulesWithOtherSelectorsAreForeign() throws {
        let scratch = try Self.scratch()
        _ = try ip(["rule", "add", "fwmark", "1337", "iif", "lo", "lookup", "133"], in: scratch.namespace)
        _ = try ip(["rule", "add", "not", "fwmark", "1337", "lookup", "133"], in: scratch.namespace)
        _ = try ip(["rule", "add", "fwmark", "1337/0xff", "lookup", "133"], in: scratch.namespace)
        _ = try ip(["rule", "add", "from", "192.0.2.0/24", "fwmark", "1337", "lookup", "133"], in: scratch.namespace)
        _ = try ip(["rule", "add", "fwmark", "1337", "ipproto", "tcp", "lookup", "133"], in: scratch.namespace)
        let rules = try scratch.namespace.run { try RouteNetlink().fibRules(family: .ipv4) }
        let marked = rules.filter { $0.mark == 1337 }
        #expect(marked.count == 5, "\(rules)")
        #expect(!marked.contains { $0.isFwmarkLookup(mark: 1337, table: 133) }, "\(marked)")
        // Applying adds the plain rule next to them; removing takes only it away.
        let plan = RoutingPlan(direction: .apply, steps: [.fwmarkRule(.ipv4, mark: 1337, table: 133)])
        try scratch.namespace.run { try PolicyRouting.carryOut(plan) }
        try scratch.namespace.run { try PolicyRouting.carryOut(RoutingPlan(direction: .remove, steps: plan.steps)) }
        let after = try scratch.namespace.run { try RouteNetlink().fibRules(family: .ipv4) }
        #expect(after == rules)
    }

    @Test("PolicyRouting applies the dual-stack TPROXY plan once, reports, and removes it", arguments: [133, 4000] as [UInt32])
    func applyTwiceThenRemove(table: UInt32) throws {
        let scratch = try Self.scratch()
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        config.enableIPv6 = true
        config.tproxyRouteTable = table
        let plan = RoutingPlan.apply(for: config)

        let first = try scratch.namespace.run { try PolicyRouting.carryOut(plan) }
        #expect(first.changed == plan.commands && first.unchanged.isEmpty)
        let state = try ["rule", "-6 rule", "route show table \(table)", "-6 route show table \(table)", "-6 addr show dev lo"]
            .map { try ip($0.split(separator: " ").map(String.init), in: scratch.namespace) }
        #expect(state[0].contains("32765:\tfrom all fwmark 0x539 lookup \(table)"), "\(state[0])")
        #expect(state[1].contains("32765:\tfrom all fwmark 0x539 lookup \(table)"), "\(state[1])")
        #expect(state[2].hasPrefix("local default dev lo scope host"), "\(state[2])")
        #expect(state[3].hasPrefix("local default dev lo"), "\(state[3])")
        #expect(state[4].contains("inet6 ::6/128"), "\(state[4])")

        let second = try scratch.namespace.run { try PolicyRouting.carryOut(plan) }
        #expect(second.changed.isEmpty && second.unchanged == plan.commands)
        #expect(try ["rule", "-6 rule", "route show table \(table)", "-6 route show table \(table)", "-6 addr show dev lo"]
            .map { try ip($0.split(separator: " ").map(String.init), in: scratch.namespace) } == state)

        let removal = RoutingPlan.cleanup(for: config)
        let removed = try scratch.namespace.run { try PolicyRouting.carryOut(removal) }
        #expect(removed.changed == removal.commands)
        let rulesLeft = try ip(["rule"], in: scratch.namespace) + ip(["-6", "rule"], in: scratch.namespace)
        #expect(!rulesLeft.contains("fwmark"), "\(rulesLeft)")
        #expect(try ip(["route", "show", "table", "\(table)"], in: scratch.namespace).isEmpty)
        #expect(try ip(["-6", "route", "show", "table", "\(table)"], in: scratch.namespace).isEmpty)
        #expect(try !ip(["-6", "addr", "show", "dev", "lo"], in: scratch.namespace).contains("::6/"))
        let again = try scratch.namespace.run { try PolicyRouting.carryOut(removal) }
        #expect(again.changed.isEmpty && again.unchanged == removal.commands)
    }

    @Test("route and address listing see what ip added")
    func listing() throws {
        let scratch = try Self.scratch()
        _ = try ip(["route", "add", "local", "default", "dev", "lo", "table", "133"], in: scratch.namespace)
        _ = try ip(["route", "add", "192.0.2.0/24", "dev", "lo", "table", "133"], in: scratch.namespace)
        _ = try ip(["-6", "addr", "add", "2001:db8::6/64", "dev", "lo"], in: scratch.namespace)
        try scratch.namespace.run {
            let netlink = try RouteNetlink()
            let lo = try netlink.interfaceIndex(named: "lo")
            let routes = try netlink.routes(family: .ipv4, table: 133)
            #expect(routes.count == 2, "\(routes)")
            #expect(routes.contains { $0.isLocal && $0.destination == nil && $0.outputInterfaceIndex == lo })
            #expect(routes.contains { !$0.isLocal && $0.destination == CIDR("192.0.2.0/24") })
            let addresses = try netlink.addresses(family: .ipv6, on: "lo")
            #expect(addresses.contains { $0.address == IPAddress("2001:db8::6") && $0.prefixLength == 64 }, "\(addresses)")
            #expect(addresses.contains { $0.address == .ipv6Loopback && $0.prefixLength == 128 }, "\(addresses)")
            try netlink.deleteAddress(IPAddress("2001:db8::6")!, prefixLength: 64, from: "lo")
            #expect(try !netlink.addresses(family: .ipv6, on: "lo").contains { $0.address == IPAddress("2001:db8::6") })
            #expect(throws: SystemCallError.self) {
                try netlink.deleteAddress(IPAddress("2001:db8::6")!, prefixLength: 64, from: "lo")
            }
        }
    }
}
