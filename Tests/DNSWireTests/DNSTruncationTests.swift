import DNSWire
import Testing

/// `encode(maximumSize:)` against miekg/dns `Msg.Truncate`: sizes clamped to 512, the OPT kept,
/// whole records in order while they fit, TC when anything was dropped.
@Suite struct DNSTruncationTests {
    static let owner = name("example.com")

    /// Header 12 + question "example.com" A IN (13 + 4) = 29 bytes; each answer is a pointer to the
    /// question name + 10 + 4 = 16 bytes.
    static func response(answers count: Int, edns: EDNS? = nil) -> DNSMessage {
        var header = DNSHeader(id: 42)
        header.isResponse = true
        var message = DNSMessage(
            header: header, questions: [DNSQuestion(name: owner, type: .a)],
            answers: (0..<count).map { answer($0) })
        message.edns = edns
        return message
    }

    static func answer(_ index: Int) -> DNSResourceRecord {
        DNSResourceRecord(name: owner, type: .a, ttl: 30, data: .address([10, 0, UInt8(index >> 8), UInt8(index & 0xFF)]))
    }

    @Test func udp512KeepsTheOPTAndWholeRecordsAndSetsTC() throws {
        let message = Self.response(answers: 40, edns: EDNS(udpPayloadSize: 4096))
        let bytes = message.encode(maximumSize: 512)
        // Budget 512 - 11 (OPT) = 501: 29 + 29 * 16 = 493 fits, a 30th would make 509.
        #expect(bytes.count == 29 + 29 * 16 + 11)
        let decoded = try DNSMessage.decode(bytes)
        #expect(decoded.header.isTruncated)
        #expect(decoded.answers == Array(message.answers.prefix(29)))
        #expect(decoded.edns == EDNS(udpPayloadSize: 4096))
        #expect(decoded.questions == message.questions)
    }

    @Test func aLargerLimitKeepsEverything() throws {
        let message = Self.response(answers: 40, edns: EDNS(udpPayloadSize: 4096))
        let bytes = message.encode(maximumSize: 4096)
        #expect(bytes.count == 29 + 40 * 16 + 11)
        let decoded = try DNSMessage.decode(bytes)
        #expect(!decoded.header.isTruncated)
        #expect(decoded == message)
        #expect(message.encode() == bytes)
    }

    @Test func sizesBelow512CountAs512() {
        let message = Self.response(answers: 40)
        let at512 = message.encode(maximumSize: 512)
        #expect(message.encode(maximumSize: 100) == at512)
        #expect(message.encode(maximumSize: 0) == at512)
        #expect(message.encode(maximumSize: -5) == at512)
        // Without an OPT the whole 512 is for records: 29 + 30 * 16 = 509.
        #expect(at512.count == 509)
    }

    @Test func aRecordEndingExactlyAtTheLimitIsKept() throws {
        let message = Self.response(answers: 40)
        let exact = message.encode(maximumSize: 29 + 35 * 16)
        #expect(exact.count == 29 + 35 * 16)
        #expect(try DNSMessage.decode(exact).answers.count == 35)
        let oneShort = message.encode(maximumSize: 29 + 35 * 16 - 1)
        #expect(try DNSMessage.decode(oneShort).answers.count == 34)
    }

    @Test func theFirstRecordThatDoesNotFitEndsTheMessage() throws {
        // As miekg does, a smaller record after one that did not fit is not tried.
        var message = Self.response(answers: 28)
        message.authorities = [DNSResourceRecord(name: Self.owner, type: .txt, ttl: 1, data: .opaque(Array(repeating: 3, count: 100)))]
        message.additionals = [Self.answer(99)]
        let bytes = message.encode(maximumSize: 512)
        #expect(bytes.count == 29 + 28 * 16)
        let decoded = try DNSMessage.decode(bytes)
        #expect(decoded.answers.count == 28 && decoded.authorities.isEmpty && decoded.additionals.isEmpty)
        #expect(decoded.header.isTruncated)
    }

    @Test func theOPTGoesLastAndAdditionalsFillTheRest() throws {
        var message = Self.response(answers: 0)
        message.answers = [DNSResourceRecord(name: Self.owner, type: .txt, ttl: 1, data: .opaque(Array(repeating: 7, count: 400)))]
        let opt = EDNS(udpPayloadSize: 1232, dnssecOK: true).record
        message.additionals = [Self.answer(1), opt, Self.answer(2), Self.answer(3), Self.answer(4)]
        let bytes = message.encode(maximumSize: 512)
        // 29 + 412 = 441; budget 501 takes three 16-byte additionals (489) but not a fourth (505).
        #expect(bytes.count == 489 + 11)
        let decoded = try DNSMessage.decode(bytes)
        #expect(decoded.additionals == [Self.answer(1), Self.answer(2), Self.answer(3), opt])
        #expect(decoded.header.isTruncated)
        // Untruncated, the OPT keeps its place.
        #expect(try DNSMessage.decode(message.encode()).additionals == message.additionals)
    }

    @Test func anAlreadySetTCStaysSet() throws {
        var message = Self.response(answers: 2)
        message.header.isTruncated = true
        #expect(try DNSMessage.decode(message.encode(maximumSize: 512)).header.isTruncated)
    }

    @Test func questionsAloneOverTheLimitStillGoOut() throws {
        let questions = (0..<30).map { DNSQuestion(name: name("q\($0)\(String(repeating: "x", count: 50)).example"), type: .a) }
        var message = DNSMessage(header: DNSHeader(id: 1), questions: questions)
        let noRecords = message.encode(maximumSize: 512)
        #expect(noRecords.count > 512)
        #expect(try DNSMessage.decode(noRecords) == message)

        message.answers = [Self.answer(0)]
        message.edns = EDNS()
        let dropped = try DNSMessage.decode(message.encode(maximumSize: 512))
        #expect(dropped.header.isTruncated)
        #expect(dropped.questions == questions && dropped.answers.isEmpty && dropped.edns == EDNS())
    }

    @Test func limitsAbove65535CountAs65535() throws {
        // 5000 answers of 16 bytes would be 80 kB: only 65535 bytes can be carried.
        let message = Self.response(answers: 5000)
        let bytes = message.encode(maximumSize: 1 << 20)
        #expect(bytes.count == 29 + (65535 - 29) / 16 * 16)
        #expect(try DNSMessage.decode(bytes).header.isTruncated)
        #expect(message.encode() == bytes)
    }

    @Test func anOversizedRecordDataIsDroppedNotWrapped() throws {
        var message = Self.response(answers: 1)
        message.answers.append(DNSResourceRecord(name: Self.owner, type: .txt, ttl: 1, data: .opaque(Array(repeating: 0, count: 70_000))))
        let decoded = try DNSMessage.decode(message.encode())
        #expect(decoded.answers == [Self.answer(0)])
        #expect(decoded.header.isTruncated)
    }

    /// The oracle: the kept records are the longest prefix of answer + authority + additional (less
    /// the OPT) whose message, OPT appended, encodes within the limit.
    @Test func randomMessagesTruncateLikeTheOracle() throws {
        var random = SplitMix64(state: 0x7EA5_1DE5)
        let names = [Self.owner, name("a.example.com"), name("b.c.example.com"), name("other.test"), name("x.y.z.other.test")]
        var truncatedRounds = 0, wholeRounds = 0
        for round in 0..<150 {
            func randomRecord() -> DNSResourceRecord {
                let owner = names[random.below(names.count)]
                switch random.below(4) {
                case 0: return DNSResourceRecord(name: owner, type: .a, ttl: 1, data: .address([1, 2, 3, UInt8(random.below(256))]))
                case 1: return DNSResourceRecord(name: owner, type: .cname, ttl: 1, data: .name(names[random.below(names.count)]))
                case 2: return DNSResourceRecord(name: owner, type: .txt, ttl: 1, data: .opaque(Array(repeating: 1, count: random.below(300))))
                default:
                    return DNSResourceRecord(
                        name: owner, type: .srv, ttl: 1, data: .service(priority: 1, weight: 1, port: 1, target: names[random.below(names.count)]))
                }
            }
            var message = DNSMessage(header: DNSHeader(id: UInt16(round)), questions: [DNSQuestion(name: names[random.below(names.count)], type: .a)])
            message.answers = (0..<random.below(20)).map { _ in randomRecord() }
            message.authorities = (0..<random.below(5)).map { _ in randomRecord() }
            message.additionals = (0..<random.below(5)).map { _ in randomRecord() }
            let opt = EDNS(udpPayloadSize: 1232, options: Array(repeating: 9, count: random.below(40))).record
            let hasOPT = random.below(2) == 0
            if hasOPT { message.additionals.insert(opt, at: random.below(message.additionals.count + 1)) }
            let limit = [0, 512, 600, 1232, 2000, 4096][random.below(6)]

            let bytes = message.encode(maximumSize: limit)
            let decoded = try DNSMessage.decode(bytes)
            let effectiveLimit = max(limit, 512)

            let sequence =
                message.answers.map { (0, $0) } + message.authorities.map { (1, $0) }
                + message.additionals.filter { $0.type != .opt }.map { (2, $0) }
            func prefixMessage(_ count: Int) -> DNSMessage {
                var prefix = DNSMessage(header: message.header, questions: message.questions)
                for (section, record) in sequence.prefix(count) {
                    switch section {
                    case 0: prefix.answers.append(record)
                    case 1: prefix.authorities.append(record)
                    default: prefix.additionals.append(record)
                    }
                }
                if hasOPT { prefix.additionals.append(opt) }
                return prefix
            }
            if message.encode(maximumSize: 65535).count <= effectiveLimit {
                #expect(decoded == message, "round \(round)")
                wholeRounds += 1
                continue
            }
            truncatedRounds += 1
            var kept = 0
            while kept < sequence.count && prefixMessage(kept + 1).encode().count <= effectiveLimit { kept += 1 }
            var expected = prefixMessage(kept)
            expected.header.isTruncated = kept < sequence.count
            #expect(
                decoded == expected,
                "round \(round): kept \(decoded.answers.count)+\(decoded.authorities.count)+\(decoded.additionals.count), expected \(kept)")
            #expect(bytes.count <= effectiveLimit || kept == 0, "round \(round)")
        }
        // Both paths were taken often enough to mean something.
        #expect(truncatedRounds >= 30 && wholeRounds >= 30, "\(truncatedRounds) truncated, \(wholeRounds) whole")
    }
}
