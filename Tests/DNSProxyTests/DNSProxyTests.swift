import Capture
import DNSProxy
import DNSResolution
import DNSWire
import Logging
import PodLab
import Testing
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// The proxy with real clients (dig and `DNSClient`) and dnsmasq as the upstream, in a scratch netns.
@Suite("DNS proxy against dig and dnsmasq", .serialized)
struct DNSProxyTests {
    @Test("table names answered over UDP and TCP, authoritative, 30 s TTL, as dig shows them")
    func tableAnswersWithDig() async throws {
        try await withDNSLab(table: meshTable, startUpstream: false) { lab in
            let udp = try lab.dig(["reviews.bookinfo.svc.cluster.local", "A"])
            #expect(udp.contains("status: NOERROR"))
            #expect(udp.contains("flags: qr aa rd ra"))
            #expect(digRecords(udp) == [["reviews.bookinfo.svc.cluster.local.", "30", "IN", "A", "198.51.100.10"]])
            let tcp = try lab.dig(["+tcp", "productpage.default.svc.cluster.local", "AAAA", "+short"])
            #expect(tcp.split(separator: "\n") == ["2001:db8:5::20"])
            // Case is the asker's to choose (DNS 0x20): the answer matches whatever was asked.
            let mixed = try lab.query("Reviews.BookInfo.svc.Cluster.Local", .a)
            #expect(addresses(mixed) == ["198.51.100.10"])
            #expect(mixed.answers.first?.name.description == "Reviews.BookInfo.svc.Cluster.Local.")
            #expect(lab.counts["requests"] == 3)
            #expect(lab.counts["upstream"] == 0)
        }
    }

    @Test("search-domain forms: svc, svc.ns, svc.ns.svc, the FQDN, and the pre-expanded CNAME alias")
    func searchDomainForms() async throws {
        try await withDNSLab(table: meshTable, startUpstream: false) { lab in
            // What a stub resolver with `search default.svc.cluster.local ...` and ndots:5 asks first.
            let short = try lab.query("productpage.default.svc.cluster.local.", .a)      // "productpage"
            #expect(addresses(short) == ["198.51.100.20"])
            #expect(short.header.isAuthoritative)
            let namespaced = try lab.query("reviews.bookinfo.default.svc.cluster.local.", .a)   // "reviews.bookinfo"
            #expect(cnameTargets(namespaced) == ["reviews.bookinfo."])
            #expect(addresses(namespaced) == ["198.51.100.10"])
            #expect(namespaced.answers.last?.name.description == "reviews.bookinfo.")
            let withSvc = try lab.query("reviews.bookinfo.svc.default.svc.cluster.local.", .a)   // "reviews.bookinfo.svc"
            #expect(cnameTargets(withSvc) == ["reviews.bookinfo.svc."])
            #expect(addresses(withSvc) == ["198.51.100.10"])
            // Asked as they are (a resolver that tries the name itself first, or a dotted FQDN).
            for name in ["reviews.bookinfo.", "reviews.bookinfo.svc.", "reviews.bookinfo.svc.cluster.local.", "productpage."] {
                let answer = try lab.query(name, .a)
                #expect(answer.responseCode == .noError, "\(name)")
                #expect(!addresses(answer).isEmpty, "\(name)")
            }
            // A short name is only the pod's own namespace's.
            let otherShort = try lab.query("reviews.", .a, timeout: .seconds(3))
            #expect(otherShort.responseCode == .serverFailure, "forwarded, and there is no upstream in this lab")
            let wildcard = try lab.query("eu.api.wild.example.test", .a)
            #expect(addresses(wildcard) == ["203.0.113.40"])
            #expect(wildcard.answers.first?.name.description == "eu.api.wild.example.test.")
        }
    }

    @Test("AAAA for an IPv4-only host: NOERROR with no answers, never NXDOMAIN (istio#31250)")
    func missingFamilyIsNoData() async throws {
        try await withDNSLab(table: meshTable, startUpstream: false) { lab in
            let answer = try lab.query("reviews.bookinfo.svc.cluster.local", .aaaa)
            #expect(answer.responseCode == .noError)
            #expect(answer.answers.isEmpty)
            #expect(answer.header.isAuthoritative)
            let digged = try lab.dig(["api.example.test", "AAAA"])
            #expect(digged.contains("status: NOERROR"))
            #expect(digged.contains("ANSWER: 0"))
        }
    }

    @Test("names not in the table, other types and other classes go to dnsmasq and come back unchanged")
    func forwarding() async throws {
        try await withDNSLab(table: meshTable) { lab in
            let forwarded = try lab.dig(["upstream.test", "A", "+short"])
            #expect(forwarded.split(separator: "\n") == [Substring(DNSLab.upstreamAddress)])
            let viaTCP = try lab.query("upstream.test", .a, transport: .tcp)
            #expect(addresses(viaTCP) == [DNSLab.upstreamAddress])
            let missing = try lab.dig(["nowhere.test", "A"])
            #expect(missing.contains("status: NXDOMAIN"), "the upstream's NXDOMAIN passes through")
            let text = try lab.query("text.test", .txt)
            #expect(text.answers.count == 1)
            #expect(text.answers.first?.type == .txt)
            // A table name asked for a type the table does not hold is the upstream's to answer.
            let mailExchange = try lab.query("reviews.bookinfo.svc.cluster.local", .mx)
            #expect(!mailExchange.header.isAuthoritative)
            #expect(lab.upstreamLog.contains("query[MX] reviews.bookinfo.svc.cluster.local"))
            #expect(!lab.upstreamLog.contains("query[A] reviews.bookinfo"), "table names never reach the upstream")
            #expect(lab.counts["upstream"] == 5)
            #expect(lab.counts["failures"] == 0)
            #expect(lab.counts["durations"] == 5)
        }
    }

    @Test("every upstream down: SERVFAIL after the timeout, counted as a failure")
    func upstreamDown() async throws {
        try await withDNSLab(table: meshTable, upstreams: [DNSLab.deadUpstream], startUpstream: false,
                             forwardTimeout: .milliseconds(300)) { lab in
            let started = ContinuousClock.now
            let answer = try lab.query("upstream.test", .a)
            #expect(answer.responseCode == .serverFailure)
            #expect(ContinuousClock.now - started < .seconds(2))
            let overTCP = try lab.query("upstream.test", .a, transport: .tcp)
            #expect(overTCP.responseCode == .serverFailure)
            #expect(lab.counts["failures"] == 2)
            // The table still answers.
            #expect(addresses(try lab.query("api.example.test", .a)) == ["203.0.113.30"])
        }
    }

    @Test("a dead server first: the next is tried in turn, or asked at the same time with DNS_FORWARD_PARALLEL")
    func deadAndLiveUpstreams() async throws {
        for parallel in [false, true] {
            try await withDNSLab(table: meshTable, upstreams: [DNSLab.deadUpstream, DNSLab.upstreamEndpoint],
                                 forwardInParallel: parallel, forwardTimeout: .milliseconds(400)) { lab in
                for _ in 0..<4 {
                    let started = ContinuousClock.now
                    let answer = try lab.query("upstream.test", .a)
                    #expect(addresses(answer) == [DNSLab.upstreamAddress])
                    if parallel { #expect(ContinuousClock.now - started < .milliseconds(300), "parallel: the live server answers first") }
                }
                #expect(lab.counts["failures"] == 0)
            }
        }
    }

    @Test("truncation: 512 bytes without EDNS with TC set, the whole answer over TCP, large EDNS answers from upstream kept whole")
    func truncationAndTCPRetry() async throws {
        try await withDNSLab(table: meshTable) { lab in
            // 40 table addresses do not fit in 512 bytes.
            let truncatedBytes = try #require(try lab.exchange(query("many.default.svc.cluster.local", .a)))
            #expect(truncatedBytes.count <= 512)
            let truncated = try DNSMessage.decode(truncatedBytes)
            #expect(truncated.header.isTruncated)
            #expect(truncated.answers.count > 0 && truncated.answers.count < 40, "whole records, as many as fit")
            let retried = try lab.query("many.default.svc.cluster.local", .a, retryOverTCP: true)
            #expect(addresses(retried).count == 40)
            #expect(!retried.header.isTruncated)
            let withEDNS = try lab.query("many.default.svc.cluster.local", .a, udpPayloadSize: 1232)
            #expect(addresses(withEDNS).count == 40)

            // dig retries over TCP by itself, as glibc does; the TCP query is forwarded over TCP.
            let digged = try lab.dig(["+noedns", "+ignore", "big.test", "A"])
            #expect(digged.contains("flags: qr") && digged.contains(" tc"), "without EDNS the upstream's answer is truncated")
            let retriedByDig = try lab.dig(["+noedns", "big.test", "A", "+short"])
            #expect(retriedByDig.split(separator: "\n").count == DNSLab.bigRecordCount)
            // Istio's open #61371: an upstream answer above 512 bytes over UDP must arrive whole.
            let large = try lab.query("big.test", .a, udpPayloadSize: 4096)
            #expect(!large.header.isTruncated)
            #expect(addresses(large).count == DNSLab.bigRecordCount)
            #expect(lab.upstreamLog.contains("query[A] big.test from 127.0.0.1"))
        }
    }

    @Test("SERVFAIL until the first table, then answers; a changed file is reloaded, a broken one ignored")
    func tableLoadAndReload() async throws {
        try await withDNSLab(table: nil, startUpstream: false) { lab in
            let source = NameTableSource(path: lab.tableFile(), proxyDomain: "svc.cluster.local", podNamespace: "default",
                                         searchDomains: ["default.svc.cluster.local"], pollInterval: .milliseconds(50))
            let watcher = NameTableWatcher(source: source, store: lab.store, logger: Logger(label: "dns-test"))
            let watching = Task { await watcher.run() }
            defer { watching.cancel() }

            #expect(try lab.query("api.example.test", .a).responseCode == .serverFailure)
            #expect(!lab.store.isLoaded)

            try TextFile.writeAtomically(#"{"table": {"api.example.test": {"ips": ["203.0.113.30"], "registry": "External"}}}"#, to: lab.tableFile())
            #expect(try await eventually { addresses(try lab.query("api.example.test", .a)) == ["203.0.113.30"] })

            try TextFile.writeAtomically(#"{"table": {"api.example.test": {"ips": ["203.0.113.31", "203.0.113.32"], "registry": "External"}}}"#,
                                         to: lab.tableFile())
            #expect(try await eventually { addresses(try lab.query("api.example.test", .a)).sorted() == ["203.0.113.31", "203.0.113.32"] })

            // A broken table is refused; the last good one keeps answering.
            try TextFile.writeAtomically(#"{"table": {"api.example.test": {"ips": [31]}}}"#, to: lab.tableFile())
            try await Task.sleep(for: .milliseconds(300))
            #expect(addresses(try lab.query("api.example.test", .a)).sorted() == ["203.0.113.31", "203.0.113.32"])
            #expect(throws: NameTableLoadError.self) { try source.load() }
        }
    }

    /// Polls `condition` for up to 5 s.
    func eventually(_ condition: () throws -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if (try? condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }
}

/// The resource records of dig's answer section, split into fields.
func digRecords(_ output: String) -> [[String]] {
    let lines = output.split(separator: "\n").drop { !$0.hasPrefix(";; ANSWER SECTION:") }.dropFirst()
    return lines.prefix { !$0.isEmpty && !$0.hasPrefix(";;") }.map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
}

/// A query's wire form, as a stub resolver sends it: RD set, optionally EDNS.
func query(_ name: String, _ type: DNSRecordType, id: UInt16 = 0x5151, udpPayloadSize: UInt16? = nil) -> [UInt8] {
    var header = DNSHeader(id: id)
    header.recursionDesired = true
    var message = DNSMessage(header: header, questions: [DNSQuestion(name: DNSName(name)!, type: type)])
    if let udpPayloadSize { message.edns = EDNS(udpPayloadSize: udpPayloadSize) }
    return message.encode()
}
