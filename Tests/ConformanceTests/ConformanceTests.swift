import Capture
import Glibc
import Netfilter
import PodLab
import Synchronization
import Testing

/// Istio's own rulesets against Sluice's, with real packets: for every configuration two identical
/// pods, one programmed by `nft -f <Istio's golden>`, one by `sluice-init` with the same flags, and the
/// same probes through both. Any difference fails, unless it is a deliberate deviation listed in
/// `AllowedDeviation.all` and docs/CONFORMANCE.md.
@Suite("Istio conformance")
struct ConformanceTests {
    /// Configurations run side by side; each has its own namespaces. Probes mostly wait on the kernel,
    /// so this is not bound by the core count.
    static let parallelConfigurations = 6
    static let probeTimeout: Duration = .milliseconds(1500)
    static let retryTimeout: Duration = .seconds(4)
    /// A configuration whose probes keep timing out stops here instead of stalling the suite.
    static let configurationBudget: Duration = .seconds(90)

    @Test("every probe lands in the same place under Istio's rules and sluice-init's")
    func sameOutcomesAsIstio() throws {
        try #require(geteuid() == 0, "ConformanceTests need root (network namespaces, nftables, groupadd)")
        let start = ContinuousClock.now
        let sluiceInit = try PodLab.sluiceInitExecutable()
        let groupIDs = try OwnerGroups.ensure(["java", "ftp"])

        let cases = Self.selectedCases()
        try #require(!cases.isEmpty, "SLUICE_CONFORMANCE_CASES names no configuration of ConformanceCase.all")
        // Configurations with extra interfaces have the most probes that time out: start them first.
        let order = cases.indices.sorted { ProbeMatrix.linkNames(cases[$0]).count > ProbeMatrix.linkNames(cases[$1]).count }
        let outOfOrder = Parallel.map(order.map { cases[$0] }, workers: Self.parallelConfigurations) { testCase in
            ConfigurationRun.run(testCase, groupIDs: groupIDs, sluiceInit: sluiceInit)
        }
        let results = cases.map { testCase in outOfOrder.first { $0.name == testCase.name }! }
        let report = ConformanceReport(results: results, elapsed: ContinuousClock.now - start)
        if getenv("SLUICE_CONFORMANCE_VERBOSE") != nil {
            for result in results {
                for comparison in result.comparisons {
                    print("[\(result.name)] \(comparison.probe): \(comparison.istio)"
                          + (comparison.istio == comparison.sluice ? "" : " | Sluice: \(comparison.sluice)"))
                }
            }
        }
        print(report.text)
        for result in results {
            if let failure = result.failure { Issue.record("\(result.name): \(failure)") }
            for disagreement in result.explainDisagreements {
                Issue.record("[\(result.name)] explain disagrees with the kernel: \(disagreement)")
            }
        }
        for deviation in report.unexpected { Issue.record("deviation not in the allow-list: \(deviation)") }
        for entry in report.staleAllowances {
            Issue.record("allow-listed deviation did not occur (remove it here and in docs/CONFORMANCE.md): \(entry)")
        }
    }

    /// `SLUICE_CONFORMANCE_CASES=ip-range,tproxy` runs only those (for debugging one configuration);
    /// `SLUICE_CONFORMANCE_VERBOSE=1` prints every probe's outcome.
    static var filter: Set<String>? {
        guard let value = getenv("SLUICE_CONFORMANCE_CASES") else { return nil }
        return Set(String(cString: value).split(separator: ",").map(String.init))
    }

    static func selectedCases() -> [ConformanceCase] {
        ConformanceCase.all.filter { filter?.contains($0.name) ?? true }
    }
}

/// One configuration's pods, probes and outcomes.
struct ConfigurationRun: Sendable {
    struct Comparison: Sendable {
        /// A probe's description, or `applyProbe`.
        var probe: String
        var istio: Outcome
        var sluice: Outcome
    }

    /// The first comparison of every configuration: whether each side's ruleset was accepted at all.
    static let applyProbe = "apply the ruleset (nft -f golden / sluice-init)"

    var name: String
    var comparisons: [Comparison] = []
    /// Probes where `sluice-init explain`'s walk of Sluice's live rules disagreed with the real packet.
    var explainDisagreements: [String] = []
    /// Probes `explain` was checked on.
    var explainChecked = 0
    var failure: String? = nil
    var elapsed: Duration = .zero

    static func run(_ testCase: ConformanceCase, groupIDs: [String: UInt32], sluiceInit: String) -> ConfigurationRun {
        let start = ContinuousClock.now
        var result = ConfigurationRun(name: testCase.name)
        do {
            try result.compare(testCase, groupIDs: groupIDs, sluiceInit: sluiceInit,
                               until: start + ConformanceTests.configurationBudget)
        } catch {
            result.failure = "\(error)"
        }
        result.elapsed = ContinuousClock.now - start
        return result
    }

    private mutating func compare(_ testCase: ConformanceCase, groupIDs: [String: UInt32], sluiceInit: String,
                                  until deadline: ContinuousClock.Instant) throws {
        let pair = try PodPair(testCase, groupIDs: groupIDs)
        defer { pair.tearDown() }
        let applied = Comparison(probe: Self.applyProbe, istio: try pair.applyIstio(),
                                 sluice: try pair.applySluice(sluiceInit))
        comparisons.append(applied)
        // Packets say nothing more when a side has no rules: Istio's pod would not even start.
        guard applied.istio == .applied && applied.sluice == .applied else { return }
        for probe in pair.matrix.probes {
            guard ContinuousClock.now < deadline else {
                failure = "stopped after \(ConformanceTests.configurationBudget): probes kept timing out"
                return
            }
            // Both pods at once: a probe that lands nowhere waits for its whole timeout in each.
            var outcomes = Parallel.map([pair.istio, pair.sluice], workers: 2) { lab in
                probe.run(in: lab, timeout: ConformanceTests.probeTimeout)
            }
            if outcomes[0] != outcomes[1] {
                // Rules decide the same way every time; a machine too busy to answer within the timeout
                // does not. One slower retry on both sides tells them apart.
                outcomes = [pair.istio, pair.sluice].map { probe.run(in: $0, timeout: ConformanceTests.retryTimeout) }
            }
            comparisons.append(Comparison(probe: probe.description, istio: outcomes[0], sluice: outcomes[1]))
            checkExplain(probe, landed: outcomes[1], pair: pair)
        }
    }

    /// `explain` must predict the real packet's outcome in Sluice's pod. Outcomes compare as the suite
    /// compares them (every "nowhere" is one outcome).
    private mutating func checkExplain(_ probe: ProbeSpec, landed: Outcome, pair: PodPair) {
        explainChecked += 1
        switch ExplainPrediction.predict(probe, in: pair.sluice, matrix: pair.matrix) {
        case .success(let predicted) where predicted == landed:
            return
        case .success(let predicted):
            explainDisagreements.append("\(probe): kernel → \(landed); explain → \(predicted)")
        case .failure(let failure):
            explainDisagreements.append("\(probe): kernel → \(landed); explain could not say: \(failure)")
        }
    }
}

/// The suite's summary: totals, every deviation (allowed or not), and allow-list entries that no
/// longer match anything.
struct ConformanceReport {
    struct Deviation: CustomStringConvertible {
        var configuration: String
        var comparison: ConfigurationRun.Comparison
        var allowance: AllowedDeviation?

        var description: String {
            "[\(configuration)] \(comparison.probe): Istio → \(comparison.istio); Sluice → \(comparison.sluice)"
                + (allowance.map { " — allowed: \($0.reason)" } ?? "")
        }
    }

    var text = ""
    var unexpected: [Deviation] = []
    var staleAllowances: [AllowedDeviation] = []

    init(results: [ConfigurationRun], elapsed: Duration) {
        var deviations: [Deviation] = []
        var used: Set<Int> = []
        for result in results {
            for comparison in result.comparisons where comparison.istio != comparison.sluice {
                let index = AllowedDeviation.all.firstIndex { $0.matches(result.name, comparison) }
                if let index { used.insert(index) }
                deviations.append(Deviation(configuration: result.name, comparison: comparison,
                                            allowance: index.map { AllowedDeviation.all[$0] }))
            }
        }
        unexpected = deviations.filter { $0.allowance == nil }
        let ran = Set(results.map(\.name))
        staleAllowances = AllowedDeviation.all.enumerated()
            .filter { !used.contains($0.offset) && ran.contains($0.element.configuration) }.map(\.element)

        let probes = results.reduce(0) { $0 + $1.comparisons.count }
        var lines = ["", "Istio conformance (Istio's nft goldens vs sluice-init, real probes)"]
        for result in results {
            let differing = result.comparisons.filter { $0.istio != $0.sluice }.count
            lines.append("  \(result.name): \(result.comparisons.count) probes, \(differing) deviations, "
                         + "\(Self.seconds(result.elapsed))" + (result.failure.map { " — FAILED: \($0)" } ?? ""))
        }
        let explained = results.reduce(0) { $0 + $1.explainChecked }
        let disagreements = results.reduce(0) { $0 + $1.explainDisagreements.count }
        lines.append("sluice-init explain vs the kernel on Sluice's pods: \(explained) probes, \(explained - disagreements) agree, "
                     + "\(disagreements) disagree")
        lines.append("configs: \(results.count), probes: \(probes), identical: \(probes - deviations.count), "
                     + "deviations: \(deviations.count) (\(deviations.count - unexpected.count) allow-listed), "
                     + "time: \(Self.seconds(elapsed))")
        for deviation in deviations { lines.append("  deviation \(deviation)") }
        text = lines.joined(separator: "\n")
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return "\(milliseconds / 1000).\((milliseconds % 1000) / 100) s"
    }
}

/// Runs `body` over `items` on `workers` threads of their own (probes block in poll; Swift's
/// cooperative pool has one thread per core and must not be blocked). Results keep the input order.
enum Parallel {
    static func map<Item: Sendable, Result: Sendable>(
        _ items: [Item], workers: Int, _ body: @escaping @Sendable (Item) -> Result
    ) -> [Result] {
        let state = Mutex<(next: Int, results: [Result?])>((0, Array(repeating: nil, count: items.count)))
        let drain = ThreadJob {
            // Each pass takes one item; the count bounds the loop.
            for _ in 0..<items.count {
                let index: Int? = state.withLock { state in
                    guard state.next < items.count else { return nil }
                    defer { state.next += 1 }
                    return state.next
                }
                guard let index else { return }
                let result = body(items[index])
                state.withLock { $0.results[index] = result }
            }
        }
        var threads: [pthread_t] = []
        for _ in 0..<max(1, min(workers, items.count)) {
            var thread = pthread_t()
            let unmanaged = Unmanaged.passRetained(drain)
            let status = pthread_create(&thread, nil, { argument in
                Unmanaged<ThreadJob>.fromOpaque(argument!).takeRetainedValue().run()
                return nil
            }, unmanaged.toOpaque())
            if status == 0 { threads.append(thread) } else { unmanaged.release() }
        }
        if threads.isEmpty { drain.run() }
        for thread in threads { pthread_join(thread, nil) }
        return state.withLock { $0.results.map { $0! } }
    }
}

private final class ThreadJob: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
