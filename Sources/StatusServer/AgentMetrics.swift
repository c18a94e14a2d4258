import Prometheus
import Synchronization

/// Where a merged scrape failed (`istio_agent_scrape_failures_total{type=...}`).
public enum ScrapeFailureType: String, Sendable, CaseIterable {
    case envoy
    case application
    case agent
}

/// A counter in the agent's registry, usable without importing Prometheus.
public final class AgentCounter: Sendable {
    let counter: Counter

    init(_ counter: Counter) {
        self.counter = counter
    }

    public func increment(by amount: Int = 1) {
        counter.increment(by: Int64(amount))
    }

    public func increment(by amount: Double) {
        counter.increment(by: amount)
    }
}

/// A gauge in the agent's registry, usable without importing Prometheus.
public final class AgentGauge: Sendable {
    let gauge: Gauge

    init(_ gauge: Gauge) {
        self.gauge = gauge
    }

    public func set(_ value: Double) {
        gauge.set(value)
    }

    public func increment(by amount: Double = 1) {
        gauge.increment(by: amount)
    }

    public func decrement(by amount: Double = 1) {
        gauge.decrement(by: amount)
    }
}

/// A duration histogram in the agent's registry (seconds), usable without importing Prometheus.
public final class AgentHistogram: Sendable {
    let histogram: DurationHistogram

    init(_ histogram: DurationHistogram) {
        self.histogram = histogram
    }

    public func record(_ duration: Duration) {
        histogram.record(duration)
    }
}

/// The agent's own metrics, served first on `/stats/prometheus`; every name starts with `istio_agent_`
/// as Istio's (`pilot/cmd/pilot-agent/metrics/metrics.go`, registry prefix `istio_agent_`).
public final class AgentMetrics: Sendable {
    public static let namePrefix = "istio_agent_"

    private let registry = PrometheusCollectorRegistry()
    private let processStats: ProcessStatsReader
    /// Refreshing the process gauges and emitting must not interleave between two scrapes.
    private let renderLock = Mutex(())

    let scrapes: AgentCounter
    private let scrapeFailures: [ScrapeFailureType: AgentCounter]
    private let startupDuration: AgentGauge
    private let process: ProcessGauges

    /// - Parameters:
    ///   - buildTag: the version reported as `istio_build{component="proxy",tag=...}`.
    ///   - procDirectory: the process's `/proc` entry; tests point it elsewhere.
    public init(buildTag: String, procDirectory: String = "/proc/self", procStatPath: String = "/proc/stat") {
        processStats = ProcessStatsReader(procDirectory: procDirectory, procStatPath: procStatPath)
        let registry = self.registry
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> AgentCounter {
            AgentCounter(registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels))
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> AgentGauge {
            AgentGauge(registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels))
        }
        scrapes = counter("scrapes_total", "The total number of scrapes.")
        var failures: [ScrapeFailureType: AgentCounter] = [:]
        for type in ScrapeFailureType.allCases {
            failures[type] = counter("scrape_failures_total", "The total number of failed scrapes.", [("type", type.rawValue)])
        }
        scrapeFailures = failures
        startupDuration = gauge("startup_duration_seconds", "The time from the process starting to being marked ready.")
        gauge("istio_build", "Istio component build info", [("component", "proxy"), ("tag", buildTag)]).set(1)
        process = ProcessGauges(
            residentMemory: gauge("process_resident_memory_bytes", "Resident memory size in bytes."),
            virtualMemory: gauge("process_virtual_memory_bytes", "Virtual memory size in bytes."),
            cpuSeconds: AgentCounter(registry.makeCounter(
                descriptor: Self.descriptor("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
                labels: [])),
            openFileDescriptors: gauge("process_open_fds", "Number of open file descriptors."),
            maximumFileDescriptors: gauge("process_max_fds", "Maximum number of open file descriptors."),
            startTime: gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds."))
    }

    public func recordStartupDuration(_ duration: Duration) {
        startupDuration.set(duration.secondsValue)
    }

    public func recordScrape() {
        scrapes.increment()
    }

    public func recordScrapeFailure(_ type: ScrapeFailureType) {
        scrapeFailures[type]?.increment()
    }

    /// Registers `istio_agent_<name>` (DNS, SDS and the XDS proxy add theirs); the same name and labels
    /// return the same counter.
    public func makeCounter(name: String, help: String, labels: [(String, String)] = []) -> AgentCounter {
        AgentCounter(registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels))
    }

    public func makeGauge(name: String, help: String, labels: [(String, String)] = []) -> AgentGauge {
        AgentGauge(registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels))
    }

    /// A histogram of durations with bucket bounds in seconds.
    public func makeHistogram(name: String, help: String, buckets: [Double]) -> AgentHistogram {
        AgentHistogram(registry.makeDurationHistogram(descriptor: Self.descriptor(name, help),
                                                      buckets: buckets.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }))
    }

    /// The registry in Prometheus text format 0.0.4, process figures read now.
    public func render() -> String {
        renderLock.withLock { _ in
            if processStats.read().map(process.update) == nil {
                recordScrapeFailure(.agent)
            }
            return registry.emitToString()
        }
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: namePrefix + name, unitName: "", helpText: help)
    }
}

private struct ProcessGauges: Sendable {
    let residentMemory: AgentGauge
    let virtualMemory: AgentGauge
    let cpuSeconds: AgentCounter
    let openFileDescriptors: AgentGauge
    let maximumFileDescriptors: AgentGauge
    let startTime: AgentGauge

    func update(_ stats: ProcessStats) {
        residentMemory.set(Double(stats.residentMemoryBytes))
        virtualMemory.set(Double(stats.virtualMemoryBytes))
        // A counter only grows: replace its value with the kernel's running total.
        cpuSeconds.counter.reset()
        cpuSeconds.counter.increment(by: stats.cpuSeconds)
        openFileDescriptors.set(Double(stats.openFileDescriptors))
        if let maximum = stats.maximumFileDescriptors { maximumFileDescriptors.set(Double(maximum)) }
        if let start = stats.startTimeSeconds { startTime.set(start) }
    }
}

extension Duration {
    var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
