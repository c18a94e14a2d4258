import DNSWire
import Testing

/// Every way `DNSMessage.decode` refuses a message, each checked for the exact error and where.
@Suite struct DNSDecodingRefusalTests {
    static let validMessages: [(String, [UInt8])] = [
        ("dig query", digQueryExampleComA),
        ("CNAME chain", cnameChainResponse),
        ("every kind", everyKindMessage().encode()),
    ]

    @Test(arguments: validMessages)
    func everyPrefixOfAValidMessageIsTruncated(_ label: String, _ bytes: [UInt8]) throws {
        _ = try DNSMessage.decode(bytes)
        for length in 0..<bytes.count {
            let prefix = Array(bytes.prefix(length))
            do {
                let message = try DNSMessage.decode(prefix)
                Issue.record("\(label): the first \(length) bytes decoded as \(message)")
            } catch {
                guard case .truncated = error else {
                    Issue.record("\(label): the first \(length) bytes: expected truncated, got \(error)")
                    continue
                }
            }
        }
    }

    @Test func truncationNamesThePartTheOffsetAndTheShortfall() {
        let error = refusal(Array(cnameChainResponse.prefix(94)))
        #expect(error == .truncated(part: .answer(3), offset: 92, needed: 4, available: 2))
        #expect(error?.description == "truncated message: the answer record 3 needs 2 more bytes at offset 92 (4 needed, 2 left)")
        #expect(refusal([1, 2, 3]) == .truncated(part: .header, offset: 0, needed: 12, available: 3))
        // Counts that promise more than there is.
        #expect(refusal(header(counts: (2, 0, 0, 0)) + [0, 0, 1, 0, 1]) == .truncated(part: .question(2), offset: 17, needed: 1, available: 0))
    }

    @Test func forwardPointersAreRefused() {
        let forward = header(counts: (1, 0, 0, 0)) + [0xC0, 14, 0, 1, 0, 1]
        #expect(refusal(forward) == .forwardPointer(part: .question(1), offset: 12, target: 14))
        let toItself = header(counts: (1, 0, 0, 0)) + [0xC0, 12, 0, 1, 0, 1]
        #expect(refusal(toItself) == .forwardPointer(part: .question(1), offset: 12, target: 12))
        #expect(refusal(forward)?.description.contains("points forward to 14") == true)
    }

    @Test func pointerLoopsAreRefused() {
        // Answer 1 carries, as opaque data at 23, the name "a" then a pointer to 27, and at 27 a pointer
        // back to 23. Answer 2's owner enters the loop at 27: 27 -> 23 is backwards, 25 -> 27 is not.
        let loop =
            header(counts: (0, 2, 0, 0))
            + [0] + recordTail(type: 99, data: [0x01, 0x61, 0xC0, 27, 0xC0, 23])
            + [0xC0, 27] + recordTail(type: 1, data: [1, 2, 3, 4])
        #expect(refusal(loop) == .forwardPointer(part: .answer(2), offset: 25, target: 27))

        // A label, then a pointer back to the start of its own name: backwards from the pointer, but not
        // before the name, so it is the loop it looks like ("a.a.a.a..." for ever).
        let selfLoop = header(counts: (1, 0, 0, 0)) + [1, 0x61, 0xC0, 12, 0, 1, 0, 1]
        #expect(refusal(selfLoop) == .forwardPointer(part: .question(1), offset: 14, target: 12))
        #expect(refusal(selfLoop)?.description.contains("points back to 12, which is not before the name") == true)
    }

    @Test func pointersIntoTheHeaderAreRefused() {
        for target: UInt8 in [0, 5, 11] {
            let packet = header(counts: (1, 0, 0, 0)) + [0xC0, target, 0, 1, 0, 1]
            #expect(refusal(packet) == .pointerIntoHeader(part: .question(1), offset: 12, target: Int(target)))
        }
    }

    /// A backwards chain of `count` pointers in opaque data, entered by answer 2's owner name: the
    /// name has count + 1 pointers.
    private func pointerChain(_ count: Int) -> [UInt8] {
        var chain: [UInt8] = [0xC0, 12]  // to the question's root name
        for index in 1..<count { chain += [0xC0 | UInt8((28 + 2 * (index - 1)) >> 8), UInt8((28 + 2 * (index - 1)) & 0xFF)] }
        let last = 28 + 2 * (count - 1)
        return header(counts: (1, 2, 0, 0)) + [0, 0, 1, 0, 1]
            + [0] + recordTail(type: 99, data: chain)
            + [0xC0 | UInt8(last >> 8), UInt8(last & 0xFF)] + recordTail(type: 1, data: [1, 2, 3, 4])
    }

    @Test func pointerChainsAreBounded() throws {
        #expect(try DNSMessage.decode(pointerChain(126)).answers[1].name == .root)
        let tooMany = pointerChain(127)
        #expect(refusal(tooMany) == .tooManyPointers(part: .answer(2), offset: 28 + 2 * 127))
    }

    @Test(arguments: [UInt8(0x40), 0x41, 0x7F, 0x80, 0xBF])
    func reservedLabelTypesAreRefused(_ byte: UInt8) {
        // 0x40...0x7F would also be labels longer than 63 if the type bits were length bits.
        let packet = header(counts: (1, 0, 0, 0)) + [byte] + Array(repeating: 0x61, count: 130) + [0, 0, 1, 0, 1]
        #expect(refusal(packet) == .reservedLabelType(part: .question(1), offset: 12, byte: byte))
    }

    @Test func namesLongerThan255BytesAreRefused() throws {
        let label63 = [63] + Array(repeating: UInt8(0x61), count: 63)
        let direct = header(counts: (1, 0, 0, 0)) + label63 + label63 + label63 + label63 + [0, 0, 1, 0, 1]
        #expect(refusal(direct) == .nameTooLong(part: .question(1), offset: 12, length: 257))

        // 254 bytes is fine; a label in front of a pointer to it makes 256.
        let label60 = [60] + Array(repeating: UInt8(0x62), count: 60)
        let longest = label63 + label63 + label63 + label60 + [0]
        #expect(longest.count == 254)
        let valid = header(counts: (1, 0, 0, 0)) + longest + [0, 1, 0, 1]
        #expect(try DNSMessage.decode(valid).questions[0].name.wireForm.count == 254)
        let viaPointer = header(counts: (2, 0, 0, 0)) + longest + [0, 1, 0, 1] + [1, 0x62, 0xC0, 12, 0, 1, 0, 1]
        #expect(refusal(viaPointer) == .nameTooLong(part: .question(2), offset: 12 + 254 + 4, length: 256))
        let justFits = header(counts: (2, 0, 0, 0)) + longest + [0, 1, 0, 1] + [0xC0, 12, 0, 1, 0, 1]
        #expect(try DNSMessage.decode(justFits).questions[1].name.wireForm.count == 254)
    }

    @Test func addressDataMustHaveItsExactLength() {
        let five = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 1, data: [1, 2, 3, 4, 5])
        #expect(refusal(five) == .badAddressLength(part: .answer(1), offset: 23, type: .a, length: 5))
        #expect(refusal(five)?.description == "A data at offset 23 in the answer record 1 is 5 bytes; it must be 4")
        let four = header(counts: (0, 0, 1, 0)) + [0] + recordTail(type: 28, data: [1, 2, 3, 4])
        #expect(refusal(four) == .badAddressLength(part: .authority(1), offset: 23, type: .aaaa, length: 4))
    }

    @Test func namesInRecordDataMustFillItExactly() {
        let extra = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 5, data: wire("a") + [0xFF])
        #expect(refusal(extra) == .trailingRecordData(part: .answer(1), offset: 26, type: .cname, count: 1))

        // RDLENGTH 2, but the name inside is 5 bytes long: the name may not run past its RDATA even
        // though the message goes on.
        let overrun = header(counts: (0, 1, 0, 0)) + [0] + uint16(5) + uint16(1) + [0, 0, 0, 60] + uint16(2) + wire("abc")
        #expect(refusal(overrun) == .truncated(part: .answer(1), offset: 23, needed: 4, available: 2))

        let preferenceOnly = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 15, data: [0, 10])
        #expect(refusal(preferenceOnly) == .truncated(part: .answer(1), offset: 25, needed: 1, available: 0))

        let soaWithoutMinimum = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 6, data: [0, 0] + Array(repeating: 0, count: 16))
        #expect(refusal(soaWithoutMinimum) == .truncated(part: .answer(1), offset: 41, needed: 4, available: 0))

        let srvTrailing = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 33, data: [0, 1, 0, 2, 0, 3, 0, 9])
        #expect(refusal(srvTrailing) == .trailingRecordData(part: .answer(1), offset: 30, type: .srv, count: 1))

        let ptrSpaceInside = header(counts: (0, 1, 0, 0)) + [0] + recordTail(type: 12, data: [])
        #expect(refusal(ptrSpaceInside) == .truncated(part: .answer(1), offset: 23, needed: 1, available: 0))
    }

    @Test func optRecordsAreChecked() throws {
        let opt: [UInt8] = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]
        #expect(refusal(header(counts: (0, 0, 0, 2)) + opt + opt) == .duplicateOPT(part: .additional(2), offset: 23))
        let named = header(counts: (0, 0, 0, 1)) + wire("x") + recordTail(type: 41, data: [])
        #expect(refusal(named) == .nonRootOPT(part: .additional(1), offset: 12, name: name("x")))
        #expect(refusal(header(counts: (0, 1, 0, 0)) + opt) == .misplacedOPT(part: .answer(1), offset: 12))
        #expect(refusal(header(counts: (0, 0, 1, 0)) + opt) == .misplacedOPT(part: .authority(1), offset: 12))
        #expect(try DNSMessage.decode(header(counts: (0, 0, 0, 1)) + opt).edns?.udpPayloadSize == 4096)
    }

    @Test func bytesAfterTheLastRecordAreRefused() {
        #expect(refusal(digQueryExampleComA + [0]) == .trailingBytes(offset: 52, count: 1))
        #expect(refusal(header(counts: (0, 0, 0, 0)) + [1, 2, 3]) == .trailingBytes(offset: 12, count: 3))
    }

    @Test func hugeCountsInATinyMessageFailFast() {
        // 65535 of everything announced, nothing there: refused at the first question, no big allocation.
        #expect(refusal(header(counts: (65535, 65535, 65535, 65535))) == .truncated(part: .question(1), offset: 12, needed: 1, available: 0))
        #expect(refusal(header(counts: (0, 65535, 0, 0)) + [0]) == .truncated(part: .answer(1), offset: 13, needed: 2, available: 0))
    }

    @Test func errorDescriptionsSayWhatAndWhere() {
        let cases: [(DNSWireError, String)] = [
            (.pointerIntoHeader(part: .question(1), offset: 12, target: 5), "compression pointer at offset 12 in the question 1 points into the 12-byte header (to 5)"),
            (.reservedLabelType(part: .additional(2), offset: 40, byte: 0x80), "label at offset 40 in the additional record 2 has the reserved type bits of 0x80"),
            (.nameTooLong(part: .authority(1), offset: 30, length: 256), "name longer than 255 bytes at offset 30 in the authority record 1"),
            (.trailingBytes(offset: 52, count: 1), "1 bytes left after the last record at offset 52"),
            (.duplicateOPT(part: .additional(2), offset: 23), "second OPT record at offset 23"),
            (.badStreamLength(length: 3), "length prefix is 3"),
            (.tooManyPointers(part: .header, offset: 12), "too many compression pointers in the name at offset 12"),
        ]
        for (error, expected) in cases {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }
}

/// The error `decode` throws, or nil (recorded as an issue) when it accepts the bytes.
func refusal(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> DNSWireError? {
    do {
        let message = try DNSMessage.decode(bytes)
        Issue.record("accepted: \(message)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
