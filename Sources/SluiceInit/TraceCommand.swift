import Capture
import Glibc
import Netfilter
import Synchronization

/// What `sluice-init trace` follows and for how long.
struct TraceOptions: Sendable, Hashable {
    var filter: TraceFilter
    /// Stop after this many packets (a packet looped back through `lo` counts once).
    var count: Int?
    var timeout: Duration?

    init(filter: TraceFilter = TraceFilter(), count: Int? = nil, timeout: Duration? = nil) {
        self.filter = filter
        self.count = count
        self.timeout = timeout
    }
}

/// `sluice-init trace`: marks the packets a filter selects with `meta nftrace` and prints each one's
/// path through the namespace's nftables chains as the kernel reports it, rule by rule.
enum TraceCommand {
    /// Runs in the current network namespace (the caller enters `--netns`/`--pid` first). SIGINT,
    /// SIGTERM and SIGHUP (a closed terminal) end the trace like `--count` and `--timeout` do; the trace
    /// table is removed in every case. Exit codes: 0 ended by count, timeout or signal; 1 the kernel refused or failed.
    static func run(_ options: TraceOptions, output: inout StandardStreams) -> Int32 {
        let signals: StopSignals
        do {
            signals = try StopSignals.install()
        } catch {
            output.err("sluice-init: cannot start the trace: \(error)")
            return 1
        }
        defer { signals.uninstall() }

        let session: NftablesTraceSession
        do {
            session = try NftablesTraceSession(filter: options.filter)
        } catch {
            output.err("sluice-init: cannot start the trace: \(error)")
            return 1
        }
        var report = TraceReport(ownTable: session.tableName, count: options.count)
        do {
            try report.rules.load()
        } catch {
            output.err("sluice-init: warning: cannot read the ruleset, rules are shown by handle only: \(error)")
        }
        output.out("sluice-init: tracing \(options.filter) at \(options.filter.hooks.map(\.rawValue).joined(separator: " and ")) "
                   + "(table inet \(session.tableName), priority \(NftablesTraceSession.chainPriority))"
                   + limits(options) + "; Ctrl-C stops")

        let start = ContinuousClock.now
        let stop: String
        do {
            stop = try follow(session, signals: signals, options: options, start: start, report: &report, output: &output)
        } catch {
            session.close()
            output.err("sluice-init: the trace failed: \(error)")
            return 1
        }
        session.close()
        if session.overflows > 0 {
            output.err("sluice-init: warning: the kernel dropped trace events \(session.overflows) times because they "
                       + "came faster than they were read; paths shown may be incomplete (narrow the filter)")
        }
        if let problem = session.removalError {
            output.err("sluice-init: warning: could not remove table inet \(session.tableName) (\(problem)); the kernel "
                       + "removes it with the trace's socket")
        }
        output.out("sluice-init: traced \(report.summary) in \(format(ContinuousClock.now - start)); \(stop); "
                   + "table inet \(session.tableName) removed")
        return 0
    }

    /// Reads events until a signal, the count or the timeout ends the trace; returns why it ended.
    private static func follow(_ session: NftablesTraceSession, signals: StopSignals, options: TraceOptions,
                               start: ContinuousClock.Instant, report: inout TraceReport,
                               output: inout StandardStreams) throws(KernelError) -> String {
        let deadline = options.timeout.map { start + $0 }
        // Unbounded in time by design without --count or --timeout: a trace runs until Ctrl-C. Each pass
        // waits in poll for an event, a signal or the next deadline.
        while true {
            if let signal = signals.received() { return "stopped by \(StopSignals.name(signal))" }
            let now = ContinuousClock.now
            if let settle = report.settleDeadline, now >= settle { return "stopped after --count \(options.count ?? 0)" }
            if let deadline, now >= deadline { return "stopped after --timeout \(format(options.timeout ?? .zero))" }
            var wait = Duration.seconds(1)
            if let deadline { wait = min(wait, deadline - now) }
            if let settle = report.settleDeadline { wait = min(wait, settle - now) }
            var descriptors = [pollfd(fd: session.fileDescriptor, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: signals.readEnd, events: Int16(POLLIN), revents: 0)]
            // One millisecond more, so the wait does not end just before the deadline it waits for.
            let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000 + 1
            if poll(&descriptors, 2, Int32(clamping: max(0, milliseconds))) < 0 && errno != EINTR {
                throw .systemCall("poll(trace events)", errno: errno)
            }
            // A bounded batch per pass, so a flood of events cannot keep a signal from being seen.
            for _ in 0..<1000 {
                guard let event = try session.next(timeout: .zero) else { break }
                report.record(event, output: &output)
            }
        }
    }

    private static func limits(_ options: TraceOptions) -> String {
        var limits: [String] = []
        if let count = options.count { limits.append(count == 1 ? "1 packet" : "\(count) packets") }
        if let timeout = options.timeout { limits.append(format(timeout)) }
        return limits.isEmpty ? "" : ", until " + limits.joined(separator: " or ")
    }

    /// "10s", "2.5s", "0.013s".
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        var text = String(milliseconds / 1000)
        var fraction = milliseconds % 1000
        if fraction > 0 {
            var digits = 3
            while fraction % 10 == 0 {
                fraction /= 10
                digits -= 1
            }
            let padded = String(fraction)
            text += "." + String(repeating: "0", count: digits - padded.count) + padded
        }
        return text + "s"
    }
}

/// What the trace has seen, and the printing of it.
///
/// The kernel sends one event per step of a packet through a hook, all with the hook's trace ID. A
/// pass starts with the trace table's own base chain (it runs first, at -350); its events are not
/// printed, but its first one carries the packet's headers. A packet that REDIRECT sends to a local
/// listener loops back through `lo` and passes prerouting with a new trace ID: that pass is printed
/// under the packet it continues.
struct TraceReport {
    let ownTable: String
    let count: Int?
    var rules = TraceRuleBook()
    /// When the trace ends once `count` packets were seen: a moment later, so the loop-back passes of
    /// the last packet, which follow within microseconds, are printed too.
    private(set) var settleDeadline: ContinuousClock.Instant?

    private struct Pass {
        /// The packet number, nil when the pass is not shown (the count was reached).
        var packet: Int?
        var mark: UInt32
    }

    private var passes: [UInt32: Pass] = [:]
    private var passOrder: [UInt32] = []
    /// Output passes of shown packets, latest last, to recognize their loop-back passes.
    private var recentOutputs: [(packet: Int, headers: TracedPacket)] = []
    private var packets = 0
    private var loopedBack = 0
    private var events = 0
    private var lastPrinted: Int?

    /// The tables of traces: this one's and those of other `sluice-init trace` runs in the namespace.
    static let traceTablePrefix = "sluice-trace-"
    /// How long the loop-back pass of the last counted packet may take to show up.
    static let settleTime: Duration = .milliseconds(200)

    init(ownTable: String, count: Int?) {
        self.ownTable = ownTable
        self.count = count
        if let count, count <= 0 { settleDeadline = .now }
    }

    var summary: String {
        var text = packets == 1 ? "1 packet" : "\(packets) packets"
        if loopedBack > 0 { text += " (\(loopedBack) looped back through lo)" }
        return text + ", \(events == 1 ? "1 event" : "\(events) events")"
    }

    mutating func record(_ event: TraceEvent, output: inout StandardStreams) {
        if event.family == "inet" && event.table.hasPrefix(Self.traceTablePrefix) {
            // The first event of the trace table's chain is the start of a pass; later ones (its
            // policy) say nothing about Sluice's rules, and neither do another trace's tables.
            if event.table == ownTable && event.headers != nil { startPass(event, output: &output) }
            return
        }
        // Nil: a packet traced by another tool's rule before it reached the trace table's chain.
        guard var pass = passes[event.id], let packet = pass.packet else { return }
        events += 1
        if lastPrinted != packet {
            output.out("packet \(packet) (continued):")
            lastPrinted = packet
        }
        var line = "  " + describe(event)
        let mark = event.mark ?? 0
        if mark != pass.mark {
            line += "  [mark now \(mark)]"
            pass.mark = mark
            passes[event.id] = pass
        }
        output.out(line)
    }

    private mutating func startPass(_ event: TraceEvent, output: inout StandardStreams) {
        guard let headers = event.headers else { return }
        let hook = event.chain
        let flags = headers.flagNames.isEmpty ? "" : " [\(headers.flagNames.joined(separator: ","))]"
        var pass = Pass(packet: nil, mark: event.mark ?? 0)
        if hook == BaseChain.Hook.prerouting.rawValue, event.inputInterface == "lo",
           let earlier = recentOutputs.last(where: { headers.isSamePacket(rewrittenFrom: $0.headers) }) {
            pass.packet = earlier.packet
            loopedBack += 1
            if lastPrinted != earlier.packet { output.out("packet \(earlier.packet) (continued):") }
            output.out("  looped back through lo as \(headers)\(flags), prerouting")
            lastPrinted = earlier.packet
        } else if count.map({ packets < $0 }) ?? true {
            packets += 1
            pass.packet = packets
            let route = hook == BaseChain.Hook.output.rawValue
                ? "output" + (event.outputInterface.map { ", routed via \($0)" } ?? "")
                : "prerouting" + (event.inputInterface.map { ", arriving on \($0)" } ?? "")
            output.out("packet \(packets): \(headers)\(flags), \(route)")
            lastPrinted = packets
            if hook == BaseChain.Hook.output.rawValue {
                recentOutputs.append((packets, headers))
                if recentOutputs.count > 64 { recentOutputs.removeFirst() }
            }
            if let count, packets >= count { settleDeadline = .now + Self.settleTime }
        }
        // A later packet may come with the same trace ID: its pass replaces the earlier one.
        if passes.updateValue(pass, forKey: event.id) == nil {
            passOrder.append(event.id)
            if passOrder.count > 1024 { passes[passOrder.removeFirst()] = nil }
        }
    }

    /// `istio-proxy-nat/istio-redirect rule 1: meta l4proto tcp counter redirect to :15001 (verdict accept)  # comment`
    private mutating func describe(_ event: TraceEvent) -> String {
        let location = (event.family == "inet" ? "" : "\(event.family) ") + "\(event.table)/\(event.chain)"
        let verdict = event.verdict ?? "?"
        switch event.kind {
        case .policy:
            return "\(location): policy \(verdict) (end of the base chain)"
        case .returned:
            // The end of a regular chain (or a `return`): back to the rule after the jump.
            guard let handle = event.ruleHandle, let rule = rules.rule(event.family, event.table, event.chain, handle) else {
                return "\(location): \(verdict == "continue" ? "end of chain, " : "")return"
            }
            return "\(location) rule \(rule.number): \(rule.text) (verdict return)\(rule.commentSuffix)"
        case .rule:
            guard let handle = event.ruleHandle else { return "\(location): \(verdict)" }
            guard let rule = rules.rule(event.family, event.table, event.chain, handle) else {
                return "\(location) rule with handle \(handle) (no longer in the kernel) (verdict \(verdict))"
            }
            // "continue": the rule matched and has no verdict; a verdict the text already ends with is not repeated.
            let shown = verdict == "continue" || rule.text.hasSuffix(verdict) ? "" : " (verdict \(verdict))"
            return "\(location) rule \(rule.number): \(rule.text)\(shown)\(rule.commentSuffix)"
        }
    }
}

/// The rules of every table, by handle, read from the kernel once at the start and again when an
/// event names a handle not seen yet (a rule added while the trace runs).
struct TraceRuleBook {
    struct Entry {
        /// 1-based position in its chain, as `nft list` shows the order.
        var number: Int
        /// nft text without the comment.
        var text: String
        var comment: String?

        var commentSuffix: String { comment.map { "  # \($0)" } ?? "" }
    }

    private struct Key: Hashable {
        var family: String, table: String, chain: String
        var handle: UInt64
    }

    private var entries: [Key: Entry] = [:]
    private var reread: Set<Key> = []
    private var readback: NftablesReadback?

    /// Reads every table of the namespace the calling thread is in.
    mutating func load() throws(KernelError) {
        if readback == nil { readback = try NftablesReadback() }
        guard let readback else { return }
        var entries: [Key: Entry] = [:]
        for table in try readback.readInventory().tables {
            for chain in table.chains {
                for (index, rule) in chain.rules.enumerated() {
                    let key = Key(family: table.family, table: table.name, chain: chain.name, handle: rule.handle)
                    entries[key] = Entry(number: index + 1, text: Self.text(of: rule), comment: rule.comment)
                }
            }
        }
        self.entries = entries
    }

    mutating func rule(_ family: String, _ table: String, _ chain: String, _ handle: UInt64) -> Entry? {
        let key = Key(family: family, table: table, chain: chain, handle: handle)
        if let entry = entries[key] { return entry }
        // Once per unknown handle: a rule deleted since must not cost a ruleset read per event.
        guard reread.insert(key).inserted else { return nil }
        try? load()
        return entries[key]
    }

    /// The rule's nft text, its comment left for the `#` column.
    private static func text(of rule: KernelRule) -> String {
        if let decoded = rule.rule { return NftTextRenderer.render(Rule(decoded.matches, decoded.statements, comment: "")) }
        if let comment = rule.comment, rule.text.hasSuffix(" comment \"\(comment)\"") {
            return String(rule.text.dropLast(" comment \"\(comment)\"".count))
        }
        return rule.text
    }
}

/// The write end of the trace's signal pipe, -1 while no trace runs. Read from the signal handler, so
/// a lock-free atomic.
private let stopSignalDescriptor = Atomic<Int32>(-1)

/// Runs in signal context, on whichever thread the kernel picked: one non-blocking `write` of the
/// signal number (a full pipe already means "stop"), errno preserved.
private func stopSignalArrived(_ signal: Int32) {
    let savedErrno = errno
    let descriptor = stopSignalDescriptor.load(ordering: .acquiring)
    if descriptor >= 0 {
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = write(descriptor, &byte, 1)
    }
    errno = savedErrno
}

/// SIGINT, SIGTERM and SIGHUP turned into a readable pipe while a trace runs, so the loop ends and the trace
/// table is removed instead of the process dying with it in place. A handler and a self-pipe rather
/// than signalfd: signalfd needs the signals blocked in every thread, which only `main` can arrange
/// before threads exist; a handler works whichever thread the kernel picks. The previous dispositions
/// come back on `uninstall()`. One trace per process at a time.
private struct StopSignals {
    static let signals = [SIGINT, SIGTERM, SIGHUP]

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signal)"
        }
    }

    let readEnd: Int32
    private let writeEnd: Int32
    private let previous: [sigaction]

    static func install() throws(SystemCallError) -> StopSignals {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SystemCallError(call: "pipe", errno: errno) }
        for descriptor in ends {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptor, F_SETFL, O_NONBLOCK)
        }
        stopSignalDescriptor.store(ends[1], ordering: .releasing)
        var previous: [sigaction] = []
        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = stopSignalArrived
            sigemptyset(&action.sa_mask)
            // SA_RESTART: writes to stdout are not cut short; poll still returns at once (EINTR).
            action.sa_flags = SA_RESTART
            var old = sigaction()
            guard sigaction(signal, &action, &old) == 0 else {
                let code = errno
                for (installed, earlier) in zip(signals, previous) {
                    var earlier = earlier
                    sigaction(installed, &earlier, nil)
                }
                stopSignalDescriptor.store(-1, ordering: .releasing)
                ends.forEach { close($0) }
                throw SystemCallError(call: "sigaction(\(signal))", errno: code)
            }
            previous.append(old)
        }
        return StopSignals(readEnd: ends[0], writeEnd: ends[1], previous: previous)
    }

    func uninstall() {
        for (signal, action) in zip(Self.signals, previous) {
            var action = action
            sigaction(signal, &action, nil)
        }
        stopSignalDescriptor.store(-1, ordering: .releasing)
        close(readEnd)
        close(writeEnd)
    }

    /// The signal that arrived, if one did.
    func received() -> Int32? {
        var byte: UInt8 = 0
        return read(readEnd, &byte, 1) == 1 ? Int32(byte) : nil
    }
}
