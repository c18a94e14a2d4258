import Netfilter
import PodLab

/// PodLab's bare namespace, under the name every NetfilterTests file uses.
typealias ScratchNamespace = PodLab.ScratchNamespace

/// NetfilterTests' view of it (named `sluice-nft-<pid>-<random>`): clients created inside it and `nft`
/// run inside it to observe (tests may exec `nft`; the code under test never does).
extension ScratchNamespace {
    convenience init() throws {
        try self.init(prefix: "sluice-nft")
    }

    /// A client whose socket lives in this namespace.
    func client() throws -> NftablesClient {
        try run { try NftablesClient() }
    }

    /// `nft <arguments>` inside the namespace: its output; throws `ToolFailure` on a non-zero exit.
    @discardableResult
    func nft(_ arguments: String...) throws -> String {
        try tool("nft", arguments)
    }

    /// Loads nft text with `nft -f`.
    func load(_ text: String) throws {
        try loadRuleset(text)
    }

    /// `nft list ruleset` without counter values (the only thing that differs between two namespaces
    /// holding the same rules).
    func listing() throws -> String {
        try listRuleset(counters: false)
    }

    /// `nft --debug=netlink list ruleset`: the kernel's expressions of every rule and the elements of
    /// every set, with handles removed and counter values zeroed.
    func expressionListing() throws -> String {
        try nft("--debug=netlink", "list", "ruleset")
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { line -> String in
                // Rule headers are "inet <table> <chain> <handle> [<position>]".
                let words = line.split(separator: " ")
                if words.count >= 4, words[0] == "inet", !line.hasPrefix(" "), words[3].allSatisfy(\.isNumber) {
                    return words.prefix(3).joined(separator: " ")
                }
                return String(line.replacing(/pkts \d+ bytes \d+/, with: "pkts 0 bytes 0"))
            }
            .joined(separator: "\n")
    }
}
