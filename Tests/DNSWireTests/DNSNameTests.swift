import DNSWire
import Testing

@Suite struct DNSNameTests {
    @Test func parsesPresentationFormWithAndWithoutTheFinalDot() throws {
        let relative = try #require(DNSName("www.Example.com"))
        let absolute = try #require(DNSName("www.Example.com."))
        #expect(relative == absolute)
        #expect(relative.labels == [ascii("www"), ascii("Example"), ascii("com")])
        #expect(relative.description == "www.Example.com.")
        #expect(relative.lowercasedKey == "www.example.com.")
        #expect(relative.wireForm == wire("www", "Example", "com"))
        #expect(relative.labelCount == 3)
    }

    @Test func rootIsTheLoneDot() throws {
        #expect(DNSName(".") == DNSName.root)
        #expect(DNSName.root.labels == [])
        #expect(DNSName.root.description == ".")
        #expect(DNSName.root.lowercasedKey == ".")
        #expect(DNSName.root.isRoot)
        #expect(try DNSName(labels: []) == .root)
    }

    @Test func equalityIsCaseSensitiveAndTheKeyIsNot() throws {
        let upper = try #require(DNSName("WWW.EXAMPLE.COM"))
        let lower = try #require(DNSName("www.example.com"))
        #expect(upper != lower)
        #expect(upper.lowercasedKey == lower.lowercasedKey)
        #expect(upper.equalsIgnoringCase(lower))
        #expect(!upper.equalsIgnoringCase(name("www.example.co")))
        // Only ASCII letters fold (RFC 4343 §3): 0xC9 and 0xE9 stay distinct.
        let latinUpper = try DNSName(labels: [[0xC9]])
        let latinLower = try DNSName(labels: [[0xE9]])
        #expect(latinUpper.lowercasedKey != latinLower.lowercasedKey)
    }

    @Test func escapesDotsBackslashesAndNonPrintableBytes() throws {
        let odd = try DNSName(labels: [[0x61, 0x2E, 0x62], [0x5C], [0x20, 0x00, 0xFF, 0x7F, 0x21, 0x7E], ascii("Z")])
        #expect(odd.description == #"a\.b.\\.\032\000\255\127!~.Z."#)
        #expect(odd.lowercasedKey == #"a\.b.\\.\032\000\255\127!~.z."#)
        #expect(DNSName(odd.description) == odd)
        // A lowered escape stays the byte it was: \065 is "A" and keys as "a" would not; it is escaped
        // only when written that way, and then parsed back to the same byte.
        #expect(DNSName(#"\065b"#)?.labels == [ascii("Ab")])
        #expect(DNSName(#"\065b"#)?.lowercasedKey == "ab.")
        #expect(DNSName(#"a\bc"#)?.labels == [ascii("abc")])
    }

    @Test(arguments: [
        "", "..", "a..b", ".a", "a.b..", #"a\"#, #"\25"#, #"\2a5"#, #"\256"#, #"a\1"#,
    ])
    func refusesMalformedPresentationForm(_ text: String) {
        #expect(DNSName(text) == nil, "\(text)")
    }

    @Test func labelAndNameLengthLimits() throws {
        let longest = String(repeating: "a", count: 63)
        #expect(DNSName(longest)?.labels.first?.count == 63)
        #expect(DNSName(longest + "a") == nil)
        #expect(DNSName(String(repeating: #"\000"#, count: 64)) == nil)
        // 3 labels of 63 + one of 61 = 4 * 64 - 2 + 1 = 255 bytes in wire form: the longest name.
        let label61 = String(repeating: "b", count: 61)
        let maximal = [longest, longest, longest, label61].joined(separator: ".")
        #expect(DNSName(maximal)?.wireForm.count == 255)
        #expect(DNSName(maximal + ".") != nil)
        #expect(DNSName(maximal + "b") == nil)
        #expect(DNSName(maximal + ".c") == nil)
        #expect(DNSName(String(repeating: "a.", count: 127))?.wireForm.count == 255)
        #expect(DNSName(String(repeating: "a.", count: 128)) == nil)

        #expect(throws: DNSWireError.labelTooLong(index: 1, length: 64)) {
            try DNSName(labels: [ascii("a"), Array(repeating: 0x61, count: 64)])
        }
        #expect(throws: DNSWireError.emptyLabel(index: 0)) { try DNSName(labels: [[], ascii("a")]) }
        let tooLong = Array(repeating: Array(repeating: UInt8(0x61), count: 63), count: 4)
        #expect(throws: DNSWireError.nameTooLong(part: nil, offset: nil, length: 257)) { try DNSName(labels: tooLong) }
        #expect(try DNSName(labels: Array(tooLong.prefix(3)) + [Array(repeating: 0x61, count: 61)]).wireForm.count == 255)
    }

    @Test func recordTypeNames() {
        #expect(DNSRecordType.a.description == "A")
        #expect(DNSRecordType.aaaa.description == "AAAA")
        #expect(DNSRecordType.opt.description == "OPT")
        #expect(DNSRecordType(rawValue: 1234).description == "TYPE1234")
        #expect([DNSRecordType.a, .ns, .cname, .soa, .ptr, .mx, .txt, .aaaa, .srv, .opt, .any].map(\.rawValue)
            == [1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 255])
    }
}
