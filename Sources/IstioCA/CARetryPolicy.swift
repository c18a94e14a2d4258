import GRPCCore

/// Istio's retry interceptor on the CA client (go-grpc-middleware retry with
/// BackoffExponentialWithJitter(100ms, 0.1)): the wait after the n-th failed attempt is
/// initial × 2^(n-1), scaled by 1 ± jitter.
struct CARetryPolicy: Sendable, Hashable {
    var maximumAttempts: Int
    var initialBackoff: Duration
    var jitter: Double = 0.1

    /// The codes Istio retries on; anything else (unauthenticated, invalidArgument, …) fails at once.
    static func isRetryable(_ code: RPCError.Code) -> Bool {
        switch code {
        case .cancelled, .deadlineExceeded, .resourceExhausted, .aborted, .internalError, .unavailable: true
        default: false
        }
    }

    /// `failedAttempts` ≥ 1; `unit` in -1...1 picks the jitter.
    func backoff(afterFailedAttempts failedAttempts: Int, unit: Double) -> Duration {
        // Capped doubling: the exponent stays small even with a large configured attempt count.
        let doublings = min(max(failedAttempts - 1, 0), 20)
        let base = initialBackoff * (1 << doublings)
        return base * (1 + jitter * min(max(unit, -1), 1))
    }

    func backoff(afterFailedAttempts failedAttempts: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        backoff(afterFailedAttempts: failedAttempts, unit: Double.random(in: -1...1, using: &generator))
    }
}
