/// Where in a message a decoding error was found, for error messages. Ordinals count from 1, as a
/// person reading "answer record 2" expects.
public enum DNSMessagePart: Sendable, Equatable, CustomStringConvertible {
    case header
    case question(Int)
    case answer(Int)
    case authority(Int)
    case additional(Int)

    public var description: String {
        switch self {
        case .header: "the header"
        case .question(let ordinal): "the question \(ordinal)"
        case .answer(let ordinal): "the answer record \(ordinal)"
        case .authority(let ordinal): "the authority record \(ordinal)"
        case .additional(let ordinal): "the additional record \(ordinal)"
        }
    }
}

/// Everything the codec refuses. Offsets are byte offsets from the start of the message.
public enum DNSWireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `part` needs `needed` bytes at `offset` but only `available` remain (of the message, or of
    /// the record's RDATA when reading inside it).
    case truncated(part: DNSMessagePart, offset: Int, needed: Int, available: Int)
    /// A compression pointer must point before the start of the name (segment) being read, so that
    /// following pointers always moves backwards and cannot loop (RFC 1035 §4.1.4 "prior occurrence").
    /// Also thrown for a pointer back into its own name, which would loop.
    case forwardPointer(part: DNSMessagePart, offset: Int, target: Int)
    /// Pointers into the 12-byte header are never produced by an honest encoder.
    case pointerIntoHeader(part: DNSMessagePart, offset: Int, target: Int)
    case tooManyPointers(part: DNSMessagePart, offset: Int)
    /// Label types 0b01 (extended, RFC 6891 §5 deprecated it) and 0b10 (reserved).
    case reservedLabelType(part: DNSMessagePart, offset: Int, byte: UInt8)
    /// A name longer than 255 bytes in wire form (RFC 1035 §2.3.4). `offset` is where the name starts;
    /// nil when the name was not read from a message.
    case nameTooLong(part: DNSMessagePart?, offset: Int?, length: Int)
    /// A label longer than 63 bytes, from `DNSName(labels:)`.
    case labelTooLong(index: Int, length: Int)
    /// An empty label in the middle of a name, from `DNSName(labels:)`.
    case emptyLabel(index: Int)
    /// A or AAAA data of the wrong length.
    case badAddressLength(part: DNSMessagePart, offset: Int, type: DNSRecordType, length: Int)
    /// RDATA with bytes left after its last field (a name in CNAME/NS/PTR/MX/SOA/SRV data must end
    /// exactly where RDLENGTH says).
    case trailingRecordData(part: DNSMessagePart, offset: Int, type: DNSRecordType, count: Int)
    /// RFC 6891 §6.1.1: at most one OPT record per message.
    case duplicateOPT(part: DNSMessagePart, offset: Int)
    /// RFC 6891 §6.1.2: the OPT owner name must be the root.
    case nonRootOPT(part: DNSMessagePart, offset: Int, name: DNSName)
    /// RFC 6891 §6.1.1: OPT only in the additional section.
    case misplacedOPT(part: DNSMessagePart, offset: Int)
    /// Bytes after the last record the header's counts announce.
    case trailingBytes(offset: Int, count: Int)
    /// A DNS-over-TCP length prefix below 12: no message is that short, so the stream is garbage.
    case badStreamLength(length: Int)

    public var description: String {
        switch self {
        case .truncated(let part, let offset, let needed, let available):
            "truncated message: \(part) needs \(needed - available) more bytes at offset \(offset) "
                + "(\(needed) needed, \(available) left)"
        case .forwardPointer(let part, let offset, let target):
            target >= offset
                ? "compression pointer at offset \(offset) in \(part) points forward to \(target): a pointer must "
                    + "point before the name it belongs to"
                : "compression pointer at offset \(offset) in \(part) points back to \(target), which is not before "
                    + "the name it belongs to: a loop"
        case .pointerIntoHeader(let part, let offset, let target):
            "compression pointer at offset \(offset) in \(part) points into the 12-byte header (to \(target))"
        case .tooManyPointers(let part, let offset):
            "too many compression pointers in the name at offset \(offset) in \(part)"
        case .reservedLabelType(let part, let offset, let byte):
            "label at offset \(offset) in \(part) has the reserved type bits of 0x\(hex(byte)) "
                + "(only 0b00 labels and 0b11 pointers are allowed)"
        case .nameTooLong(let part, let offset, let length):
            if let part, let offset {
                "name longer than 255 bytes at offset \(offset) in \(part) (\(length) or more)"
            } else {
                "name longer than 255 bytes in wire form (\(length)): shorten it"
            }
        case .labelTooLong(let index, let length):
            "label \(index) is \(length) bytes long; a label has at most 63"
        case .emptyLabel(let index):
            "label \(index) is empty; only the root name ends with an empty label"
        case .badAddressLength(let part, let offset, let type, let length):
            "\(type) data at offset \(offset) in \(part) is \(length) bytes; it must be "
                + "\(type == .aaaa ? 16 : 4)"
        case .trailingRecordData(let part, let offset, let type, let count):
            "\(type) data in \(part) has \(count) bytes left after its last field at offset \(offset)"
        case .duplicateOPT(let part, let offset):
            "second OPT record at offset \(offset) (\(part)): a message carries at most one (RFC 6891)"
        case .nonRootOPT(let part, let offset, let name):
            "OPT record at offset \(offset) (\(part)) is owned by \(name); it must be the root \".\""
        case .misplacedOPT(let part, let offset):
            "OPT record at offset \(offset) in \(part): it belongs in the additional section only"
        case .trailingBytes(let offset, let count):
            "\(count) bytes left after the last record at offset \(offset)"
        case .badStreamLength(let length):
            "DNS over TCP length prefix is \(length); a message has at least 12 bytes, so the stream "
                + "is not DNS: close the connection"
        }
    }
}

func hex(_ byte: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}
