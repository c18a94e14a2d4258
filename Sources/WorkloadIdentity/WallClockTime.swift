import CalendarTime
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time as seconds since the Unix epoch, so certificate validity and rotation can be
/// computed without Foundation in our API and with an injected clock in tests.
public struct WallClockTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var sinceEpoch: Duration

    public init(sinceEpoch: Duration) {
        self.sinceEpoch = sinceEpoch
    }

    public init(secondsSinceEpoch: Int64) {
        self.sinceEpoch = .seconds(secondsSinceEpoch)
    }

    /// CLOCK_REALTIME: certificate validity is stated in civil time, not in the monotonic clock.
    public static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(sinceEpoch: .seconds(Int64(spec.tv_sec)) + .nanoseconds(Int64(spec.tv_nsec)))
    }

    public static func < (lhs: WallClockTime, rhs: WallClockTime) -> Bool {
        lhs.sinceEpoch < rhs.sinceEpoch
    }

    public static func + (lhs: WallClockTime, rhs: Duration) -> WallClockTime {
        WallClockTime(sinceEpoch: lhs.sinceEpoch + rhs)
    }

    public static func - (lhs: WallClockTime, rhs: Duration) -> WallClockTime {
        WallClockTime(sinceEpoch: lhs.sinceEpoch - rhs)
    }

    public static func - (lhs: WallClockTime, rhs: WallClockTime) -> Duration {
        lhs.sinceEpoch - rhs.sinceEpoch
    }

    /// Whole seconds since the epoch, rounded towards the past (certificates carry whole seconds).
    public var wholeSecondsSinceEpoch: Int64 {
        let (seconds, attoseconds) = sinceEpoch.components
        return attoseconds < 0 ? seconds - 1 : seconds
    }

    /// RFC 3339 UTC with seconds, e.g. "2026-11-21T10:04:05Z" (Istio's SDS version_info prefix).
    public var rfc3339: String {
        let seconds = wholeSecondsSinceEpoch
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let date = CivilDate(daysSinceEpoch: days)
        let (year, month, day) = (Int64(date.year), Int64(date.month), Int64(date.day))
        return Self.padded(year, 4) + "-" + Self.padded(month, 2) + "-" + Self.padded(day, 2) + "T"
            + Self.padded(secondOfDay / 3600, 2) + ":" + Self.padded(secondOfDay / 60 % 60, 2) + ":"
            + Self.padded(secondOfDay % 60, 2) + "Z"
    }

    public var description: String { rfc3339 }


    private static func padded(_ value: Int64, _ width: Int) -> String {
        let digits = String(value < 0 ? -value : value)
        let padding = String(repeating: "0", count: max(0, width - digits.count))
        return (value < 0 ? "-" : "") + padding + digits
    }
}
