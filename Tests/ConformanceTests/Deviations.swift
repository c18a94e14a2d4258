/// A difference between Istio's outcome and Sluice's that is deliberate: an Istio bug Sluice does not
/// copy. Each entry is documented in docs/CONFORMANCE.md with the same probe, outcomes and reason.
struct AllowedDeviation: Sendable, CustomStringConvertible {
    var configuration: String
    /// `ProbeSpec.description`, or `ConfigurationRun.applyProbe`
    var probe: String
    /// `Outcome.description` under Istio's rules and under Sluice's.
    var istio: String
    var sluice: String
    var reason: String

    func matches(_ configuration: String, _ comparison: ConfigurationRun.Comparison) -> Bool {
        configuration == self.configuration && comparison.probe == probe
            && comparison.istio.description == istio && comparison.sluice.description == sluice
    }

    var description: String { "[\(configuration)] \(probe): Istio → \(istio); Sluice → \(sluice) (\(reason))" }

    static let all: [AllowedDeviation] = [
        AllowedDeviation(
            configuration: "ipv6-nameserver-ipv4-pod", probe: ConfigurationRun.applyProbe,
            istio: "ruleset rejected: Could not process rule: No such file or directory: "
                + "add rule inet istio-proxy-nat istio-output counter jump istio-output-dns",
            sluice: "ruleset applied",
            reason: "resolv.conf lists only IPv6 nameservers in a pod without IPv6 rules. Istio writes the jumps "
                + "to istio-output-dns (nat) and istio-inbound (raw) because a server exists, skips the IPv6 "
                + "server rules, and declares only chains that have rules, so nft rejects the transaction and "
                + "istio-init fails. Sluice drops the nameservers of a family whose rules are not written: "
                + "DNS capture is off and the rest of the ruleset is applied"),
    ]
}
