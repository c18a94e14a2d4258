import Capture
import DNSProxy
import DNSWire
import PodLab
import Sockets
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What arrives on 15053 comes from any process in the pod: nothing it sends may crash the proxy,
/// make it answer garbage, or hold a connection open.
@Suite("DNS proxy under bad input", .serialized)
struct DNSBadInputTests {
    @Test("FORMERR with the query's ID for malformed queries; NOTIMP for other opcodes; BADVERS for EDNS version 1; responses and runts dropped")
    func malformedQueries() async throws {
        try await withDNSLab(table: meshTable, upstreams: [], startUpstream: false) { lab in
            let valid = query("api.example.test", .a, id: 0x1234)

            // A compression pointer to itself where the question's name should be.
            let loop: [UInt8] = Array(valid[0..<12]) + [0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01]
            try expectAnswer(lab, loop, code: .formatError, id: 0x1234)
            // Cut in the middle of the name.
            try expectAnswer(lab, Array(valid[0..<20]), code: .formatError, id: 0x1234)
            // One byte too many.
            try expectAnswer(lab, valid + [0], code: .formatError, id: 0x1234)
            // Two questions.
            var twoQuestions = valid
            twoQuestions[5] = 2
            try expectAnswer(lab, twoQuestions, code: .formatError, id: 0x1234)
            // A label of 64 bytes.
            try expectAnswer(lab, Array(valid[0..<12]) + [64] + Array(repeating: 0x61, count: 64) + [0, 0, 1, 0, 1], code: .formatError, id: 0x1234)
            // Opcode 2 (STATUS).
            var status = valid
            status[2] |= 2 << 3
            try expectAnswer(lab, status, code: .notImplemented, id: 0x1234)
            // EDNS version 1.
            var header = DNSHeader(id: 0x1234)
            header.recursionDesired = true
            var versioned = DNSMessage(header: header, questions: [DNSQuestion(name: DNSName("api.example.test")!, type: .a)])
            versioned.edns = EDNS(udpPayloadSize: 1232, version: 1)
            let badVersion = try #require(try lab.exchange(versioned.encode()))
            #expect(try DNSMessage.decode(badVersion).responseCode == .badVersion)

            // Not answered at all: a response (answering it could start a loop), 11 bytes, an oversized datagram.
            var response = valid
            response[2] |= 0x80
            #expect(try lab.exchange(response) == nil)
            #expect(try lab.exchange(Array(valid[0..<11])) == nil)
            #expect(try lab.exchange(valid + Array(repeating: 0, count: 5000)) == nil)

            // Still answering.
            #expect(addresses(try lab.query("api.example.test", .a)) == ["203.0.113.30"])
        }
    }

    @Test("20,000 mutated datagrams: the proxy answers each with a well-formed message or not at all, and keeps answering")
    func mutatedDatagrams() async throws {
        try await withDNSLab(table: meshTable, upstreams: [], startUpstream: false) { lab in
            let seeds = [
                query("reviews.bookinfo.svc.cluster.local", .a, udpPayloadSize: 1232),
                query("productpage.default.svc.cluster.local", .aaaa),
                query("reviews.bookinfo.default.svc.cluster.local", .a),
                query("unknown.example.test", .txt, udpPayloadSize: 4096),
            ]
            var random = SplitMix(seed: 0x5eed_d115)
            var sent = 0
            var answered = 0
            var malformedAnswers: [String] = []
            try lab.namespace.run {
                let socket = try UDPTestSocket(connectedTo: DNSLab.proxyEndpoint)
                defer { socket.close() }
                for _ in 0..<400 {
                    for _ in 0..<50 {
                        socket.send(mutate(seeds[Int(random.next() % UInt64(seeds.count))], &random))
                        sent += 1
                    }
                    // Drain what came back before the next batch, so the socket buffer never overflows.
                    while let answer = socket.receive(timeout: .milliseconds(20)) {
                        answered += 1
                        if (try? DNSMessage.decode(answer)) == nil, malformedAnswers.count < 5 { malformedAnswers.append("\(answer)") }
                    }
                }
            }
            #expect(sent == 20_000)
            #expect(answered > 1000, "most mutations still have a readable header and get FORMERR or an answer")
            #expect(malformedAnswers.isEmpty, "every answer decodes: \(malformedAnswers)")
            #expect(addresses(try lab.query("reviews.bookinfo.svc.cluster.local", .a)) == ["198.51.100.10"])
            #expect(addresses(try lab.query("reviews.bookinfo.svc.cluster.local", .a, transport: .tcp)) == ["198.51.100.10"])
        }
    }

    @Test("TCP: a length below 12 closes the connection; a message left half-sent is closed within the 2 s read timeout")
    func tcpStreams() async throws {
        try await withDNSLab(table: meshTable, upstreams: [], startUpstream: false) { lab in
            try lab.namespace.run {
                let garbage = try TCPTestConnection(to: DNSLab.proxyEndpoint)
                garbage.send([0x00, 0x05, 1, 2, 3, 4, 5])
                #expect(garbage.waitForClose(timeout: .seconds(1)))

                let stalled = try TCPTestConnection(to: DNSLab.proxyEndpoint)
                let valid = DNSTCPFraming.frame(query("api.example.test", .a))
                stalled.send(Array(valid[0..<10]))
                let started = ContinuousClock.now
                #expect(stalled.waitForClose(timeout: .seconds(4)))
                #expect(ContinuousClock.now - started >= .milliseconds(1500))

                // Two pipelined queries in one write, then one arriving byte by byte: three answers.
                let pipelined = try TCPTestConnection(to: DNSLab.proxyEndpoint)
                pipelined.send(valid + valid)
                for byte in valid { pipelined.send([byte]) }
                var decoder = DNSStreamDecoder()
                var answers = 0
                for _ in 0..<50 where answers < 3 {
                    guard let bytes = pipelined.receive(timeout: .milliseconds(100)) else { continue }
                    decoder.append(bytes)
                    while let answer = try decoder.nextMessage() {
                        #expect(addresses(try DNSMessage.decode(answer)) == ["203.0.113.30"])
                        answers += 1
                    }
                }
                #expect(answers == 3)
                pipelined.close()
            }
        }
    }

    @Test("500 random TCP streams: each is answered or closed, none left hanging, and the proxy keeps answering")
    func randomTCPStreams() async throws {
        try await withDNSLab(table: meshTable, upstreams: [], startUpstream: false) { lab in
            var random = SplitMix(seed: 0x7c9_57ea)
            let seed = DNSTCPFraming.frame(query("reviews.bookinfo.svc.cluster.local", .a))
            var hanging = 0
            try lab.namespace.run {
                for _ in 0..<500 {
                    let connection = try TCPTestConnection(to: DNSLab.proxyEndpoint)
                    var bytes = random.next() % 3 == 0 ? randomBytes(&random, count: Int(random.next() % 300)) : mutate(seed, &random)
                    // A valid length prefix in front of garbage, sometimes.
                    if random.next() % 4 == 0, bytes.count >= 2 { bytes[0] = 0; bytes[1] = UInt8(truncatingIfNeeded: bytes.count - 2) }
                    connection.send(bytes)
                    connection.shutdownWrite()
                    // Half-closed by the client: the proxy answers what was whole and closes.
                    if !connection.waitForClose(timeout: .seconds(3)) { hanging += 1 }
                    connection.close()
                }
            }
            #expect(hanging == 0)
            #expect(addresses(try lab.query("reviews.bookinfo.svc.cluster.local", .a, transport: .tcp)) == ["198.51.100.10"])
        }
    }

    private func expectAnswer(_ lab: DNSLab, _ bytes: [UInt8], code: DNSResponseCode, id: UInt16,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let answer = try #require(try lab.exchange(bytes), sourceLocation: sourceLocation)
        let message = try DNSMessage.decode(answer)
        #expect(message.responseCode == code, sourceLocation: sourceLocation)
        #expect(message.header.id == id, sourceLocation: sourceLocation)
        #expect(message.header.isResponse, sourceLocation: sourceLocation)
    }
}

/// A deterministic generator, so a failing mutation can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

func randomBytes(_ random: inout SplitMix, count: Int) -> [UInt8] {
    (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

/// One to four edits: bit flips, byte replacements, truncation, insertion, a changed count field.
func mutate(_ seed: [UInt8], _ random: inout SplitMix) -> [UInt8] {
    var bytes = seed
    for _ in 0..<(1 + Int(random.next() % 4)) {
        guard !bytes.isEmpty else { break }
        let position = Int(random.next() % UInt64(bytes.count))
        switch random.next() % 6 {
        case 0: bytes[position] ^= UInt8(1 << (random.next() % 8))
        case 1: bytes[position] = UInt8(truncatingIfNeeded: random.next())
        case 2: bytes.removeSubrange(position...)
        case 3: bytes.insert(contentsOf: randomBytes(&random, count: 1 + Int(random.next() % 8)), at: position)
        case 4: if bytes.count >= 12 { bytes[4 + 2 * Int(random.next() % 4) + 1] = UInt8(truncatingIfNeeded: random.next() % 4) }
        default: if bytes.count > 14 { bytes[12 + Int(random.next() % 3)] = 0xC0 | UInt8(random.next() % 0x3F) }
        }
    }
    return bytes
}

/// A connected UDP socket in the calling thread's netns.
struct UDPTestSocket {
    let descriptor: Int32

    init(connectedTo endpoint: Endpoint) throws {
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0, endpoint.withSocketAddress({ connect(descriptor, $0, $1) }) == 0 else {
            throw LabFailure(description: "UDP socket to \(endpoint): \(String(cString: strerror(errno)))")
        }
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
    }

    func receive(timeout: Duration) -> [UInt8]? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        return count >= 0 ? Array(buffer[0..<count]) : []
    }

    func close() { Glibc.close(descriptor) }
}

/// A TCP connection in the calling thread's netns.
final class TCPTestConnection {
    let descriptor: Int32

    init(to endpoint: Endpoint) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0, endpoint.withSocketAddress({ connect(descriptor, $0, $1) }) == 0 else {
            throw LabFailure(description: "TCP connection to \(endpoint): \(String(cString: strerror(errno)))")
        }
    }

    deinit { Glibc.close(descriptor) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func shutdownWrite() { _ = Glibc.shutdown(descriptor, Int32(SHUT_WR)) }

    func close() {}

    func receive(timeout: Duration) -> [UInt8]? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer[0..<count]) : nil
    }

    /// True when the proxy closes (EOF or reset) within `timeout`; answers read on the way are discarded.
    func waitForClose(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) == 1 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return true }
        }
        return false
    }
}
