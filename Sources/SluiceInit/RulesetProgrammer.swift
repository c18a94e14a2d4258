import Capture
import Netfilter

/// Why programming failed, already worded for the user, with the exit code to leave with.
struct ProgrammingError: Error {
    let message: String
    let exitCode: Int32
}

/// The kernel step of `sluice-init`, in the current network namespace: pre-flight, skip when the
/// kernel already holds this exact ruleset (read back rule for rule), otherwise one netlink
/// transaction; then the policy routing and addresses of the routing plan (Istio's order: after the
/// rules), each step checked first so a re-run adds nothing.
struct RulesetProgrammer {
    /// What happened, for the one line `sluice-init` prints on success.
    struct Outcome: CustomStringConvertible {
        enum Action { case applied, alreadyInPlace, removed }
        let action: Action
        let ruleset: Ruleset
        /// What the nftables step did; `--run-validation` reads back against what it expects.
        let nftables: NftablesUpdate
        let elapsed: Duration
        var routing = PolicyRouting.Report()

        var description: String {
            let tables = ruleset.tables.map { table in
                "inet \(table.name) (\(table.ruleCount) rules, \(table.sets.count) sets)"
            }.joined(separator: ", ")
            let tenthsOfMilliseconds = Int((elapsed / .milliseconds(1) * 10).rounded())
            let time = "\(tenthsOfMilliseconds / 10).\(tenthsOfMilliseconds % 10)"
            let routingSummary = routing.changed.isEmpty && routing.unchanged.isEmpty ? "" : "; routing: \(routing)"
            switch action {
            case .applied:
                return "programmed \(tables) in one nftables transaction (\(time) ms); ruleset \(ruleset.stampedFingerprint)"
                    + routingSummary
            case .alreadyInPlace:
                return "ruleset \(ruleset.stampedFingerprint) already in place (\(tables)); "
                    + (routing.changed.isEmpty ? "nothing changed" : "routing: \(routing)")
            case .removed:
                return "removed tables \(Ruleset.ownedTableNames.map { "inet \($0)" }.joined(separator: ", ")) "
                    + "(\(time) ms)" + (routingSummary.isEmpty ? "; nothing else touched" : routingSummary)
            }
        }
    }

    /// Applies `ruleset` and then `routing`, or removes every owned table when the ruleset has none
    /// (`--cleanup-only`) and then takes `routing` away.
    func program(_ ruleset: Ruleset, routing: RoutingPlan) throws -> Outcome {
        let start = ContinuousClock.now
        do {
            try ProcessCapabilities.requireNetAdmin(to: "program nftables")
            let client = try NftablesClient()
            if ruleset.tables.isEmpty {
                let removal = try client.removeOwnedTables()
                let report = try carryOut(routing, after: "the istio-proxy tables are removed")
                return Outcome(action: .removed, ruleset: ruleset, nftables: removal, elapsed: .now - start, routing: report)
            }
            let update = try client.update(to: ruleset)
            let report = try carryOut(routing, after: "the nftables rules are in place")
            return Outcome(action: update.applied ? .applied : .alreadyInPlace, ruleset: ruleset, nftables: update,
                           elapsed: .now - start, routing: report)
        } catch let error as KernelError {
            throw ProgrammingError(message: error.description, exitCode: error.exitCode)
        }
    }

    /// The routing plan, with a failure worded for the user: what is in place, which `ip` step failed
    /// and what that breaks. Exit 1 like any other kernel refusal.
    private func carryOut(_ routing: RoutingPlan, after done: String) throws(ProgrammingError) -> PolicyRouting.Report {
        do {
            return try PolicyRouting.carryOut(routing)
        } catch {
            let consequence: String
            switch routing.direction {
            case .apply:
                let tproxy = routing.steps.contains { if case .fwmarkRule = $0 { true } else { false } }
                consequence = tproxy
                    ? "TPROXY inbound capture will not work until it succeeds; re-run sluice-init"
                    : "IPv6 inbound passthrough from ::6 will not work until it succeeds; re-run sluice-init"
            case .remove:
                consequence = "re-run sluice-init --cleanup-only to finish"
            }
            throw ProgrammingError(message: "\(done) but policy routing failed at \(error); \(consequence)", exitCode: 1)
        }
    }
}
