import DNSWire
import Testing

@Suite struct DNSMessageCodecTests {
    @Test func decodesDigsQueryAndEncodesItBackByteForByte() throws {
        let message = try DNSMessage.decode(digQueryExampleComA)
        #expect(message.header.id == 0x1234)
        #expect(!message.header.isResponse)
        #expect(message.header.recursionDesired)
        #expect(message.header.authenticData)
        #expect(!message.header.checkingDisabled)
        #expect(message.questions == [DNSQuestion(name: name("example.com"), type: .a)])
        #expect(message.answers.isEmpty && message.authorities.isEmpty)
        let edns = try #require(message.edns)
        #expect(edns.udpPayloadSize == 4096)
        #expect(edns.version == 0 && edns.extendedResponseCode == 0 && !edns.dnssecOK)
        #expect(edns.options == [0x00, 0x0a, 0x00, 0x08, 0x8f, 0x1e, 0x5b, 0x3c, 0x9a, 0x44, 0x01, 0xd7])
        #expect(message.responseCode == .noError)
        #expect(message.encode() == digQueryExampleComA)
    }

    @Test func buildsTheSameQueryFromValues() {
        var header = DNSHeader(id: 0x1234)
        header.recursionDesired = true
        header.authenticData = true
        var query = DNSMessage(header: header, questions: [DNSQuestion(name: name("example.com."), type: .a)])
        query.edns = EDNS(udpPayloadSize: 4096, options: [0x00, 0x0a, 0x00, 0x08, 0x8f, 0x1e, 0x5b, 0x3c, 0x9a, 0x44, 0x01, 0xd7])
        #expect(query.encode() == digQueryExampleComA)
    }

    @Test func decodesACNAMEChainThroughCompressionPointers() throws {
        let message = try DNSMessage.decode(cnameChainResponse)
        #expect(message.header.id == 0xBEEF)
        #expect(message.header.isResponse && message.header.recursionDesired && message.header.recursionAvailable)
        #expect(!message.header.isAuthoritative && !message.header.isTruncated)
        #expect(message.questions == [DNSQuestion(name: name("www.example.com"), type: .a)])
        #expect(
            message.answers == [
                DNSResourceRecord(name: name("www.example.com"), type: .cname, ttl: 3600, data: .name(name("web.example.com"))),
                DNSResourceRecord(name: name("web.example.com"), type: .cname, ttl: 60, data: .name(name("cdn.example.net"))),
                DNSResourceRecord(name: name("cdn.example.net"), type: .a, ttl: 60, data: .address([93, 184, 216, 34])),
            ])
        #expect(message.edns == nil)
        #expect(message.encode() == cnameChainResponse)
    }

    @Test func compressionShrinksRepeatedNamesToWhatWasComputedByHand() throws {
        let owner = name("reviews.bookinfo.svc.cluster.local")  // 36 bytes in wire form
        var header = DNSHeader(id: 7)
        header.isResponse = true
        let response = DNSMessage(
            header: header, questions: [DNSQuestion(name: owner, type: .a)],
            answers: (1...3).map { DNSResourceRecord(name: owner, type: .a, ttl: 30, data: .address([10, 0, 0, UInt8($0)])) })
        let bytes = response.encode()
        // Header 12 + question 36 + 4 + three answers of (pointer 2 + 10 + 4).
        #expect(bytes.count == 12 + 40 + 3 * 16)
        #expect(Array(bytes[52..<54]) == [0xC0, 0x0C])
        #expect(Array(bytes[68..<70]) == [0xC0, 0x0C])

        // A CNAME target sharing a suffix with the question ends in a pointer to that suffix
        // (svc.cluster.local at 12 + 1 + 7 + 1 + 8 = 29) and the A record's owner points at the target.
        let chained = DNSMessage(
            header: header, questions: [DNSQuestion(name: owner, type: .a)],
            answers: [
                DNSResourceRecord(name: owner, type: .cname, ttl: 30, data: .name(name("ratings.other.svc.cluster.local"))),
                DNSResourceRecord(name: name("ratings.other.svc.cluster.local"), type: .a, ttl: 30, data: .address([10, 0, 0, 9])),
            ])
        let chainedBytes = chained.encode()
        // CNAME: 2 + 10 + (8 ratings + 6 other + 2 pointer) = 28; A: 2 + 10 + 4 = 16.
        #expect(chainedBytes.count == 52 + 28 + 16)
        #expect(Array(chainedBytes[(52 + 12 + 14)..<(52 + 12 + 16)]) == [0xC0, 29])
        #expect(Array(chainedBytes[80..<82]) == [0xC0, UInt8(52 + 12)])
        #expect(try DNSMessage.decode(chainedBytes) == chained)
    }

    @Test func compressionIsCaseExact() throws {
        // Pointing "WWW.example.com" at "www.example.com" would change its case on the way back.
        let message = DNSMessage(
            header: DNSHeader(id: 1), questions: [DNSQuestion(name: name("www.example.com"), type: .a)],
            answers: [DNSResourceRecord(name: name("WWW.example.com"), type: .a, ttl: 1, data: .address([1, 2, 3, 4]))])
        let bytes = message.encode()
        // The owner keeps its own first label and points at example.com (offset 16).
        #expect(Array(bytes[33..<39]) == [3] + ascii("WWW") + [0xC0, 16])
        #expect(try DNSMessage.decode(bytes) == message)
    }

    @Test func srvTargetsAndUnknownTypesAreNeverCompressed() throws {
        let target = name("www.example.org")
        let message = DNSMessage(
            header: DNSHeader(id: 1), questions: [DNSQuestion(name: target, type: .srv)],
            answers: [
                DNSResourceRecord(name: target, type: .srv, ttl: 1, data: .service(priority: 0, weight: 5, port: 53, target: target))
            ])
        let bytes = message.encode()
        // Question 12..<33, owner pointer 33..<35, fixed fields to 45, then 6 bytes of SRV numbers.
        #expect(Array(bytes[51...]) == wire("www", "example", "org"))
        #expect(Array(bytes[43..<45]) == uint16(6 + 17))
        #expect(try DNSMessage.decode(bytes) == message)
    }

    @Test func roundTripsEveryRecordDataKind() throws {
        let message = everyKindMessage()
        let bytes = message.encode()
        let decoded = try DNSMessage.decode(bytes)
        #expect(decoded == message)
        #expect(decoded.encode() == bytes)
        #expect(decoded.header.opcode == 2 && decoded.header.responseCode == 3)
        #expect(decoded.edns?.dnssecOK == true)
        #expect(decoded.edns?.options == [0, 10, 0, 2, 0xAB, 0xCD])
        // Every record kind made it through with its own data case.
        #expect(decoded.answers.map(\.type) == [.a, .aaaa, .cname, .ptr, .mx, .srv, .txt, DNSRecordType(rawValue: 4321)])
        // Compression was used: the owners repeat, and only the SRV target must be written in full.
        #expect(bytes.count < uncompressedSize(message) - 100)
    }

    @Test func everyHeaderFlagHasItsOwnBit() throws {
        func flags(_ change: (inout DNSHeader) -> Void) -> [UInt8] {
            var header = DNSHeader(id: 0)
            change(&header)
            return Array(DNSMessage(header: header).encode()[2..<4])
        }
        #expect(flags { $0.isResponse = true } == [0x80, 0x00])
        #expect(flags { $0.opcode = 15 } == [0x78, 0x00])
        #expect(flags { $0.isAuthoritative = true } == [0x04, 0x00])
        #expect(flags { $0.isTruncated = true } == [0x02, 0x00])
        #expect(flags { $0.recursionDesired = true } == [0x01, 0x00])
        #expect(flags { $0.recursionAvailable = true } == [0x00, 0x80])
        #expect(flags { $0.authenticData = true } == [0x00, 0x20])
        #expect(flags { $0.checkingDisabled = true } == [0x00, 0x10])
        #expect(flags { $0.responseCode = 15 } == [0x00, 0x0F])
        // The Z bit (0x0040) is ignored on input and written as 0.
        let withZ = header(flags: 0x0040, counts: (0, 0, 0, 0))
        #expect(try DNSMessage.decode(withZ).encode() == header(flags: 0, counts: (0, 0, 0, 0)))
    }

    @Test func decodeHeaderReadsOnlyTheFirst12Bytes() throws {
        #expect(DNSMessage.decodeHeader(Array(digQueryExampleComA.prefix(11))) == nil)
        let garbageAfterHeader = Array(cnameChainResponse.prefix(12)) + [0xFF, 0xFF]
        let parts = try #require(DNSMessage.decodeHeader(garbageAfterHeader))
        #expect(parts.header.id == 0xBEEF && parts.header.isResponse)
        #expect(parts.questionCount == 1 && parts.answerCount == 3 && parts.authorityCount == 0 && parts.additionalCount == 0)
        let big = try #require(DNSMessage.decodeHeader(header(counts: (65535, 2, 3, 4))))
        #expect(big.questionCount == 65535 && big.additionalCount == 4)
    }

    @Test func ednsExtendedResponseCodeBADVERS() throws {
        // An OPT with extended RCODE 1 and header RCODE 0: 1 << 4 | 0 = 16 = BADVERS (RFC 6891 §9).
        let response =
            header(flags: 0x8000, counts: (0, 0, 0, 1))
            + [0x00, 0x00, 0x29, 0x04, 0xD0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]
        let message = try DNSMessage.decode(response)
        #expect(message.header.responseCode == 0)
        #expect(message.edns?.extendedResponseCode == 1)
        #expect(message.edns?.udpPayloadSize == 1232)
        #expect(message.responseCode == .badVersion)

        var reply = DNSMessage(header: DNSHeader(id: 9))
        reply.setResponseCode(.badVersion)
        #expect(reply.header.responseCode == 0)
        #expect(reply.edns?.extendedResponseCode == 1)
        #expect(reply.responseCode == .badVersion)
        let bytes = reply.encode()
        #expect(Array(bytes[12...]) == [0x00, 0x00, 0x29, 0x04, 0xD0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00])

        // Back to a 4-bit code: the extended bits are cleared, the OPT stays.
        reply.setResponseCode(.nameError)
        #expect(reply.header.responseCode == 3)
        #expect(reply.edns?.extendedResponseCode == 0)
        #expect(reply.responseCode == .nameError)
        #expect(reply.additionals.count == 1)

        // Without an OPT a 4-bit code adds none.
        var plain = DNSMessage(header: DNSHeader(id: 9))
        plain.setResponseCode(.refused)
        #expect(plain.additionals.isEmpty && plain.responseCode == .refused)
        plain.header.responseCode = 6
        #expect(plain.responseCode == nil)
    }

    @Test func ednsWriteReplaceAndRemove() throws {
        var message = DNSMessage(header: DNSHeader(id: 3))
        let a = DNSResourceRecord(name: name("x"), type: .a, ttl: 1, data: .address([1, 1, 1, 1]))
        message.additionals = [a]
        message.edns = EDNS(udpPayloadSize: 512, version: 0, dnssecOK: true, options: [0, 8, 0, 0])
        #expect(message.additionals.count == 2 && message.additionals[0] == a)
        let opt = message.additionals[1]
        #expect(opt.name == .root && opt.type == .opt && opt.recordClass == 512 && opt.ttl == 0x8000)
        #expect(opt.data == .opaque([0, 8, 0, 0]))

        message.additionals.append(a)
        message.edns = EDNS(udpPayloadSize: 4096)
        #expect(message.additionals.map(\.type) == [.a, .opt, .a])
        #expect(message.edns == EDNS(udpPayloadSize: 4096))
        #expect(try DNSMessage.decode(message.encode()).edns?.udpPayloadSize == 4096)

        message.edns = nil
        #expect(message.additionals == [a, a])
        #expect(message.edns == nil)

        // EDNS(record:) is nil for anything but a root-owned OPT.
        #expect(EDNS(record: a) == nil)
        var named = EDNS().record
        named.name = name("example")
        #expect(EDNS(record: named) == nil)
        var version1 = EDNS(version: 1)
        version1.extendedResponseCode = 0xAB
        #expect(version1.record.ttl == 0xAB01_0000)
        #expect(EDNS(record: version1.record) == version1)
    }

    @Test func framesForTCP() {
        #expect(DNSTCPFraming.frame(digQueryExampleComA) == [0, 52] + digQueryExampleComA)
        #expect(DNSTCPFraming.frame(Array(repeating: 0, count: 0x1234)).prefix(2) == [0x12, 0x34])
    }
}

/// The message's size with every name written out in full.
func uncompressedSize(_ message: DNSMessage) -> Int {
    var size = 12 + message.questions.map { $0.name.wireForm.count + 4 }.reduce(0, +)
    for record in message.answers + message.authorities + message.additionals {
        size += record.name.wireForm.count + 10
        switch record.data {
        case .address(let bytes), .opaque(let bytes): size += bytes.count
        case .name(let name): size += name.wireForm.count
        case .mailExchange(_, let exchange): size += 2 + exchange.wireForm.count
        case .startOfAuthority(let primary, let mailbox, _, _, _, _, _): size += primary.wireForm.count + mailbox.wireForm.count + 20
        case .service(_, _, _, let target): size += 6 + target.wireForm.count
        }
    }
    return size
}
