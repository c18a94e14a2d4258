/// When to rotate (SDS.md §4): SECRET_GRACE_PERIOD_RATIO ± SECRET_GRACE_PERIOD_RATIO_JITTER.
public struct RotationPolicy: Sendable, Hashable {
    public var graceRatio: Double   // default 0.5
    public var jitter: Double       // default 0.01

    /// Both in 0...1, else an error naming SECRET_GRACE_PERIOD_RATIO / SECRET_GRACE_PERIOD_RATIO_JITTER.
    public init(graceRatio: Double = 0.5, jitter: Double = 0.01) throws(WorkloadIdentityError) {
        guard (0.0...1.0).contains(graceRatio) else {
            throw WorkloadIdentityError("SECRET_GRACE_PERIOD_RATIO=\(graceRatio): must be between 0 and 1 (default 0.5)")
        }
        guard (0.0...1.0).contains(jitter) else {
            throw WorkloadIdentityError("SECRET_GRACE_PERIOD_RATIO_JITTER=\(jitter): must be between 0 and 1 (default 0.01)")
        }
        self.graceRatio = graceRatio
        self.jitter = jitter
    }

    /// ratio = clamp(graceRatio + unit * jitter * (negative ? -1 : 1), 0, 1);
    /// rotation at notAfter - ratio * (notAfter - notBefore), never before `now` (returns `now` then).
    /// `unit` in 0..<1.
    public func rotationTime(notBefore: WallClockTime, notAfter: WallClockTime, now: WallClockTime,
                             unit: Double, negative: Bool) -> WallClockTime
    {
        let offset = unit * jitter * (negative ? -1 : 1)
        let ratio = min(max(graceRatio + offset, 0), 1)
        let lifetime = notAfter - notBefore
        let rotation = notAfter - lifetime * ratio
        return max(rotation, now)
    }

    /// The same with the randomness drawn from `generator`.
    public func rotationTime(notBefore: WallClockTime, notAfter: WallClockTime, now: WallClockTime,
                             using generator: inout some RandomNumberGenerator) -> WallClockTime
    {
        let unit = Double.random(in: 0..<1, using: &generator)
        let negative = Bool.random(using: &generator)
        return rotationTime(notBefore: notBefore, notAfter: notAfter, now: now, unit: unit, negative: negative)
    }
}
