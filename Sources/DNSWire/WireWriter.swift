/// Builds a message in one growing array, compressing names through `CompressionTable`.
struct WireWriter {
    private(set) var bytes: [UInt8]
    private var table = CompressionTable()
    /// Offsets at or past this hold no name any more (a record was rolled back): never point there.
    private var compressionHorizon = Int.max

    init(reserving capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    static func uncompressedSize(of record: DNSResourceRecord) -> Int {
        let dataSize =
            switch record.data {
            case .address(let data), .opaque(let data): data.count
            case .name(let name): name.wire.count
            case .mailExchange(_, let exchange): 2 + exchange.wire.count
            case .startOfAuthority(let primary, let mailbox, _, _, _, _, _): primary.wire.count + mailbox.wire.count + 20
            case .service(_, _, _, let target): 6 + target.wire.count
            }
        return record.name.wire.count + 10 + dataSize
    }

    mutating func writeHeaderPlaceholder() {
        bytes.append(contentsOf: repeatElement(0, count: 12))
    }

    mutating func patchHeader(id: UInt16, flags: UInt16, counts: (Int, Int, Int, Int)) {
        patchUInt16(id, at: 0)
        patchUInt16(flags, at: 2)
        patchUInt16(UInt16(counts.0), at: 4)
        patchUInt16(UInt16(counts.1), at: 6)
        patchUInt16(UInt16(counts.2), at: 8)
        patchUInt16(UInt16(counts.3), at: 10)
    }

    private mutating func patchUInt16(_ value: UInt16, at offset: Int) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    private mutating func writeUInt16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    private mutating func writeUInt32(_ value: UInt32) {
        writeUInt16(UInt16(value >> 16))
        writeUInt16(UInt16(truncatingIfNeeded: value))
    }

    mutating func writeQuestion(_ question: DNSQuestion) {
        writeName(question.name, compress: true)
        writeUInt16(question.type.rawValue)
        writeUInt16(question.recordClass)
    }

    /// Writes records while the message stays within `limit`; false as soon as one does not fit.
    mutating func writeRecords(_ records: [DNSResourceRecord], limit: Int) -> Bool {
        for record in records {
            guard writeRecord(record), bytes.count <= limit else { return false }
        }
        return true
    }

    /// False, with nothing written, when the RDATA is longer than RDLENGTH can say.
    mutating func writeRecord(_ record: DNSResourceRecord, compressOwner: Bool = true) -> Bool {
        let start = bytes.count
        writeName(record.name, compress: compressOwner)
        writeUInt16(record.type.rawValue)
        writeUInt16(record.recordClass)
        writeUInt32(record.ttl)
        let lengthOffset = bytes.count
        writeUInt16(0)
        let compressData = record.type.hasCompressibleNames
        switch record.data {
        case .address(let data), .opaque(let data):
            bytes.append(contentsOf: data)
        case .name(let name):
            writeName(name, compress: compressData)
        case .mailExchange(let preference, let exchange):
            writeUInt16(preference)
            writeName(exchange, compress: compressData)
        case .startOfAuthority(let primary, let mailbox, let serial, let refresh, let retry, let expire, let minimum):
            writeName(primary, compress: compressData)
            writeName(mailbox, compress: compressData)
            writeUInt32(serial)
            writeUInt32(refresh)
            writeUInt32(retry)
            writeUInt32(expire)
            writeUInt32(minimum)
        case .service(let priority, let weight, let port, let target):
            writeUInt16(priority)
            writeUInt16(weight)
            writeUInt16(port)
            writeName(target, compress: false)  // RFC 2782: "name compression is not to be used"
        }
        let dataLength = bytes.count - lengthOffset - 2
        guard dataLength <= 0xFFFF else {
            rollBack(to: start)
            return false
        }
        patchUInt16(UInt16(dataLength), at: lengthOffset)
        return true
    }

    mutating func rollBack(to offset: Int) {
        bytes.removeSubrange(offset...)
        compressionHorizon = min(compressionHorizon, offset)
    }

    /// Writes `name`, ending with a pointer to the longest suffix already in the message when
    /// `compress` is set. Each suffix is found by a hash of its labels (computed from the root up, so
    /// all suffix hashes of a name cost one pass over it) and confirmed by comparing bytes, so the work
    /// is linear in the name's length and no strings are built.
    mutating func writeName(_ name: DNSName, compress: Bool) {
        let wire = name.wire
        guard compress, wire.count > 1 else {
            bytes.append(contentsOf: wire)
            return
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 128) { labelStarts in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { suffixHashes in
                var labelCount = 0
                var index = 0
                while wire[index] != 0 {
                    labelStarts[labelCount] = index
                    labelCount += 1
                    index += Int(wire[index]) + 1
                }
                var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a offset basis, standing for the root
                for label in stride(from: labelCount - 1, through: 0, by: -1) {
                    let labelStart = labelStarts[label]
                    for position in labelStart...(labelStart + Int(wire[labelStart])) {
                        hash = (hash ^ UInt64(wire[position])) &* 0x0000_0100_0000_01B3
                    }
                    suffixHashes[label] = hash
                }

                var literalLabels = labelCount
                var pointer = 0
                search: for label in 0..<labelCount {
                    for candidate in table.candidates(for: suffixHashes[label])
                    where candidate < compressionHorizon && suffix(of: wire, from: labelStarts[label], isAt: candidate) {
                        literalLabels = label
                        pointer = candidate
                        break search
                    }
                }

                let base = bytes.count
                let literalEnd = literalLabels < labelCount ? labelStarts[literalLabels] : wire.count - 1
                bytes.append(contentsOf: wire[0..<literalEnd])
                for label in 0..<literalLabels {
                    let offset = base + labelStarts[label]
                    // RFC 1035 §4.1.4: a pointer has 14 bits of offset.
                    guard offset < 0x4000 else { break }
                    table.insert(hash: suffixHashes[label], offset: offset)
                }
                if literalLabels < labelCount {
                    bytes.append(0xC0 | UInt8(pointer >> 8))
                    bytes.append(UInt8(truncatingIfNeeded: pointer))
                } else {
                    bytes.append(0)
                }
            }
        }
    }

    /// True when the labels of `wire` from `start` equal, byte for byte, the name written at `offset`
    /// (following the pointers this writer wrote, which always point backwards).
    private func suffix(of wire: [UInt8], from start: Int, isAt offset: Int) -> Bool {
        var nameIndex = start
        var messageIndex = offset
        var pointers = 0
        while true {
            var length = bytes[messageIndex]
            while length & 0xC0 == 0xC0 {
                pointers += 1
                guard pointers <= WireReader.maximumPointersPerName else { return false }
                messageIndex = Int(length & 0x3F) << 8 | Int(bytes[messageIndex + 1])
                length = bytes[messageIndex]
            }
            guard length == wire[nameIndex] else { return false }
            if length == 0 { return true }
            let end = nameIndex + 1 + Int(length)
            guard wire[(nameIndex + 1)..<end].elementsEqual(bytes[(messageIndex + 1)..<(messageIndex + 1 + Int(length))])
            else { return false }
            nameIndex = end
            messageIndex += 1 + Int(length)
        }
    }
}

/// Open-addressing hash set of (suffix hash, message offset). A hash only nominates candidates; the
/// writer confirms each by comparing bytes, so a collision costs a comparison, never a wrong pointer.
/// One array, allocated on first insert: messages with no name to compress pay nothing.
struct CompressionTable {
    /// Each slot holds the hash's upper 48 bits and the offset in the lower 16; 0 = empty (no name is
    /// ever at offset 0).
    private var slots: [UInt64] = []
    private var used = 0

    private static let offsetMask: UInt64 = 0xFFFF

    private static func slot(for hash: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: ((hash ^ (hash >> 29)) &* 0xbf58_476d_1ce4_e5b9) >> 40) & mask
    }

    func candidates(for hash: UInt64) -> Candidates {
        Candidates(slots: slots, hash: hash & ~Self.offsetMask)
    }

    struct Candidates: Sequence, IteratorProtocol {
        let slots: [UInt64]
        let hash: UInt64
        var slot: Int
        var probes = 0

        init(slots: [UInt64], hash: UInt64) {
            self.slots = slots
            self.hash = hash
            slot = slots.isEmpty ? 0 : CompressionTable.slot(for: hash, mask: slots.count - 1)
        }

        mutating func next() -> Int? {
            let mask = slots.count - 1
            while probes < slots.count {
                let entry = slots[slot]
                if entry == 0 { return nil }
                slot = (slot + 1) & mask
                probes += 1
                if entry & ~CompressionTable.offsetMask == hash { return Int(entry & CompressionTable.offsetMask) }
            }
            return nil
        }
    }

    /// `offset` is below 0x4000, and above 0.
    mutating func insert(hash: UInt64, offset: Int) {
        if (used + 1) * 2 > slots.count { grow() }
        let key = hash & ~Self.offsetMask
        let mask = slots.count - 1
        var slot = Self.slot(for: key, mask: mask)
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = key | UInt64(offset)
        used += 1
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(32, old.count * 2))
        used = 0
        for entry in old where entry != 0 {
            insert(hash: entry & ~Self.offsetMask, offset: Int(entry & Self.offsetMask))
        }
    }
}
