import Testing
import WorkloadIdentity

@Suite struct WallClockTimeTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_709_164_799, "2024-02-28T23:59:59Z"),
        (1_795_255_445, "2026-11-21T10:04:05Z"),
        (4_102_444_799, "2099-12-31T23:59:59Z"),
    ])
    func formatsRFC3339InUTC(seconds: Int64, expected: String) {
        #expect(WallClockTime(secondsSinceEpoch: seconds).rfc3339 == expected)
        #expect(WallClockTime(secondsSinceEpoch: seconds).description == expected)
    }

    @Test func dropsFractionsOfASecond() {
        let time = WallClockTime(sinceEpoch: .seconds(1_795_255_445) + .milliseconds(999))
        #expect(time.rfc3339 == "2026-11-21T10:04:05Z")
    }

    @Test func arithmeticAndOrder() {
        let later = fixedNow + .seconds(90)
        #expect(later - fixedNow == .seconds(90))
        #expect(later - .seconds(90) == fixedNow)
        #expect(fixedNow < later)
        #expect(!(later < fixedNow))
    }

    @Test func nowIsAfter2024AndAdvances() {
        let first = WallClockTime.now()
        #expect(first > WallClockTime(secondsSinceEpoch: 1_704_067_200))
        #expect(WallClockTime.now() >= first)
    }
}
