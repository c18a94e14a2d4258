import CalendarTime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in wall-clock time (CLOCK_REALTIME), as seconds and nanoseconds since the Unix epoch.
/// Log lines, `/server_info` uptimes and `/config_dump`'s `last_updated` need calendar time, which
/// Swift's standard clocks do not give without Foundation.
public struct WallClockTime: Sendable, Hashable, Comparable {
    public var seconds: Int64
    /// 0 ..< 1_000_000_000.
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(seconds: Int64(spec.tv_sec), nanoseconds: Int32(spec.tv_nsec))
    }

    public static func < (lhs: WallClockTime, rhs: WallClockTime) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    /// The calendar fields of this time in UTC.
    public var utc: UTCDateTime { UTCDateTime(self) }

    /// RFC 3339 as protobuf's JSON mapping writes a `Timestamp`: 0, 3, 6 or 9 fraction digits, `Z`.
    public var protobufTimestamp: String {
        let date = utc
        var text = "\(date.year.padded(4))-\(date.month.padded(2))-\(date.day.padded(2))"
            + "T\(date.hour.padded(2)):\(date.minute.padded(2)):\(date.second.padded(2))"
        let nanos = Int(nanoseconds)
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                text += "." + (nanos / 1_000_000).padded(3)
            } else if nanos % 1000 == 0 {
                text += "." + (nanos / 1000).padded(6)
            } else {
                text += "." + nanos.padded(9)
            }
        }
        return text + "Z"
    }

    /// The HTTP `Date` header's IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
    public var httpDate: String {
        let date = utc
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(weekdays[date.weekday]), \(date.day.padded(2)) \(months[date.month - 1]) \(date.year.padded(4)) "
            + "\(date.hour.padded(2)):\(date.minute.padded(2)):\(date.second.padded(2)) GMT"
    }
}

/// Calendar fields in UTC (proleptic Gregorian), computed without the C library's time zone state.
public struct UTCDateTime: Sendable, Hashable {
    public var year: Int
    /// 1 ... 12
    public var month: Int
    /// 1 ... 31
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    /// 0 = Sunday.
    public var weekday: Int
    public var nanosecond: Int

    public init(_ time: WallClockTime) {
        let secondsPerDay: Int64 = 86_400
        var days = time.seconds / secondsPerDay
        var secondOfDay = time.seconds % secondsPerDay
        if secondOfDay < 0 {
            secondOfDay += secondsPerDay
            days -= 1
        }
        hour = Int(secondOfDay / 3600)
        minute = Int(secondOfDay % 3600 / 60)
        second = Int(secondOfDay % 60)
        nanosecond = Int(time.nanoseconds)
        // 1970-01-01 was a Thursday.
        let weekdayOffset = (days + 4) % 7
        weekday = Int(weekdayOffset < 0 ? weekdayOffset + 7 : weekdayOffset)
        let date = CivilDate(daysSinceEpoch: days)
        (year, month, day) = (date.year, date.month, date.day)
    }
}

extension Int {
    /// Zero-padded decimal of at least `width` digits.
    func padded(_ width: Int) -> String {
        let digits = String(self < 0 ? -self : self)
        let padding = digits.count < width ? String(repeating: "0", count: width - digits.count) : ""
        return (self < 0 ? "-" : "") + padding + digits
    }
}
