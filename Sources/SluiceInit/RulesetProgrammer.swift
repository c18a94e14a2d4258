import Capture
import Glibc
import Netfilter

/// Why programming failed, already worded for the user, with the exit code to leave with.
struct ProgrammingError: Error {
    let message: String
    let exitCode: Int32
}

/// The kernel step of `sluice-init`, in the current network namespace: pre-flight, skip when the
/// kernel already holds this exact ruleset, otherwise one netlink transaction.
struct RulesetProgrammer {
    /// What happened, for the one line `sluice-init` prints on success.
    struct Outcome: CustomStringConvertible {
        enum Action { case applied, alreadyInPlace, removed }
        let action: Action
        let ruleset: Ruleset
        let milliseconds: Double

        var description: String {
            let tables = ruleset.tables.map { table in
                "inet \(table.name) (\(table.chains.reduce(0) { $0 + $1.rules.count }) rules, \(table.sets.count) sets)"
            }.joined(separator: ", ")
            let time = String(Int((milliseconds * 10).rounded()) / 10) + "." + String(Int((milliseconds * 10).rounded()) % 10)
            switch action {
            case .applied:
                return "programmed \(tables) in one nftables transaction (\(time) ms); ruleset \(ruleset.fingerprint)"
            case .alreadyInPlace:
                return "ruleset \(ruleset.fingerprint) already in place (\(tables)); nothing changed"
            case .removed:
                return "removed tables \(Ruleset.ownedTableNames.map { "inet \($0)" }.joined(separator: ", ")) "
                    + "(\(time) ms); nothing else touched"
            }
        }
    }

    /// Applies `ruleset`, or removes every owned table when it has none (`--cleanup-only`).
    func program(_ ruleset: Ruleset, enableIPv6: Bool) throws -> Outcome {
        let start = monotonicMilliseconds()
        do {
            try ProcessCapabilities.requireNetAdmin(to: "program nftables")
            let client = try NftablesClient()
            if ruleset.tables.isEmpty {
                try client.removeOwnedTables()
                return Outcome(action: .removed, ruleset: ruleset, milliseconds: monotonicMilliseconds() - start)
            }
            let alreadyInPlace = try client.ownedTableState() == OwnedTableState(expecting: ruleset)
            if !alreadyInPlace {
                try client.apply(ruleset)
            }
            if enableIPv6 {
                // Inbound passthrough binds ::6 as its source; unlike 127.0.0.0/8, IPv6 lo only owns ::1.
                do {
                    try RouteNetlink.ensureAddress(IPAddress("::6")!, prefixLength: 128, on: "lo")
                } catch {
                    throw ProgrammingError(
                        message: "rules are in place but adding ::6/128 to lo failed (\(error)); "
                            + "IPv6 inbound passthrough from ::6 will not work", exitCode: 1)
                }
            }
            return Outcome(action: alreadyInPlace ? .alreadyInPlace : .applied, ruleset: ruleset,
                           milliseconds: monotonicMilliseconds() - start)
        } catch let error as KernelError {
            throw ProgrammingError(message: error.description, exitCode: error.exitCode)
        }
    }

    private func monotonicMilliseconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
    }
}
