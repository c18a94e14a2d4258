public struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)
    public static let any = DNSRecordType(rawValue: 255)

    /// "A", "AAAA", ..., "TYPE1234" for unknown (RFC 3597 §5).
    public var description: String {
        switch rawValue {
        case 1: "A"
        case 2: "NS"
        case 5: "CNAME"
        case 6: "SOA"
        case 12: "PTR"
        case 13: "HINFO"
        case 15: "MX"
        case 16: "TXT"
        case 28: "AAAA"
        case 33: "SRV"
        case 35: "NAPTR"
        case 39: "DNAME"
        case 41: "OPT"
        case 43: "DS"
        case 46: "RRSIG"
        case 47: "NSEC"
        case 48: "DNSKEY"
        case 50: "NSEC3"
        case 64: "SVCB"
        case 65: "HTTPS"
        case 252: "AXFR"
        case 255: "ANY"
        case 257: "CAA"
        default: "TYPE\(rawValue)"
        }
    }

    /// The types whose RDATA names RFC 1035 allows to be compressed. RFC 3597 §4 forbids compressing
    /// names in any later type, since a server that does not know the type cannot expand them.
    var hasCompressibleNames: Bool {
        switch rawValue {
        case 2, 5, 6, 12, 15: true
        default: false
        }
    }
}

public enum DNSResponseCode: UInt16, Sendable {  // 12-bit: 4 bits in the header + 8 in OPT
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
    case badVersion = 16
}

public struct DNSHeader: Sendable, Equatable {
    public var id: UInt16
    public var isResponse: Bool  // QR
    public var opcode: UInt8  // 0...15; 0 = QUERY
    public var isAuthoritative: Bool  // AA
    public var isTruncated: Bool  // TC
    public var recursionDesired: Bool  // RD
    public var recursionAvailable: Bool  // RA
    public var authenticData: Bool  // AD
    public var checkingDisabled: Bool  // CD
    public var responseCode: UInt8  // the header's 4 bits only

    public init(id: UInt16 = 0) {
        self.id = id
        isResponse = false
        opcode = 0
        isAuthoritative = false
        isTruncated = false
        recursionDesired = false
        recursionAvailable = false
        authenticData = false
        checkingDisabled = false
        responseCode = 0
    }

    /// The two flag bytes (RFC 1035 §4.1.1, AD/CD from RFC 4035 §3.2). The Z bit is written as 0 and
    /// ignored on input; opcode and RCODE are masked to their 4 bits.
    var flags: UInt16 {
        var flags = UInt16(opcode & 0x0F) << 11 | UInt16(responseCode & 0x0F)
        if isResponse { flags |= 0x8000 }
        if isAuthoritative { flags |= 0x0400 }
        if isTruncated { flags |= 0x0200 }
        if recursionDesired { flags |= 0x0100 }
        if recursionAvailable { flags |= 0x0080 }
        if authenticData { flags |= 0x0020 }
        if checkingDisabled { flags |= 0x0010 }
        return flags
    }

    init(id: UInt16, flags: UInt16) {
        self.id = id
        isResponse = flags & 0x8000 != 0
        opcode = UInt8((flags >> 11) & 0x0F)
        isAuthoritative = flags & 0x0400 != 0
        isTruncated = flags & 0x0200 != 0
        recursionDesired = flags & 0x0100 != 0
        recursionAvailable = flags & 0x0080 != 0
        authenticData = flags & 0x0020 != 0
        checkingDisabled = flags & 0x0010 != 0
        responseCode = UInt8(flags & 0x000F)
    }
}

public struct DNSQuestion: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSRecordType
    public var recordClass: UInt16  // 1 = IN

    public init(name: DNSName, type: DNSRecordType, recordClass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
    }
}

/// RDATA. Decoding picks the case from the record type alone (A, AAAA, NS, CNAME, PTR, MX, SOA,
/// SRV; everything else opaque). Encoding writes whatever case it is given: pairing a case with a
/// type it does not belong to produces a message this decoder would refuse or read differently.
public enum DNSRecordData: Sendable, Equatable {
    case address([UInt8])  // A (4 bytes) or AAAA (16)
    case name(DNSName)  // CNAME, NS, PTR (compressible, RFC 1035)
    case mailExchange(preference: UInt16, exchange: DNSName)  // MX (compressible)
    case startOfAuthority(
        primary: DNSName, mailbox: DNSName, serial: UInt32, refresh: UInt32,
        retry: UInt32, expire: UInt32, minimum: UInt32)  // SOA (compressible)
    case service(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)  // SRV (decoded with
    // pointers accepted, encoded uncompressed, RFC 2782)
    case opaque([UInt8])  // every other type (incl. OPT), bytes as received
}

public struct DNSResourceRecord: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSRecordType
    public var recordClass: UInt16
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, type: DNSRecordType, recordClass: UInt16 = 1, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }
}

/// EDNS(0) (RFC 6891) as carried by the OPT pseudo-record in the additional section.
public struct EDNS: Sendable, Equatable {
    public var udpPayloadSize: UInt16  // the OPT record's class
    public var extendedResponseCode: UInt8  // TTL bits 31-24: the upper 8 bits of the 12-bit RCODE
    public var version: UInt8  // TTL bits 23-16
    public var dnssecOK: Bool  // TTL bit 15
    public var options: [UInt8]  // RDATA as received (option code/length/value triples)

    public init(udpPayloadSize: UInt16 = 1232, version: UInt8 = 0, dnssecOK: Bool = false, options: [UInt8] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedResponseCode = 0
        self.version = version
        self.dnssecOK = dnssecOK
        self.options = options
    }

    /// nil unless type == .opt and name is the root (and the data is opaque, as decoding makes it).
    /// The TTL's other Z bits (14-0) are not kept: RFC 6891 §6.1.4 says to ignore them.
    public init?(record: DNSResourceRecord) {
        guard record.type == .opt, record.name.isRoot, case .opaque(let options) = record.data else { return nil }
        udpPayloadSize = record.recordClass
        extendedResponseCode = UInt8(truncatingIfNeeded: record.ttl >> 24)
        version = UInt8(truncatingIfNeeded: record.ttl >> 16)
        dnssecOK = record.ttl & 0x8000 != 0
        self.options = options
    }

    public var record: DNSResourceRecord {
        let ttl = UInt32(extendedResponseCode) << 24 | UInt32(version) << 16 | (dnssecOK ? 0x8000 : 0)
        return DNSResourceRecord(name: .root, type: .opt, recordClass: udpPayloadSize, ttl: ttl, data: .opaque(options))
    }
}
