/// A CA call that failed for good: after the retries, or at once when retrying cannot help.
public struct IstioCAError: Error, Sendable, CustomStringConvertible {
    /// e.g. "CA istiod.istio-system.svc:15012: unauthenticated: bad token (after 1 attempt)"
    public var description: String
    /// Whether the last failure was one Istio's retry interceptor retries (a later call may succeed).
    public var isRetryable: Bool
    /// How many calls were made (0 when the configuration was refused before any).
    public var attempts: Int

    public init(_ description: String, isRetryable: Bool, attempts: Int = 0) {
        self.description = description
        self.isRetryable = isRetryable
        self.attempts = attempts
    }
}
