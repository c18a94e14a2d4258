import DNSWire
import Testing

/// A name the test spells correctly; a typo fails the test rather than crashing it.
func name(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> DNSName {
    guard let name = DNSName(text) else {
        Issue.record("\(text) is not a valid name", sourceLocation: sourceLocation)
        return .root
    }
    return name
}

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A name in uncompressed wire form, for building test packets by hand.
func wire(_ labels: String...) -> [UInt8] {
    var bytes: [UInt8] = []
    for label in labels {
        bytes.append(UInt8(label.utf8.count))
        bytes += ascii(label)
    }
    return bytes + [0]
}

func uint16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

func header(id: Int = 0x0101, flags: Int = 0, counts: (Int, Int, Int, Int)) -> [UInt8] {
    uint16(id) + uint16(flags) + uint16(counts.0) + uint16(counts.1) + uint16(counts.2) + uint16(counts.3)
}

/// Record fields after the owner name: type, class IN, TTL 60, RDLENGTH (from the data), data.
func recordTail(type: Int, data: [UInt8], recordClass: Int = 1) -> [UInt8] {
    uint16(type) + uint16(recordClass) + [0, 0, 0, 60] + uint16(data.count) + data
}

/// splitmix64 (Steele, Lea, Flood 2014): small, seeded, and the same on every run.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Uniform enough in 0..<bound for a test (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// dig 9.18's query for example.com A: RD and AD set, EDNS with a 4096-byte UDP size and a client
/// COOKIE option (RFC 7873, code 10, 8 bytes).
let digQueryExampleComA: [UInt8] = [
    0x12, 0x34,  // ID
    0x01, 0x20,  // RD, AD
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // QD 1, AN 0, NS 0, AR 1
    // 12: example.com. A IN
    0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    // 29: OPT: root, type 41, UDP size 4096, TTL 0 (RCODE 0, version 0, DO clear), RDLENGTH 12
    0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c,
    // COOKIE option: code 10, length 8, client cookie
    0x00, 0x0a, 0x00, 0x08, 0x8f, 0x1e, 0x5b, 0x3c, 0x9a, 0x44, 0x01, 0xd7,
]

/// A recursive resolver's answer for www.example.com A through a CNAME chain, compressed the way a
/// straightforward encoder does (and this one must): every owner and CNAME target points at the
/// longest suffix written before it.
let cnameChainResponse: [UInt8] = [
    0xbe, 0xef,  // ID
    0x81, 0x80,  // QR, RD, RA
    0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,  // QD 1, AN 3
    // 12: www(12) example(16) com(24) . A IN
    0x03, 0x77, 0x77, 0x77, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00,
    0x00, 0x01, 0x00, 0x01,
    // 33: -> 12 (www.example.com) CNAME TTL 3600, RDLENGTH 6: web(45) -> 16 (example.com)
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x06,
    0x03, 0x77, 0x65, 0x62, 0xc0, 0x10,
    // 51: -> 45 (web.example.com) CNAME TTL 60, RDLENGTH 17: cdn(63) example(67) net(75) .
    0xc0, 0x2d, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x11,
    0x03, 0x63, 0x64, 0x6e, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x6e, 0x65, 0x74, 0x00,
    // 80: -> 63 (cdn.example.net) A TTL 60 93.184.216.34
    0xc0, 0x3f, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 0x5d, 0xb8, 0xd8, 0x22,
]

/// One record of every data kind the codec knows, plus opaque ones and an OPT.
func everyKindMessage() -> DNSMessage {
    var header = DNSHeader(id: 0xA55A)
    header.isResponse = true
    header.opcode = 2
    header.isAuthoritative = true
    header.recursionDesired = true
    header.recursionAvailable = true
    header.authenticData = true
    header.checkingDisabled = true
    header.responseCode = 3
    let zone = name("Example.ORG")
    return DNSMessage(
        header: header,
        questions: [DNSQuestion(name: name("www.example.org"), type: .any), DNSQuestion(name: zone, type: .soa, recordClass: 3)],
        answers: [
            DNSResourceRecord(name: name("www.example.org"), type: .a, ttl: 30, data: .address([10, 0, 0, 1])),
            DNSResourceRecord(
                name: name("www.example.org"), type: .aaaa, ttl: 30,
                data: .address([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            DNSResourceRecord(name: name("alias.example.org"), type: .cname, ttl: 0xFFFF_FFFF, data: .name(name("www.example.org"))),
            DNSResourceRecord(name: name("1.0.0.10.in-addr.arpa"), type: .ptr, ttl: 5, data: .name(name("www.example.org"))),
            DNSResourceRecord(name: zone, type: .mx, ttl: 300, data: .mailExchange(preference: 10, exchange: name("mail.example.org"))),
            DNSResourceRecord(
                name: name("_http._tcp.example.org"), type: .srv, ttl: 300,
                data: .service(priority: 1, weight: 2, port: 8080, target: name("www.example.org"))),
            DNSResourceRecord(name: zone, type: .txt, ttl: 300, data: .opaque([5] + ascii("hello") + [0])),
            DNSResourceRecord(name: zone, type: DNSRecordType(rawValue: 4321), recordClass: 255, ttl: 1, data: .opaque([])),
        ],
        authorities: [
            DNSResourceRecord(name: zone, type: .ns, ttl: 86400, data: .name(name("ns1.example.org"))),
            DNSResourceRecord(
                name: zone, type: .soa, ttl: 3600,
                data: .startOfAuthority(
                    primary: name("ns1.example.org"), mailbox: name("hostmaster.example.org"), serial: 2024010101,
                    refresh: 7200, retry: 3600, expire: 1_209_600, minimum: 300)),
        ],
        additionals: [
            DNSResourceRecord(name: name("ns1.example.org"), type: .a, ttl: 60, data: .address([192, 0, 2, 53])),
            EDNS(udpPayloadSize: 1232, version: 0, dnssecOK: true, options: [0, 10, 0, 2, 0xAB, 0xCD]).record,
            DNSResourceRecord(name: name("weird\\.label\\032x.example.org"), type: .a, ttl: 60, data: .address([192, 0, 2, 54])),
        ])
}
