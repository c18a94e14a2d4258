import Capture
import Glibc
import Netfilter
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
        let trace = try TraceProcess(pod.lab, ["--count", "1", "--timeout", "10", "tcp", "\(destination)"])
        try trace.waitUntilTracing()
        #expect(pod.lab.connect(as: .app, to: destination).landing == .proxyOutbound(originalDestination: destination))
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        let podAddress = family == .ipv4 ? "\(PodLab.podIPv4)" : "[\(PodLab.podIPv6)]"
        let loopback = Endpoint(PodLab.loopback(family.ipFamily), 15001)
        #expect(lines.first?.hasPrefix("sluice-init: tracing tcp packets to \(destination) at prerouting and output") == true,
                "\(output)")
        #expect(lines.contains { $0.hasPrefix("packet 1: tcp \(podAddress):")
            && $0.hasSuffix(" → \(destination) [SYN], output, routed via eth0") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  istio-proxy-nat/output rule 1: ") && $0.hasSuffix("jump istio-output"
            + "  # every locally generated packet goes through istio-output") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  istio-proxy-nat/istio-redirect rule 1: meta l4proto tcp ")
            && $0.contains("redirect to :15001 (verdict accept)  # outbound capture") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  looped back through lo as tcp \(podAddress):")
            && $0.hasSuffix(" → \(loopback) [SYN], prerouting") }, "\(output)")
        #expect(!output.contains("packet 2"), "\(output)")
        #expect(lines.last?.hasPrefix("sluice-init: traced 1 packet (1 looped back through lo), ") == true, "\(output)")
        #expect(lines.last?.contains("; stopped after --count 1; table inet sluice-trace-\(trace.pid) removed") == true,
                "\(output)")
        #expect(try traceTables(in: pod.lab).isEmpty)
    }

    @Test("TPROXY: a connection arriving on eth0 is traced through the mangle chains to tproxy :15006, marks shown")
    func traceShowsTproxyInbound() throws {
        let pod = try TproxyPod(.ipv4)
        let destination = Family.ipv4.pod(8080)
        let trace = try TraceProcess(pod.lab, ["tcp", "--in", PodLab.podInterface, "--count", "1", "--timeout", "10"])
        try trace.waitUntilTracing()
        #expect(pod.lab.connect(from: .peer, to: destination, source: PodLab.peerIPv4).landing
            == .proxyInbound(originalDestination: destination))
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("sluice-init: tracing tcp packets arriving on eth0 at prerouting (") == true, "\(output)")
        #expect(lines.contains { $0.hasPrefix("packet 1: tcp \(PodLab.peerIPv4):")
            && $0.hasSuffix(" → \(destination) [SYN], prerouting, arriving on eth0") }, "\(output)")
        #expect(lines.contains { $0.hasPrefix("  istio-proxy-mangle/prerouting rule 1: ") && $0.contains("jump istio-inbound") },
                "\(output)")
        // The mark the tproxy rule sets is shown once, where it changes.
        let tproxy = lines.filter { $0.hasPrefix("  istio-proxy-mangle/istio-tproxy rule 1: ") }
        #expect(tproxy.count == 1 && tproxy[0].contains("tproxy ip to :15006") && tproxy[0].hasSuffix("  [mark now 1337]"),
                "\(output)")
        #expect(output.components(separatedBy: "[mark now").count == 2, "\(output)")
    }

    @Test("SIGINT ends the trace with exit 0 and removes its table")
    func interruptRemovesTheTable() throws {
        let pod = try CapturedPod(.ipv4)
        let trace = try TraceProcess(pod.lab, ["tcp", "--timeout", "20"])
        try trace.waitUntilTracing()
        #expect(try traceTables(in: pod.lab) == ["table inet sluice-trace-\(trace.pid)"])
        trace.process.signal(SIGINT)
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("sluice-init: tracing tcp packets at prerouting and output (table inet sluice-trace-\(trace.pid), "
                                 + "priority -350), until 20s; Ctrl-C stops\n"), "\(output)")
        #expect(output.contains("\nsluice-init: traced 0 packets, 0 events in "), "\(output)")
        #expect(output.contains("; stopped by SIGINT; table inet sluice-trace-\(trace.pid) removed\n"), "\(output)")
        // Deleted by the trace itself (a failed delete is a warning), not only by the kernel with its socket.
        #expect(!output.contains("warning"), "\(output)")
        #expect(try traceTables(in: pod.lab).isEmpty)
        // Sluice's own tables are untouched.
        #expect(try PodLab.runTool("nft", ["list", "tables"], in: pod.lab.pod).contains("table inet istio-proxy-nat"))
    }

    @Test("SIGKILL: the kernel removes the table with the killed trace's socket (NFT_TABLE_F_OWNER)")
    func killedTraceLeavesNoTable() throws {
        let lab = try PodLab()
        let trace = try TraceProcess(lab, ["udp", "--timeout", "20"])
        try trace.waitUntilTracing()
        #expect(try traceTables(in: lab) == ["table inet sluice-trace-\(trace.pid)"])
        trace.process.signal(SIGKILL)
        #expect(trace.process.waitForExit(timeout: .seconds(5)) == 128 + SIGKILL)
        #expect(try traceTables(in: lab).isEmpty)
    }

    @Test("a connection the filter does not select produces no events")
    func filterLeavesOtherPacketsOut() throws {
        let pod = try CapturedPod(.ipv4)
        let traced = Family.ipv4.external(80)
        let other = Family.ipv4.otherExternal(443)
        let trace = try TraceProcess(pod.lab, ["tcp", "\(traced)", "--count", "1", "--timeout", "10"])
        try trace.waitUntilTracing()
        // Captured too, so it passes the same chains, but to another destination.
        #expect(pod.lab.connect(as: .app, to: other).landing == .proxyOutbound(originalDestination: other))
        #expect(pod.lab.connect(as: .app, to: traced).landing == .proxyOutbound(originalDestination: traced))
        let (status, output) = trace.finish()
        #expect(status == 0, "\(output)")
        #expect(!output.contains(other.address.description), "\(output)")
        #expect(output.contains("\npacket 1: tcp \(PodLab.podIPv4):"), "\(output)")
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
            let destination = PodLab.externalIPv4[0]
            #expect(listing.contains("\tflags owner\n"), "\(listing)")
            #expect(listing.contains("chain output {\n\t\ttype filter hook output priority -350; policy accept;\n"
                                     + "\t\tmeta l4proto tcp ip daddr \(destination) meta skuid 1000 meta nftrace set 1 "
                                     + "comment \"sluice-init trace: tcp packets to \(destination) sent by uid 1000\""),
                    "\(listing)")
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
            #expect(events.contains { $0.table == "istio-proxy-nat" && $0.chain == "output"
                && $0.verdict == "jump istio-output" }, "\(events)")
        }
        #expect(try traceTables(in: pod.lab).isEmpty)
    }

    @Test("a port without a protocol is nft's th dport; an input interface omits the output rule")
    func portWithoutProtocol() throws {
        try requireRoot()
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

    @Test("filters describe themselves in the header's words")
    func filterDescriptions() {
        #expect(TraceFilter().description == "all packets")
        #expect(TraceFilter(transport: .udp).description == "udp packets")
        #expect(TraceFilter(transport: .tcp, destination: PodLab.podIPv6, destinationPort: 8080, source: PodLab.peerIPv6,
                            inputInterface: "eth0").description
            == "tcp packets to [2001:db8:1::2]:8080 from 2001:db8:1::1 arriving on eth0")
        #expect(TraceFilter(destinationPort: 53, uid: 1000).description == "packets to port 53 sent by uid 1000")
    }

    @Test("a filter that can match nothing is refused before anything is programmed")
    func contradictoryFilterIsRefused() throws {
        try requireRoot()
        let lab = try PodLab()
        let (status, output) = try lab.pod.run {
            var streams = StandardStreams(captured: ("", ""))
            let status = TraceCommand.run(TraceOptions(filter: TraceFilter(inputInterface: "eth0", uid: 1000)), output: &streams)
            return (status, streams.captured!.err)
        }
        #expect(status == 1)
        #expect(output == "sluice-init: cannot start the trace: cannot express the ruleset in nftables netlink: the trace "
                + "filter matches nothing: --uid (a local sender) and --in (an arriving packet) never hold together: "
                + "give one of them\n")
        #expect(try traceTables(in: lab).isEmpty)
    }
}

/// The `sluice-trace-*` tables in the pod, as `nft list tables` shows them.
private func traceTables(in lab: PodLab) throws -> [Substring] {
    try PodLab.runTool("nft", ["list", "tables"], in: lab.pod).split(separator: "\n").filter { $0.contains("sluice-trace-") }
}

/// `sluice-init trace --netns <pod> ARGUMENTS`, the built executable started outside the pod as a node
/// admin would run it, its output collected in a file the test reads while it runs.
private final class TraceProcess {
    let process: BackgroundProcess
    private let directory: TemporaryDirectory

    init(_ lab: PodLab, _ arguments: [String]) throws {
        try requireRoot()
        directory = try TemporaryDirectory(prefix: "sluice-trace-test")
        // The test process's own namespace: the trace enters the pod's itself.
        let here = try NetworkNamespace.open(path: "/proc/self/ns/net")
        process = try BackgroundProcess(try PodLab.sluiceInitExecutable(), ["trace", "--netns", lab.pod.path] + arguments,
                                        in: here, environment: Subprocess.defaultEnvironment,
                                        outputPath: directory.file("trace.out"))
    }

    deinit { directory.remove() }

    var pid: pid_t { process.pid }

    /// Until the header line is out: the trace table is then in place and the ruleset read.
    func waitUntilTracing() throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline && process.isRunning {
            if process.output().hasPrefix("sluice-init: tracing ") { return }
            usleep(20_000)
        }
        Issue.record("the trace did not start within 10 s: \(process.output())")
    }

    /// The exit status (nil if it still ran after 15 s, then it is killed) and everything it printed.
    func finish() -> (status: Int32?, output: String) {
        let status = process.waitForExit(timeout: .seconds(15))
        if status == nil { process.signal(SIGKILL) }
        return (status, process.output())
    }
}
