import Glibc
import Netfilter
import PodLab
import Testing

/// Kernel tests create network namespaces and load nftables rules: they need root. CI runs as root,
/// so a non-root run is a failure with instructions, never a silent skip.
func requireRoot() throws {
    try #require(geteuid() == 0, "KernelTests need root (network namespaces, nftables): run `sudo swift test`")
}

/// `ip <arguments>` in `namespace`, to set up what another agent would have left or to observe: its
/// standard output. `ip route show table N` fails on a table the kernel never created: that is "empty".
@discardableResult
func ip(_ arguments: [String], in namespace: NetworkNamespace) throws -> String {
    let result = try Subprocess.run(try PodLab.systemExecutable("ip"), arguments, in: namespace)
    if result.status != 0 && result.standardError.contains("FIB table does not exist") { return "" }
    try #require(result.status == 0, "ip \(arguments): \(result)")
    return result.standardOutput
}

extension PodLab {
    /// The built `sluice-init`, run in the pod as an init container runs it.
    func sluiceInit(_ arguments: [String]) throws -> ProcessOutput {
        try run(try PodLab.sluiceInitExecutable(), arguments)
    }

    /// `ip` in the pod (see `ip(_:in:)`).
    @discardableResult
    func ip(_ arguments: [String]) throws -> String {
        try KernelTests.ip(arguments, in: pod)
    }

    /// `nft list ruleset` in the pod (see `PodLab.listRuleset(in:handles:counters:)`).
    func listRuleset(handles: Bool = false, counters: Bool = true) throws -> String {
        try PodLab.listRuleset(in: pod, handles: handles, counters: counters)
    }

    /// Loads nft text into the pod's namespace with `nft -f`.
    func loadRuleset(_ text: String) throws {
        try PodLab.loadRuleset(text, into: pod)
    }
}
