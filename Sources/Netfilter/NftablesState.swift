import Capture

/// What the kernel holds of Sluice's owned tables, reduced to what tells two rulesets apart cheaply:
/// which tables exist with which comment (Sluice stamps the ruleset's fingerprint there), their sets,
/// and per chain the comments of its rules in order.
///
/// `sluice-init` compares `NftablesClient.ownedTableState()` with `OwnedTableState(expecting:)` to
/// skip an identical re-run without writing to the kernel.
public struct OwnedTableState: Sendable, Hashable {
    public struct TableState: Sendable, Hashable {
        public var name: String
        public var comment: String?
        /// Sorted by name.
        public var setNames: [String]
        /// Sorted by name.
        public var chains: [ChainState]

        public init(name: String, comment: String?, setNames: [String], chains: [ChainState]) {
            self.name = name
            self.comment = comment
            self.setNames = setNames
            self.chains = chains
        }

        public func chain(named name: String) -> ChainState? { chains.first { $0.name == name } }
    }

    public struct ChainState: Sendable, Hashable {
        public var name: String
        /// One entry per rule, in chain order; nil for a rule without a comment.
        public var ruleComments: [String?]

        public init(name: String, ruleComments: [String?]) {
            self.name = name
            self.ruleComments = ruleComments
        }

        public var ruleCount: Int { ruleComments.count }
    }

    /// The owned tables that exist, in `Ruleset.ownedTableNames` order.
    public var tables: [TableState]

    public init(tables: [TableState]) { self.tables = tables }

    /// The state the kernel reports right after `ruleset` was applied.
    public init(expecting ruleset: Ruleset) {
        tables = Ruleset.ownedTableNames.compactMap { name in
            guard let table = ruleset.table(named: name) else { return nil }
            return TableState(
                name: name, comment: table.comment, setNames: table.sets.map(\.name).sorted(),
                chains: table.chains.map { chain in
                    ChainState(name: chain.name, ruleComments: chain.rules.map { $0.comment.isEmpty ? nil : $0.comment })
                }.sorted { $0.name < $1.name })
        }
    }

    public func table(named name: String) -> TableState? { tables.first { $0.name == name } }

    /// No owned table exists.
    public var isEmpty: Bool { tables.isEmpty }
}
