import Capture
import DNSProxy
import DNSResolution
import DNSWire
import Testing

/// The proxy's decisions as a pure function of the bytes and the table: no sockets.
@Suite("Query answering")
struct QueryAnswererTests {
    let table = DNSLab.lookupTable(meshTable)

    private func decide(_ bytes: [UInt8], _ transport: DNSTransport = .udp, table: LookupTable?,
                        answerer: QueryAnswerer = QueryAnswerer()) -> QueryDecision {
        answerer.decide(bytes, transport: transport, table: table)
    }

    private func reply(_ decision: QueryDecision, sourceLocation: SourceLocation = #_sourceLocation) throws -> DNSMessage {
        guard case .reply(let bytes) = decision else {
            Issue.record("expected a reply, got \(decision)", sourceLocation: sourceLocation)
            throw DNSClientError("no reply")
        }
        return try DNSMessage.decode(bytes)
    }

    @Test("a table answer: QR AA RA, RD copied, the question echoed, TTL 30, our OPT only when the client sent one")
    func tableAnswerShape() throws {
        let plain = try reply(decide(query("reviews.bookinfo.svc.cluster.local", .a, id: 7), table: table))
        #expect(plain.header.id == 7)
        #expect(plain.header.isResponse && plain.header.isAuthoritative && plain.header.recursionAvailable && plain.header.recursionDesired)
        #expect(plain.questions == [DNSQuestion(name: DNSName("reviews.bookinfo.svc.cluster.local")!, type: .a)])
        #expect(plain.answers.map(\.ttl) == [30])
        #expect(plain.edns == nil)
        let withEDNS = try reply(decide(query("reviews.bookinfo.svc.cluster.local", .a, udpPayloadSize: 4096), table: table))
        #expect(withEDNS.edns?.udpPayloadSize == QueryAnswerer.advertisedUDPPayloadSize)
    }

    @Test("answers rotate across queries, kube-dns style")
    func rotation() throws {
        let answerer = QueryAnswerer()
        var firsts = Set<String>()
        for _ in 0..<4 {
            let answer = try reply(decide(query("many.default.svc.cluster.local", .a, udpPayloadSize: 4096), table: table, answerer: answerer))
            #expect(addresses(answer).count == 40)
            firsts.insert(addresses(answer)[0])
        }
        #expect(firsts.count == 4)
    }

    @Test("forwarded: unknown names, other types, other classes; SERVFAIL before the table unless told to forward")
    func forwardingDecisions() throws {
        for bytes in [query("unknown.example.test", .a), query("reviews.bookinfo.svc.cluster.local", .srv),
                      query("reviews.bookinfo.svc.cluster.local", .ptr)] {
            guard case .forward(let forwarded) = decide(bytes, table: table) else {
                Issue.record("not forwarded")
                continue
            }
            #expect(forwarded.bytes == bytes, "sent upstream unchanged")
        }
        var chaos = try DNSMessage.decode(query("reviews.bookinfo.svc.cluster.local", .a))
        chaos.questions[0].recordClass = 3
        guard case .forward = decide(chaos.encode(), table: table) else {
            Issue.record("CH class not forwarded")
            return
        }
        #expect(try reply(decide(query("reviews.bookinfo.svc.cluster.local", .a), table: nil)).responseCode == .serverFailure)
        guard case .forward = decide(query("reviews.bookinfo.svc.cluster.local", .a), table: nil,
                                     answerer: QueryAnswerer(forwardBeforeTableLoads: true)) else {
            Issue.record("not forwarded before the table with forwardBeforeTableLoads")
            return
        }
    }

    @Test("answer size limits: 512 without EDNS, the client's EDNS size (at least 512), 65535 over TCP")
    func sizeLimits() throws {
        func limit(_ bytes: [UInt8], _ transport: DNSTransport) -> Int? {
            guard case .forward(let forwarded) = decide(bytes, transport, table: table) else { return nil }
            return forwarded.responseLimit
        }
        #expect(limit(query("x.test", .a), .udp) == 512)
        #expect(limit(query("x.test", .a, udpPayloadSize: 4096), .udp) == 4096)
        #expect(limit(query("x.test", .a, udpPayloadSize: 100), .udp) == 512)
        #expect(limit(query("x.test", .a), .tcp) == 65535)
    }

    @Test("an upstream answer too large for the client is cut to whole records with TC; a small one passes unchanged")
    func upstreamAnswerSizing() throws {
        guard case .forward(let forwarded) = decide(query("big.test", .a, id: 9), table: table) else {
            Issue.record("not forwarded")
            return
        }
        var header = DNSHeader(id: 9)
        header.isResponse = true
        header.recursionDesired = true
        header.recursionAvailable = true
        let name = DNSName("big.test")!
        let big = DNSMessage(header: header, questions: [DNSQuestion(name: name, type: .a)],
                             answers: (1...60).map { DNSResourceRecord(name: name, type: .a, ttl: 0, data: .address([198, 51, 100, UInt8($0)])) })
        let cut = try #require(forwarded.clientResponse(from: big.encode()))
        #expect(cut.count <= 512)
        let decoded = try DNSMessage.decode(cut)
        #expect(decoded.header.isTruncated)
        #expect(decoded.header.id == 9)
        let small = DNSMessage(header: header, questions: big.questions, answers: Array(big.answers.prefix(2))).encode()
        #expect(forwarded.clientResponse(from: small) == small)
        #expect(try DNSMessage.decode(forwarded.serverFailure).responseCode == .serverFailure)
    }

    @Test("DNS_PROXY_ADDR: localhost follows resolv.conf's families; an address is taken as it is; anything else is refused")
    func listenAddresses() throws {
        let v4 = Endpoint(IPAddress("192.0.2.53")!, 53)
        let v6 = Endpoint(IPAddress("2001:db8::53")!, 53)
        #expect(try DNSProxyConfiguration.listenAddresses(for: "localhost:15053", upstreams: [v4]).map(\.description) == ["127.0.0.1:15053"])
        #expect(try DNSProxyConfiguration.listenAddresses(for: "localhost:15053", upstreams: [v6]).map(\.description) == ["[::1]:15053"])
        #expect(try DNSProxyConfiguration.listenAddresses(for: "localhost:15053", upstreams: [v4, v6]).count == 2)
        #expect(try DNSProxyConfiguration.listenAddresses(for: "localhost:15053", upstreams: []).map(\.description) == ["127.0.0.1:15053"])
        #expect(try DNSProxyConfiguration.listenAddresses(for: "[::1]:5353", upstreams: [v4]).map(\.description) == ["[::1]:5353"])
        #expect(try DNSProxyConfiguration.listenAddresses(for: "127.0.0.1:53", upstreams: [v4]).map(\.description) == ["127.0.0.1:53"])
        for bad in ["dns.local:15053", "15053", "localhost:99999", "localhost:"] {
            #expect(throws: DNSProxyConfigurationError.self, "\(bad)") {
                try DNSProxyConfiguration.listenAddresses(for: bad, upstreams: [v4])
            }
        }
    }
}
