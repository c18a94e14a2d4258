import Capture
import DNSResolution
import DNSWire
import Synchronization

/// How a query reached the proxy: it decides the answer's size limit and the upstream's protocol.
public enum DNSTransport: String, Sendable {
    case udp
    case tcp
}

/// What to do with one datagram or TCP message.
public enum QueryDecision: Sendable {
    /// Not a query (a response, or fewer than 12 bytes): answering could start a loop between two
    /// servers, so it is dropped, as miekg/dns drops it.
    case drop
    /// The complete answer, already sized for the client.
    case reply([UInt8])
    /// Not in the name table: the original bytes go upstream unchanged (DNS.md §5).
    case forward(ForwardedQuery)
}

/// A query on its way upstream, with what is needed to check and size the answer that comes back.
public struct ForwardedQuery: Sendable {
    /// The client's message exactly as received (same ID, flags and EDNS).
    public var bytes: [UInt8]
    public var query: DNSMessage
    /// The largest answer the client accepts over its transport.
    public var responseLimit: Int

    /// The answer when every upstream failed (DNS.md §5: SERVFAIL, never a made-up NXDOMAIN).
    public var serverFailure: [UInt8] {
        QueryAnswerer.reply(to: query, code: .serverFailure).encode(maximumSize: responseLimit)
    }

    /// An upstream's answer, passed through unchanged when it fits the client, else cut to size with
    /// TC set so the client retries over TCP. Nil when it is not a well-formed answer to this query.
    public func clientResponse(from upstream: [UInt8]) -> [UInt8]? {
        if upstream.count <= responseLimit { return upstream }
        guard let message = try? DNSMessage.decode(upstream) else { return nil }
        return message.encode(maximumSize: responseLimit)
    }
}

/// Istio's `ServeDNS` (DNS.md §5) as a pure function of the bytes received and the current table,
/// with miekg/dns's acceptance rules in front of it.
public final class QueryAnswerer: Sendable {
    /// A table answer is authoritative for 30 s (DNS.md §4).
    public static let tableTTL: UInt32 = nameTableTTL
    /// The UDP payload size this proxy advertises in its own OPT records: the size DNS Flag Day 2020
    /// settled on, which avoids IP fragmentation on every common path.
    public static let advertisedUDPPayloadSize: UInt16 = 1232
    /// RFC 6891 §6.2.5: a requestor's size below 512 is treated as 512.
    public static let minimumUDPResponseSize = 512

    /// Forward queries while no table has arrived yet (Istio's `respondBeforeSync`, used when the
    /// agent serves :53 directly on a VM); otherwise SERVFAIL until the first table.
    public let forwardBeforeTableLoads: Bool
    /// Where the next answer's address list starts (round robin across queries).
    private let rotation = Atomic<UInt>(0)

    public init(forwardBeforeTableLoads: Bool = false) {
        self.forwardBeforeTableLoads = forwardBeforeTableLoads
    }

    public func decide(_ bytes: [UInt8], transport: DNSTransport, table: LookupTable?) -> QueryDecision {
        guard let (header, questionCount, answerCount, authorityCount, additionalCount) = DNSMessage.decodeHeader(bytes),
              !header.isResponse else {
            return .drop
        }
        // miekg/dns's DefaultMsgAcceptFunc: only QUERY is implemented, one question, and no more
        // records than an ordinary query (or an IXFR's SOA) carries.
        guard header.opcode == 0 else {
            return .reply(Self.headerOnlyReply(header, code: .notImplemented))
        }
        guard questionCount == 1, answerCount <= 1, authorityCount <= 1, additionalCount <= 2 else {
            return .reply(Self.headerOnlyReply(header, code: .formatError))
        }
        let query: DNSMessage
        do {
            query = try DNSMessage.decode(bytes)
        } catch {
            return .reply(Self.headerOnlyReply(header, code: .formatError))
        }
        let limit = Self.responseLimit(for: query, transport: transport)
        if let edns = query.edns, edns.version > 0 {
            // RFC 6891 §6.1.3: a version we do not speak gets BADVERS, with our OPT (version 0).
            return .reply(Self.reply(to: query, code: .badVersion).encode(maximumSize: limit))
        }
        let question = query.questions[0]
        guard let table else {
            if forwardBeforeTableLoads { return .forward(ForwardedQuery(bytes: bytes, query: query, responseLimit: limit)) }
            return .reply(Self.reply(to: query, code: .serverFailure).encode(maximumSize: limit))
        }
        let family: IPFamily
        switch question.type {
        case .a: family = .ipv4
        case .aaaa: family = .ipv6
        default:
            // SRV, PTR, TXT, MX and the rest are never answered from the table (DNS.md §5).
            return .forward(ForwardedQuery(bytes: bytes, query: query, responseLimit: limit))
        }
        guard question.recordClass == 1 else {
            return .forward(ForwardedQuery(bytes: bytes, query: query, responseLimit: limit))
        }
        switch table.lookup(question.name.lowercasedKey, family: family) {
        case .notFound:
            return .forward(ForwardedQuery(bytes: bytes, query: query, responseLimit: limit))
        case .found(let canonicalName, let addresses):
            return .reply(tableAnswer(to: query, canonicalName: canonicalName, addresses: addresses).encode(maximumSize: limit))
        }
    }

    /// NOERROR, authoritative: a CNAME from the asked name when it is a search-domain alias, then the
    /// addresses (none for a known host without that family: NODATA, never NXDOMAIN, istio#31250),
    /// rotated per query as kube-dns does so clients spread over the addresses.
    func tableAnswer(to query: DNSMessage, canonicalName: String?, addresses: [IPAddress]) -> DNSMessage {
        var response = Self.reply(to: query, code: .noError)
        response.header.isAuthoritative = true
        let question = query.questions[0]
        var owner = question.name
        // Istio answers NODATA for an alias with no records of the family without its CNAME.
        if let canonicalName, !addresses.isEmpty, let target = DNSName(canonicalName) {
            response.answers.append(DNSResourceRecord(name: owner, type: .cname, ttl: Self.tableTTL, data: .name(target)))
            owner = target
        }
        if !addresses.isEmpty {
            let start = Int(rotation.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(addresses.count))
            for index in 0..<addresses.count {
                let address = addresses[(start + index) % addresses.count]
                response.answers.append(DNSResourceRecord(name: owner, type: question.type, ttl: Self.tableTTL,
                                                          data: .address(address.bytes)))
            }
        }
        return response
    }

    /// A response to `query` with the question echoed as asked (case preserved), RD copied, and our
    /// OPT record when the client spoke EDNS.
    static func reply(to query: DNSMessage, code: DNSResponseCode) -> DNSMessage {
        var header = DNSHeader(id: query.header.id)
        header.isResponse = true
        header.opcode = query.header.opcode
        header.recursionDesired = query.header.recursionDesired
        // Every name not in the table is resolved upstream on the client's behalf.
        header.recursionAvailable = true
        header.checkingDisabled = query.header.checkingDisabled
        var response = DNSMessage(header: header, questions: query.questions)
        if query.edns != nil {
            response.edns = EDNS(udpPayloadSize: advertisedUDPPayloadSize)
        }
        response.setResponseCode(code)
        return response
    }

    /// FORMERR or NOTIMP for a message whose body cannot be trusted: only its ID and opcode are echoed.
    static func headerOnlyReply(_ request: DNSHeader, code: DNSResponseCode) -> [UInt8] {
        var header = DNSHeader(id: request.id)
        header.isResponse = true
        header.opcode = request.opcode
        header.recursionDesired = request.recursionDesired
        header.responseCode = UInt8(code.rawValue & 0xF)
        return DNSMessage(header: header).encode()
    }

    /// UDP: the client's EDNS size (at least 512), 512 without EDNS; TCP: a whole message (DNS.md §5).
    static func responseLimit(for query: DNSMessage, transport: DNSTransport) -> Int {
        switch transport {
        case .tcp: return 65535
        case .udp: return max(minimumUDPResponseSize, Int(query.edns?.udpPayloadSize ?? 0))
        }
    }
}
