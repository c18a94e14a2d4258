import Capture
import Testing

@Suite struct AddressRangeTests {
    /// The constant-time single-prefix check agrees with the full prefix cover.
    @Test(arguments: [
        ["10.0.0.0/8"], ["10.0.0.0/8", "11.0.0.0/8"], ["10.0.0.1/32", "10.0.0.2/32"], ["0.0.0.0/0"],
        ["192.0.2.0/25", "192.0.2.128/25"], ["2001:db8::/32"], ["2001:db8::/33", "2001:db8:8000::/34"], ["::/0"],
        ["255.255.255.255/32"], ["10.0.0.3/32", "10.0.0.4/31"],
    ])
    func singlePrefixAgreesWithPrefixes(cidrs: [String]) throws {
        for range in AddressRange.merging(cidrs.compactMap(CIDR.init)) {
            let prefixes = range.prefixes
            #expect(range.singlePrefix == (prefixes.count == 1 ? prefixes[0] : nil), "\(range)")
        }
    }
}
