import Testing
import WorkloadIdentity

@Suite struct RotationPolicyTests {
    let notBefore = fixedNow
    let notAfter = fixedNow + .seconds(86400)

    @Test func defaultsRotateAtHalfTheLifetime() throws {
        let policy = try RotationPolicy()
        #expect(policy.graceRatio == 0.5)
        #expect(policy.jitter == 0.01)
        let exact = policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore, unit: 0, negative: false)
        #expect(exact == notBefore + .seconds(43200))
        // The largest jitter moves it by at most 1 % of the lifetime (864 s) either way.
        let earliest = policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore, unit: 0.999_999, negative: false)
        let latest = policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore, unit: 0.999_999, negative: true)
        #expect(abs((earliest - (notBefore + .seconds(43200 - 864))) / .seconds(1)) < 0.01)
        #expect(abs((latest - (notBefore + .seconds(43200 + 864))) / .seconds(1)) < 0.01)
    }

    @Test func randomJitterStaysWithinBoundsAndVaries() throws {
        let policy = try RotationPolicy()
        var generator = SplitMix64(state: 42)
        let lower = notBefore + .seconds(43200 - 864), upper = notBefore + .seconds(43200 + 864)
        var seen = Set<WallClockTime>()
        for _ in 0..<1000 {
            let time = policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore, using: &generator)
            #expect(time >= lower && time <= upper)
            seen.insert(time)
        }
        #expect(seen.count > 900)
        #expect(seen.contains { $0 < notBefore + .seconds(43200) })
        #expect(seen.contains { $0 > notBefore + .seconds(43200) })
    }

    @Test func ratioIsClampedToTheLifetime() throws {
        let all = try RotationPolicy(graceRatio: 1, jitter: 1)
        #expect(all.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore - .seconds(10), unit: 0.9, negative: false)
            == notBefore)
        let none = try RotationPolicy(graceRatio: 0, jitter: 1)
        #expect(none.rotationTime(notBefore: notBefore, notAfter: notAfter, now: notBefore, unit: 0.9, negative: true)
            == notAfter)
    }

    @Test func neverBeforeNow() throws {
        let policy = try RotationPolicy()
        let late = notBefore + .seconds(80000)
        #expect(policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: late, unit: 0.5, negative: true) == late)
        let afterExpiry = notAfter + .seconds(5)
        #expect(policy.rotationTime(notBefore: notBefore, notAfter: notAfter, now: afterExpiry, unit: 0, negative: false)
            == afterExpiry)
    }

    @Test(arguments: [-0.1, 1.5, Double.nan, Double.infinity])
    func badRatiosAreRefusedNamingTheVariable(value: Double) {
        #expect(errorMessage { _ = try RotationPolicy(graceRatio: value) }?.contains("SECRET_GRACE_PERIOD_RATIO=") == true)
        #expect(errorMessage { _ = try RotationPolicy(jitter: value) }?.contains("SECRET_GRACE_PERIOD_RATIO_JITTER=") == true)
    }
}
