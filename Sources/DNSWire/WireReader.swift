/// A cursor over an untrusted message. Every read checks the bytes it needs against `limit` (the end
/// of the message, or of the current RDATA) before touching them and throws `.truncated` otherwise, so
/// no length from the wire can move it out of bounds. `position <= limit <= bytes.count` always holds.
struct WireReader {
    let bytes: [UInt8]
    private(set) var position = 0
    private var limit: Int
    /// Where the reader is, for error messages only.
    private var part = DNSMessagePart.header

    /// RFC 1035 §4.1.4 allows a pointer per label at most, and a name has at most 127 labels.
    static let maximumPointersPerName = 127

    init(bytes: [UInt8]) {
        self.bytes = bytes
        limit = bytes.count
    }

    private func require(_ count: Int) throws(DNSWireError) {
        if count > limit - position {
            throw .truncated(part: part, offset: position, needed: count, available: limit - position)
        }
    }

    private mutating func readUInt16() throws(DNSWireError) -> UInt16 {
        try require(2)
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    private mutating func readUInt32() throws(DNSWireError) -> UInt32 {
        try require(4)
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16
            | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    private mutating func readBytes(_ count: Int) throws(DNSWireError) -> [UInt8] {
        try require(count)
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func readMessage() throws(DNSWireError) -> DNSMessage {
        try require(12)
        let id = try readUInt16()
        let flags = try readUInt16()
        let questionCount = Int(try readUInt16())
        let answerCount = Int(try readUInt16())
        let authorityCount = Int(try readUInt16())
        let additionalCount = Int(try readUInt16())

        var message = DNSMessage(header: DNSHeader(id: id, flags: flags))
        // Counts come from the wire: reserve no more than the remaining bytes could hold (a question
        // takes at least 5 bytes, a record 11) so a lying header cannot make us allocate.
        message.questions.reserveCapacity(min(questionCount, (bytes.count - position) / 5))
        for ordinal in stride(from: 1, through: questionCount, by: 1) {
            part = .question(ordinal)
            let name = try readName()
            let type = DNSRecordType(rawValue: try readUInt16())
            let recordClass = try readUInt16()
            message.questions.append(DNSQuestion(name: name, type: type, recordClass: recordClass))
        }
        message.answers = try readRecords(answerCount, part: DNSMessagePart.answer)
        message.authorities = try readRecords(authorityCount, part: DNSMessagePart.authority)
        message.additionals = try readRecords(additionalCount, part: DNSMessagePart.additional)
        if position != bytes.count {
            throw .trailingBytes(offset: position, count: bytes.count - position)
        }
        return message
    }

    private mutating func readRecords(_ count: Int, part makePart: (Int) -> DNSMessagePart) throws(DNSWireError)
        -> [DNSResourceRecord]
    {
        var records: [DNSResourceRecord] = []
        records.reserveCapacity(min(count, (bytes.count - position) / 11))
        let isAdditional = makePart(1) == .additional(1)
        var sawOPT = false
        for ordinal in stride(from: 1, through: count, by: 1) {
            part = makePart(ordinal)
            let start = position
            let record = try readRecord()
            if record.type == .opt {
                if !isAdditional { throw .misplacedOPT(part: part, offset: start) }
                if sawOPT { throw .duplicateOPT(part: part, offset: start) }
                if !record.name.isRoot { throw .nonRootOPT(part: part, offset: start, name: record.name) }
                sawOPT = true
            }
            records.append(record)
        }
        return records
    }

    private mutating func readRecord() throws(DNSWireError) -> DNSResourceRecord {
        let name = try readName()
        let type = DNSRecordType(rawValue: try readUInt16())
        let recordClass = try readUInt16()
        let ttl = try readUInt32()
        let dataLength = Int(try readUInt16())
        try require(dataLength)
        let dataStart = position
        let dataEnd = position + dataLength
        limit = dataEnd
        let data: DNSRecordData
        switch type {
        case .a, .aaaa:
            guard dataLength == (type == .a ? 4 : 16) else {
                throw .badAddressLength(part: part, offset: dataStart, type: type, length: dataLength)
            }
            data = .address(try readBytes(dataLength))
        case .ns, .cname, .ptr:
            data = .name(try readName())
        case .mx:
            data = .mailExchange(preference: try readUInt16(), exchange: try readName())
        case .soa:
            data = .startOfAuthority(
                primary: try readName(), mailbox: try readName(), serial: try readUInt32(),
                refresh: try readUInt32(), retry: try readUInt32(), expire: try readUInt32(),
                minimum: try readUInt32())
        case .srv:
            data = .service(
                priority: try readUInt16(), weight: try readUInt16(), port: try readUInt16(), target: try readName())
        default:
            data = .opaque(try readBytes(dataLength))
        }
        if position != dataEnd {
            throw .trailingRecordData(part: part, offset: position, type: type, count: dataEnd - position)
        }
        limit = bytes.count
        return DNSResourceRecord(name: name, type: type, recordClass: recordClass, ttl: ttl, data: data)
    }

    /// Reads a possibly compressed name in two passes: the first checks everything and measures, the
    /// second copies the labels into one exactly sized array.
    ///
    /// Each pointer must point before the start of the segment that contains it (the name itself,
    /// then each jump target in turn), so targets strictly decrease: following them always ends, and
    /// a loop is refused as a forward pointer. The count of pointers and the name's length are bounded
    /// as well, so the work per name is bounded whatever the bytes.
    mutating func readName() throws(DNSWireError) -> DNSName {
        let start = position
        var cursor = position
        // Labels before the first pointer must fit the current limit (the RDATA holding the name);
        // after a jump they may be anywhere before the name, up to the message's end.
        var segmentLimit = limit
        var segmentStart = position
        var end: Int? = nil
        var length = 1  // the root's 0
        var pointers = 0
        while true {
            guard cursor < segmentLimit else {
                throw .truncated(part: part, offset: cursor, needed: 1, available: 0)
            }
            let byte = bytes[cursor]
            switch byte & 0xC0 {
            case 0x00:
                if byte == 0 {
                    cursor += 1
                    position = end ?? cursor
                    return copyName(from: start, length: length)
                }
                let labelLength = Int(byte)
                guard labelLength < segmentLimit - cursor else {
                    throw .truncated(
                        part: part, offset: cursor, needed: labelLength + 1, available: segmentLimit - cursor)
                }
                length += labelLength + 1
                if length > 255 { throw .nameTooLong(part: part, offset: start, length: length) }
                cursor += labelLength + 1
            case 0xC0:
                guard cursor + 1 < segmentLimit else {
                    throw .truncated(part: part, offset: cursor, needed: 2, available: segmentLimit - cursor)
                }
                let target = Int(byte & 0x3F) << 8 | Int(bytes[cursor + 1])
                if target < 12 { throw .pointerIntoHeader(part: part, offset: cursor, target: target) }
                if target >= segmentStart { throw .forwardPointer(part: part, offset: cursor, target: target) }
                pointers += 1
                if pointers > Self.maximumPointersPerName { throw .tooManyPointers(part: part, offset: start) }
                if end == nil { end = cursor + 2 }
                segmentStart = target
                segmentLimit = bytes.count
                cursor = target
            default:
                throw .reservedLabelType(part: part, offset: cursor, byte: byte)
            }
        }
    }

    /// Copies a name `readName` has already checked: no further validation needed.
    private func copyName(from start: Int, length: Int) -> DNSName {
        var wire: [UInt8] = []
        wire.reserveCapacity(length)
        var cursor = start
        while true {
            let byte = bytes[cursor]
            if byte == 0 { break }
            if byte & 0xC0 == 0xC0 {
                cursor = Int(byte & 0x3F) << 8 | Int(bytes[cursor + 1])
                continue
            }
            let next = cursor + 1 + Int(byte)
            wire.append(contentsOf: bytes[cursor..<next])
            cursor = next
        }
        wire.append(0)
        return DNSName(validatedWire: wire)
    }
}
