public struct DNSMessage: Sendable, Equatable {
    public var header: DNSHeader
    public var questions: [DNSQuestion]
    public var answers: [DNSResourceRecord]
    public var authorities: [DNSResourceRecord]
    public var additionals: [DNSResourceRecord]  // the OPT record (if any) stays in here

    public init(
        header: DNSHeader, questions: [DNSQuestion] = [], answers: [DNSResourceRecord] = [],
        authorities: [DNSResourceRecord] = [], additionals: [DNSResourceRecord] = []
    ) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// Strict decoding: every count honoured, names checked (pointer only backwards to an earlier
    /// offset and never into the header, loops, label types 0b01/0b10 refused, label ≤ 63, name ≤ 255
    /// bytes), RDLENGTH bounds, A = 4 bytes, AAAA = 16, names inside known RDATA fully consumed,
    /// at most one OPT record and only with the root name, no bytes left after the last record.
    ///
    /// Also refused: an OPT record outside the additional section (RFC 6891 §6.1.1). Every loop is
    /// bounded by the bytes it consumes, so the work is linear in the message size.
    public static func decode(_ bytes: [UInt8]) throws(DNSWireError) -> DNSMessage {
        var reader = WireReader(bytes: bytes)
        return try reader.readMessage()
    }

    /// Only the 12-byte header (for answering FORMERR with the right ID when the rest is bad);
    /// nil when fewer than 12 bytes.
    public static func decodeHeader(_ bytes: [UInt8]) -> (
        header: DNSHeader, questionCount: Int,
        answerCount: Int, authorityCount: Int, additionalCount: Int
    )? {
        guard bytes.count >= 12 else { return nil }
        func word(_ index: Int) -> UInt16 { UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]) }
        return (
            DNSHeader(id: word(0), flags: word(2)), Int(word(4)), Int(word(6)), Int(word(8)), Int(word(10))
        )
    }

    /// The first OPT record of `additionals`, as EDNS.
    /// Set: replaces the first OPT record in place (appends one when there is none) and removes any
    /// other; nil removes every OPT record.
    public var edns: EDNS? {
        get {
            guard let index = additionals.firstIndex(where: { $0.type == .opt }) else { return nil }
            return EDNS(record: additionals[index])
        }
        set {
            let first = additionals.firstIndex(where: { $0.type == .opt })
            guard let newValue else {
                if first != nil { additionals.removeAll { $0.type == .opt } }
                return
            }
            guard let first else {
                additionals.append(newValue.record)
                return
            }
            additionals[first] = newValue.record
            var index = first + 1
            while index < additionals.count {
                if additionals[index].type == .opt { additionals.remove(at: index) } else { index += 1 }
            }
        }
    }

    /// The full 12-bit response code (header 4 bits + EDNS extended bits); nil for codes not in the enum.
    public var responseCode: DNSResponseCode? {
        let extended = UInt16(edns?.extendedResponseCode ?? 0)
        return DNSResponseCode(rawValue: extended << 4 | UInt16(header.responseCode & 0x0F))
    }

    /// Sets the header bits and, when code > 15, the EDNS extended bits (adds OPT if missing). A code
    /// that fits the header clears the extended bits of an existing OPT, so the two never disagree.
    public mutating func setResponseCode(_ code: DNSResponseCode) {
        header.responseCode = UInt8(code.rawValue & 0x0F)
        let extended = UInt8(code.rawValue >> 4)
        if var edns {
            if edns.extendedResponseCode != extended {
                edns.extendedResponseCode = extended
                self.edns = edns
            }
        } else if extended != 0 {
            var edns = EDNS()
            edns.extendedResponseCode = extended
            self.edns = edns
        }
    }

    /// Wire form with name compression (owner names, and the names inside CNAME/NS/PTR/MX/SOA; never
    /// inside SRV or opaque data). When the message exceeds `maximumSize` (clamped to at least 512):
    /// miekg/dns `Msg.Truncate` semantics — the OPT record is kept, records are kept whole in
    /// order answer → authority → additional while they fit, the rest dropped, TC set if any record
    /// was dropped. The result is never larger than max(maximumSize, 512) unless the header +
    /// question + OPT alone are larger.
    ///
    /// Details:
    /// - `maximumSize` is also clamped to at most 65535, the largest message either transport carries.
    /// - Compression is case-exact: a name is pointed at only by a byte-identical suffix, so every name
    ///   decodes with the case it was given (RFC 4343 case preservation, and 0x20 query randomisation
    ///   survives).
    /// - As in miekg, the first record that does not fit ends the message: no smaller record after it
    ///   is tried. When records are dropped the OPT record (the first record of type OPT in
    ///   `additionals`) is written last, as miekg re-appends it.
    /// - A record whose RDATA is longer than 65535 bytes cannot be written and counts as not fitting.
    public func encode(maximumSize: Int = 65535) -> [UInt8] {
        let limit = min(max(maximumSize, 512), 65535)
        // Only a message far past 64 KiB could hold more; the count field cannot say more.
        let questions = self.questions.count > 0xFFFF ? Array(self.questions.prefix(0xFFFF)) : self.questions

        var writer = WireWriter(reserving: 512)
        writer.writeHeaderPlaceholder()
        for question in questions { writer.writeQuestion(question) }
        let fits =
            writer.count <= limit && writer.writeRecords(answers, limit: limit)
            && writer.writeRecords(authorities, limit: limit) && writer.writeRecords(additionals, limit: limit)
        if fits {
            writer.patchHeader(
                id: header.id, flags: header.flags, counts: (questions.count, answers.count, authorities.count, additionals.count))
            return writer.bytes
        }
        return encodeTruncated(questions: questions, limit: limit)
    }

    private func encodeTruncated(questions: [DNSQuestion], limit: Int) -> [UInt8] {
        var writer = WireWriter(reserving: limit)
        writer.writeHeaderPlaceholder()
        for question in questions { writer.writeQuestion(question) }

        let optIndex = additionals.firstIndex { $0.type == .opt }
        let optSize = optIndex.map { WireWriter.uncompressedSize(of: additionals[$0]) } ?? 0
        let budget = limit - optSize

        var kept = (answers: 0, authorities: 0, additionals: 0)
        sections: for (sectionNumber, section) in [answers, authorities, additionals].enumerated() {
            for (index, record) in section.enumerated() {
                if sectionNumber == 2 && index == optIndex { continue }
                let mark = writer.count
                guard writer.writeRecord(record), writer.count <= budget else {
                    writer.rollBack(to: mark)
                    break sections
                }
                switch sectionNumber {
                case 0: kept.answers += 1
                case 1: kept.authorities += 1
                default: kept.additionals += 1
                }
            }
        }
        if let optIndex {
            // The owner is the root in any OPT worth keeping; uncompressed so that nothing it writes can
            // depend on the compression entries of records just rolled back.
            if writer.writeRecord(additionals[optIndex], compressOwner: false) {
                kept.additionals += 1
            }
        }
        let dropped =
            kept.answers < answers.count || kept.authorities < authorities.count
            || kept.additionals < additionals.count
        var header = header
        header.isTruncated = header.isTruncated || dropped
        writer.patchHeader(
            id: header.id, flags: header.flags,
            counts: (questions.count, kept.answers, kept.authorities, kept.additionals))
        return writer.bytes
    }
}
