import Capture
import Glibc
@testable import Netfilter
import PodLab
@testable import SluiceInit
import Testing

/// `sluice-init trace` in a pod whose capture rules the built `sluice-init` programmed: real packets,
/// traced by the kernel, printed rule by rule; and the trace table gone afterwards, however the trace ends.
@Suite("sluice-init trace")
struct TraceTests {
    @Test("an app connection is traced through istio-redirect to :15001, and back through lo", arguments: Family.allCases)
    func traceShowsTheRedirect(family: Family) throws {
        let pod = try CapturedPod(family)
        let destination = family.external(80)
        let trace = try RunningTrace(pod.lab, TraceOptions(filter: TraceFilter(transport: .tcp, destination: destination.address,
                                                                                destinationPort: 80),
                                                            count: 1, timeout: .seconds(10)))
        try trace.waitUntilTracing()
        #expect(pod.lab.connect(as: .app, to: destination).landing == .proxyOutbound(originalDestination: destination))
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        let loopback = Endpoint(PodLab.loopback(family.ipFamily), 15001)
        #expect(lines.first?.hasPrefix("sluice-init: tracing tcp packets to \(destination) at prerouting and output") == true,
                "\(output)")
        #expect(lines.contains { $0.hasPrefix("packet 1: tcp \(PodLab.podAddress(family.ipFamily)):")
            && $0.hasSuffix(" → \(destination) [SYN], output, routed via eth0") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  istio-proxy-nat/output rule 1: ") && $0.hasSuffix("jump istio-output"
            + "  # every locally generated packet goes through istio-output") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  istio-proxy-nat/istio-redirect rule 1: meta l4proto tcp ")
            && $0.contains("redirect to :15001 (verdict accept)  # outbound capture") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  looped back through lo as tcp ") && $0.hasSuffix(" → \(loopback) [SYN], prerouting") },
                "\(output)")
        #expect(!output.contains("packet 2"), "\(output)")
        #expect(lines.last?.hasPrefix("sluice-init: traced 1 packet (1 looped back through lo), ") == true, "\(output)")
        #expect(lines.last?.contains("; stopped after --count 1; table inet sluice-trace-") == true, "\(output)")
        #expect(try traceTables(in: pod.lab).isEmpty)
    }

    @Test("SIGINT ends the trace with exit 0 and removes its table")
    func interruptRemovesTheTable() throws {
        let pod = try CapturedPod(.ipv4)
        let trace = try RunningTrace(pod.lab, TraceOptions(filter: TraceFilter(transport: .tcp), timeout: .seconds(20)))
        try trace.waitUntilTracing()
        #expect(try traceTables(in: pod.lab).count == 1)
        trace.interrupt()
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        #expect(output.contains("; stopped by SIGINT; table inet sluice-trace-"), "\(output)")
        #expect(try traceTables(in: pod.lab).isEmpty)
        // Sluice's own tables are untouched.
        #expect(try PodLab.runTool("nft", ["list", "tables"], in: pod.lab.pod).contains("table inet istio-proxy-nat"))
    }

    @Test("a connection the filter does not select produces no events")
    func filterLeavesOtherPacketsOut() throws {
        let pod = try CapturedPod(.ipv4)
        let traced = Family.ipv4.external(80)
        let other = Family.ipv4.otherExternal(443)
        let trace = try RunningTrace(pod.lab, TraceOptions(filter: TraceFilter(transport: .tcp, destination: traced.address,
                                                                                destinationPort: 80),
                                                            count: 1, timeout: .seconds(10)))
        try trace.waitUntilTracing()
        // Captured too, so it passes the same chains, but to another destination.
        #expect(pod.lab.connect(as: .app, to: other).landing == .proxyOutbound(originalDestination: other))
        #expect(pod.lab.connect(as: .app, to: traced).landing == .proxyOutbound(originalDestination: traced))
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        #expect(!output.contains(other.address.description), "\(output)")
        #expect(output.contains("packet 1: tcp 192.0.2.2:"), "\(output)")
        #expect(output.contains(" → \(traced) [SYN]"), "\(output)")
        #expect(!output.contains("packet 2"), "\(output)")
    }

    @Test("--uid traces in output only; the table holds the filter and meta nftrace, ahead of raw")
    func uidFilterTracesOutputOnly() throws {
        let pod = try CapturedPod(.ipv4)
        let filter = TraceFilter(transport: .tcp, destination: PodLab.externalIPv4[0], uid: SocketOwner.app.uid)
        #expect(filter.hooks == [.output])
        try pod.lab.pod.run {
            let session = try NftablesTraceSession(filter: filter)
            defer { session.close() }
            let listing = try PodLab.runTool("nft", ["list", "table", "inet", session.tableName], in: pod.lab.pod)
            #expect(listing.contains("chain output {\n\t\ttype filter hook output priority -350; policy accept;\n"
                                     + "\t\tip daddr 203.0.113.1 meta l4proto tcp meta skuid 1000 meta nftrace set 1 "
                                     + "comment \"sluice-init trace: tcp packets to 203.0.113.1 sent by uid 1000\""), "\(listing)")
            #expect(!listing.contains("prerouting"), "\(listing)")

            // The proxy's own connection is not selected; the app's is, with headers and the route's interface.
            #expect(pod.lab.connect(as: .proxy, to: Family.ipv4.external(80)).landing == .direct(.peer, Family.ipv4.external(80)))
            #expect(pod.lab.connect(as: .app, to: Family.ipv4.external(80)).landing
                == .proxyOutbound(originalDestination: Family.ipv4.external(80)))
            var events: [TraceEvent] = []
            let deadline = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < deadline, let event = try session.next(timeout: .milliseconds(300)) {
                events.append(event)
            }
            let first = try #require(events.first)
            #expect(first.table == session.tableName && first.chain == "output" && first.kind == .rule
                && first.verdict == "continue", "\(first)")
            #expect(first.outputInterface == "eth0" && first.inputInterface == nil, "\(first)")
            let headers = try #require(first.headers)
            #expect(headers.source == PodLab.podIPv4 && headers.destination == PodLab.externalIPv4[0]
                && headers.destinationPort == 80 && headers.flagNames == ["SYN"], "\(headers)")
            let sources = Set(events.compactMap { $0.headers?.sourcePort })
            #expect(sources.count == 1, "only the app's connection: \(events)")
            #expect(events.contains { $0.table == "istio-proxy-nat" && $0.chain == "istio-redirect" && $0.kind == .rule
                && $0.verdict == "accept" && $0.ruleHandle != nil }, "\(events)")
            #expect(events.contains { $0.table == "istio-proxy-nat" && $0.chain == "output" && $0.verdict == "jump istio-output" },
                    "\(events)")
        }
        #expect(try traceTables(in: pod.lab).isEmpty)
    }

    @Test("a port without a protocol is nft's th dport; an input interface omits the output rule")
    func portWithoutProtocol() throws {
        let lab = try PodLab()
        try lab.pod.run {
            let session = try NftablesTraceSession(filter: TraceFilter(destinationPort: 53, inputInterface: "eth0"))
            defer { session.close() }
            let listing = try PodLab.runTool("nft", ["list", "table", "inet", session.tableName], in: lab.pod)
            #expect(listing.contains("type filter hook prerouting priority -350; policy accept;\n"
                                     + "\t\tiifname \"eth0\" th dport 53 meta nftrace set 1"), "\(listing)")
            #expect(!listing.contains("hook output"), "\(listing)")
        }
    }

    @Test("the kernel removes the table of a trace whose socket closed without deleting it (NFT_TABLE_F_OWNER)")
    func ownerFlagRemovesAnAbandonedTable() throws {
        let lab = try PodLab()
        try lab.pod.run {
            let session = try NftablesTraceSession(filter: TraceFilter(transport: .udp))
            #expect(try traceTables(in: lab).count == 1)
            session.abandon()
        }
        #expect(try traceTables(in: lab).isEmpty)
    }

    @Test("a filter that can match nothing is refused before anything is programmed")
    func contradictoryFilterIsRefused() throws {
        let lab = try PodLab()
        let (status, output) = try lab.pod.run {
            var streams = StandardStreams(captured: ("", ""))
            let status = TraceCommand.run(TraceOptions(filter: TraceFilter(inputInterface: "eth0", uid: 1000)), output: &streams)
            return (status, streams.captured!.err)
        }
        #expect(status == 1)
        #expect(output == "sluice-init: cannot start the trace: cannot express the ruleset in nftables netlink: the trace "
                + "filter matches nothing: --uid (a local sender) and --in (an arriving packet) never hold together: give one of them\n")
        #expect(try traceTables(in: lab).isEmpty)
    }
}

/// The `sluice-trace-*` tables in the pod, as `nft list tables` shows them.
private func traceTables(in lab: PodLab) throws -> [Substring] {
    try PodLab.runTool("nft", ["list", "tables"], in: lab.pod).split(separator: "\n").filter { $0.contains("sluice-trace-") }
}

/// `TraceCommand.run` on a thread of its own inside the pod's namespace, as `sluice-init trace --netns`
/// runs it.
private final class RunningTrace: @unchecked Sendable {
    private let lab: PodLab
    private var thread: LabThread?
    // Written by the trace's thread before it ends, read after `join`.
    private var status: Int32 = -1
    private var output = ""

    init(_ lab: PodLab, _ options: TraceOptions) throws {
        try requireRoot()
        self.lab = lab
        let namespace = lab.pod
        thread = LabThread { [self] in
            do {
                try namespace.run {
                    var streams = StandardStreams(captured: ("", ""))
                    status = TraceCommand.run(options, output: &streams)
                    output = streams.captured!.out + streams.captured!.err
                }
            } catch {
                output = "\(error)"
            }
        }
    }

    /// Until the trace table is in place (its rules then mark every matching packet).
    func waitUntilTracing() throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try !traceTables(in: lab).isEmpty { return }
            usleep(20_000)
        }
        Issue.record("the trace table did not appear within 10 s")
    }

    /// The process receives SIGINT, as from Ctrl-C; the trace's handler takes it.
    func interrupt() { kill(getpid(), SIGINT) }

    func finish() -> (status: Int32, output: String) {
        thread?.join()
        thread = nil
        return (status, output)
    }
}
