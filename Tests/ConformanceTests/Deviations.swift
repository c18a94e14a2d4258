/// A difference between Istio's outcome and Sluice's that is deliberate: an Istio bug Sluice does not
/// copy. Each entry is documented in docs/CONFORMANCE.md with the same probe, outcomes and reason.
struct AllowedDeviation: Sendable, CustomStringConvertible {
    var configuration: String
    /// `ProbeSpec.description`
    var probe: String
    /// `Outcome.description` under Istio's rules and under Sluice's.
    var istio: String
    var sluice: String
    var reason: String

    func matches(_ configuration: String, _ comparison: ConfigurationRun.Comparison) -> Bool {
        configuration == self.configuration && comparison.probe.description == probe
            && comparison.istio.description == istio && comparison.sluice.description == sluice
    }

    var description: String { "[\(configuration)] \(probe): Istio → \(istio); Sluice → \(sluice) (\(reason))" }

    static let all: [AllowedDeviation] = []
}
