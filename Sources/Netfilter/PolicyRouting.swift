import CNetfilter
import Capture
#if canImport(Glibc)
import Glibc
#endif

/// A routing step the kernel refused: which `ip` command, why, and what became of the steps before it.
public struct PolicyRoutingError: Error, CustomStringConvertible {
    /// The step as an `ip` command, e.g. `ip -6 route add local default dev lo table 133`.
    public let command: String
    /// The rtnetlink error, or why the step cannot be carried out safely.
    public let reason: String
    /// Steps this run had added before the failure and then took back, so a failed run leaves no
    /// half of a plan behind (e.g. a `fwmark` rule into a table a later run with another `-r` never
    /// looks at again).
    public var undone: [String] = []
    /// Steps this run changed that stay: all of them for a removal (taking them back would restore
    /// what is being removed), and any added step whose undoing failed too.
    public var leftInPlace: [String] = []

    public var description: String {
        func list(_ commands: [String]) -> String { commands.map { "`\($0)`" }.joined(separator: ", ") }
        var text = "`\(command)`: \(reason)"
        if !undone.isEmpty { text += " (undone: \(list(undone)))" }
        if !leftInPlace.isEmpty { text += " (done and left in place: \(list(leftInPlace)))" }
        return text
    }
}

/// Carries out a `RoutingPlan` over rtnetlink in the calling thread's network namespace.
///
/// Every step first lists what the kernel has, so a re-run adds nothing (the kernel would accept a
/// second identical `fwmark` rule at the next free priority) and a removal takes away only what
/// matches the plan exactly, including duplicates an earlier `ip rule add` or Istio run left.
public enum PolicyRouting {
    /// What a run changed and what it found already as planned.
    public struct Report: Sendable, Hashable, CustomStringConvertible {
        /// `ip` commands carried out (a removal of duplicates counts each one).
        public var changed: [String] = []
        /// Steps that needed nothing: already present (apply) or already absent (remove).
        public var unchanged: [String] = []

        public init() {}

        public var description: String {
            if changed.isEmpty && unchanged.isEmpty { return "no policy routing" }
            var parts: [String] = []
            if !changed.isEmpty { parts.append(changed.joined(separator: "; ")) }
            if !unchanged.isEmpty { parts.append("\(unchanged.count) already as planned") }
            return parts.joined(separator: "; ")
        }
    }

    /// Puts `plan` in place (`.apply`) or takes it away (`.remove`), step by step in plan order. When
    /// a step of an apply fails, the steps this run added are removed again before the error is thrown.
    @discardableResult
    public static func carryOut(_ plan: RoutingPlan) throws(PolicyRoutingError) -> Report {
        var report = Report()
        if plan.isEmpty { return report }
        let netlink: RouteNetlink
        do {
            netlink = try RouteNetlink()
        } catch {
            throw PolicyRoutingError(command: plan.commands[0], reason: "\(error)")
        }
        let interfaces = Interfaces(netlink)
        let verb: RoutingPlan.Verb = plan.direction == .apply ? .add : .del
        var added: [RoutingPlan.Step] = []
        for step in plan.steps {
            let command = step.command(verb)
            do {
                let changes = plan.direction == .apply
                    ? try apply(step, netlink, interfaces) : try remove(step, netlink, interfaces)
                if changes == 0 {
                    report.unchanged.append(command)
                } else {
                    report.changed += Array(repeating: command, count: changes)
                    if plan.direction == .apply { added.append(step) }
                }
            } catch {
                let reason = (error as? PolicyRoutingError)?.reason ?? "\(error)"
                var failure = PolicyRoutingError(command: command, reason: reason)
                guard plan.direction == .apply else {
                    failure.leftInPlace = report.changed
                    throw failure
                }
                // Each added step was absent before this run, so removing every match removes only it.
                for step in added.reversed() {
                    if (try? remove(step, netlink, interfaces)) != nil {
                        failure.undone.append(step.command(.add))
                    } else {
                        failure.leftInPlace.append(step.command(.add))
                    }
                }
                throw failure
            }
        }
        return report
    }

    // MARK: Steps (each returns how many kernel objects it changed)

    private static func apply(_ step: RoutingPlan.Step, _ netlink: RouteNetlink, _ interfaces: Interfaces) throws -> Int {
        switch step {
        case .interfaceAddress(let address, let prefixLength, let name):
            let interface = try interfaces.named(name)
            if try netlink.addresses(family: address.family, on: interface).contains(where: { $0.address == address }) {
                return 0
            }
            return try netlink.addAddressUnlessPresent(address, prefixLength: prefixLength, to: interface) ? 1 : 0

        case .fwmarkRule(let family, let mark, let table):
            if try netlink.fibRules(family: family).contains(where: { $0.isFwmarkLookup(mark: mark, table: table) }) {
                return 0
            }
            // No priority: the kernel picks the one `ip rule add` (and Istio's netlink.RuleAdd) gets.
            try netlink.addFwmarkRule(family: family, mark: mark, table: table)
            return 1

        case .localDefaultRoute(let family, let table):
            let loopback = try interfaces.named("lo")
            if try !localDefaultRoutes(family, table, loopback.index, netlink).isEmpty { return 0 }
            do {
                try netlink.addRoute(to: nil, family: family, via: nil, device: loopback, table: table, type: .local)
            } catch let error as SystemCallError where error.errno == EEXIST {
                // Only fine if what exists is ours (another run got there first); a different default
                // route in the table would silently break TPROXY, so it is named instead.
                if try !localDefaultRoutes(family, table, loopback.index, netlink).isEmpty { return 0 }
                let defaults = try netlink.routes(family: family, table: table).filter { $0.destination == nil }
                throw PolicyRoutingError(
                    command: step.command(.add),
                    reason: "table \(table) already has a default route that is not `local default dev lo`: "
                        + defaults.map { route in
                            route.description(device: route.outputInterfaceIndex.flatMap { try? netlink.interfaceName(index: $0) })
                        }.joined(separator: ", ")
                        + "; pick another table with -r or remove it")
            }
            return 1
        }
    }

    private static func remove(_ step: RoutingPlan.Step, _ netlink: RouteNetlink, _ interfaces: Interfaces) throws -> Int {
        var removed = 0
        // Each round removes everything listed; more rounds only if something was added meanwhile.
        for _ in 0..<8 {
            let found: [() throws -> Void]
            switch step {
            case .interfaceAddress(let address, _, let name):
                let interface = try interfaces.named(name)
                found = try netlink.addresses(family: address.family, on: interface)
                    .filter { $0.address == address }
                    .map { entry in { try netlink.deleteAddress(address, prefixLength: entry.prefixLength, from: interface) } }
            case .fwmarkRule(let family, let mark, let table):
                found = try netlink.fibRules(family: family)
                    .filter { $0.isFwmarkLookup(mark: mark, table: table) }
                    .map { rule in { try netlink.deleteFibRule(rule) } }
            case .localDefaultRoute(let family, let table):
                let loopback = try interfaces.named("lo")
                found = try localDefaultRoutes(family, table, loopback.index, netlink)
                    .map { route in { try netlink.deleteRoute(route) } }
            }
            if found.isEmpty { return removed }
            for delete in found {
                do {
                    try delete()
                    removed += 1
                } catch let error as SystemCallError
                            where [ENOENT, ESRCH, EADDRNOTAVAIL].contains(error.errno) {
                    // Gone between listing and deleting: what removal wants anyway.
                }
            }
        }
        return removed
    }

    /// Interfaces by name, each looked up once per carry-out: `lo` serves several steps, and a removal
    /// lists and deletes in rounds.
    private final class Interfaces {
        private let netlink: RouteNetlink
        private var known: [String: RouteNetlink.Interface] = [:]

        init(_ netlink: RouteNetlink) { self.netlink = netlink }

        func named(_ name: String) throws -> RouteNetlink.Interface {
            if let interface = known[name] { return interface }
            let interface = try netlink.interface(named: name)
            known[name] = interface
            return interface
        }
    }

    private static func localDefaultRoutes(_ family: IPFamily, _ table: UInt32, _ loopback: Int32,
                                           _ netlink: RouteNetlink) throws -> [RouteEntry] {
        try netlink.routes(family: family, table: table).filter { route in
            route.isLocal && route.destination == nil && route.gateway == nil && route.outputInterfaceIndex == loopback
        }
    }
}
