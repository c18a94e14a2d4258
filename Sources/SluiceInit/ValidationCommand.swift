import Capture
import Netfilter

/// `--run-validation`: after programming, Sluice's own read-back check, then Istio's probe; with
/// `--skip-rule-apply` (CNI mode: the rules are someone else's) the probe alone. Failure exits 126,
/// Istio's `ValidationErrorCode`, which istio-cni's repair controller watches for.
enum Validation {
    static let exitCode: Int32 = 126

    /// The check after `sluice-init` programmed `ruleset` itself: the kernel read back against what
    /// `update`'s batch (sent, or found already in place) makes the owned tables read as; without
    /// `update` (a ruleset programmed earlier), against what `ruleset` reads back as when applied.
    static func afterApply(_ ruleset: Ruleset, _ resolved: ResolvedCapture, programmedBy update: NftablesUpdate? = nil,
                           output: inout StandardStreams) -> Int32 {
        let difference: String?
        do {
            let readback = try NftablesReadback()
            if let update {
                difference = try readback.read().firstDifference(from: update.expectedSnapshot())
            } else {
                difference = try readback.firstDifference(from: ruleset)
            }
        } catch {
            return fail("the ruleset could not be read back from the kernel: \(error)", output: &output)
        }
        if let difference {
            return fail("the kernel does not hold the rules sluice-init programmed: \(difference). Another agent "
                        + "(a CNI plugin, another init container, a node agent) most likely changed the nftables rules "
                        + "of this pod's network namespace; find it, then run sluice-init again", output: &output)
        }
        let rules = ruleset.ruleCount
        output.out("sluice-init: read back \(ruleset.tables.count) tables, \(rules) rules: the kernel holds exactly "
                   + "ruleset \(ruleset.stampedFingerprint)")
        return probe(resolved, output: &output)
    }

    /// Istio's probe alone: the rules may have been programmed by anyone.
    static func probe(_ resolved: ResolvedCapture, output: inout StandardStreams) -> Int32 {
        switch ValidationProbe(config: resolved.config, options: resolved.runOptions).run() {
        case .passed(let summary):
            output.out("sluice-init: validation passed: \(summary)")
            return 0
        case .failed(let cause):
            return fail(cause + ".\n" + istioAdvice, output: &output)
        }
    }

    private static func fail(_ cause: String, output: inout StandardStreams) -> Int32 {
        output.err("sluice-init: nftables validation failed; workload is not ready for Istio: \(cause)")
        return exitCode
    }

    /// Istio's own words after its one-line error, with iptables replaced by nftables.
    static let istioAdvice = """
        When using Istio CNI, this can occur if a pod is scheduled before the node is ready.

        If installed with 'cni.repair.deletePods=true', this pod should automatically be deleted and retry.
        Otherwise, this pod will need to be manually removed so that it is scheduled on a node with istio-cni \
        running, allowing nftables rules to be established.
        """
}
