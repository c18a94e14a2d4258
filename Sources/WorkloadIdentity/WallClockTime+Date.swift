import FoundationEssentials

// swift-certificates speaks `Date`; these conversions keep it out of the module's public API.
extension WallClockTime {
    init(_ date: Date) {
        self.init(sinceEpoch: .seconds(date.timeIntervalSince1970))
    }

    /// Whole seconds: X.509 validity has one-second resolution, and a fraction would be dropped
    /// inconsistently by the encoder.
    var date: Date {
        Date(timeIntervalSince1970: Double(wholeSecondsSinceEpoch))
    }
}
