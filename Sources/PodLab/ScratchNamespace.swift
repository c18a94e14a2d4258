import Netfilter

extension PodLab {
    /// A bare network namespace for one test, removed when the test drops it: for code that needs a kernel
    /// of its own but no pod topology (nftables batches, fib rules). Named `<prefix>-<pid>-<random>`, so
    /// parallel tests never collide and `PodLab.removeStaleNamespaces(prefix:)` (called here) removes what
    /// a killed run left.
    public final class ScratchNamespace: Sendable {
        public let name: String
        public let namespace: NetworkNamespace

        /// With `loopbackUp`, `lo` is brought up (a new namespace has it down).
        public init(prefix: String, loopbackUp: Bool = false) throws {
            PodLab.removeStaleNamespaces(prefix: prefix)
            name = "\(prefix)-\(PodLab.namespaceTag())"
            namespace = try NetworkNamespace.create(named: name)
            if loopbackUp {
                do {
                    try namespace.run { try RouteNetlink().setLinkUp("lo") }
                } catch {
                    try? NetworkNamespace.delete(named: name)
                    throw error
                }
            }
        }

        deinit { try? NetworkNamespace.delete(named: name) }

        /// Runs `body` on a thread inside this namespace (for sockets that must be created there).
        public func run<Result>(_ body: () throws -> Result) throws -> Result { try namespace.run(body) }

        /// A system tool (`nft`, `ip`) inside the namespace: its standard output, or `ToolFailure`.
        @discardableResult
        public func tool(_ name: String, _ arguments: [String]) throws -> String {
            try PodLab.runTool(name, arguments, in: namespace)
        }

        /// `nft list ruleset` (see `PodLab.listRuleset(in:handles:counters:)`).
        public func listRuleset(handles: Bool = false, counters: Bool = true) throws -> String {
            try PodLab.listRuleset(in: namespace, handles: handles, counters: counters)
        }

        /// Loads nft text with `nft -f`.
        public func loadRuleset(_ text: String) throws {
            try PodLab.loadRuleset(text, into: namespace)
        }
    }
}
