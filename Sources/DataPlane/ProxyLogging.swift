import DataPlaneConfig
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The level of every logger, as Envoy keeps one per component (`admin`, `upstream`, …): set at start
/// from `-l` (all components) and `--component-log-level` (some), changed at runtime by `/logging`.
/// Reads are lock-free, so a handler can check its level on every log call.
public final class ProxyLogLevels: Sendable {
    /// Envoy's logger names (`ALL_LOGGER_IDS` in source/common/common/logger.h), in Envoy's order,
    /// which is the order `/logging` lists them in.
    public static let envoyComponents: [String] = [
        "admin", "alternate_protocols_cache", "aws", "assert", "backtrace", "basic_auth", "cache_filter",
        "client", "config", "connection", "conn_handler", "decompression", "dns", "dubbo", "envoy_bug",
        "ext_authz", "ext_proc", "rocketmq", "file", "filter", "forward_proxy", "geolocation", "grpc",
        "happy_eyeballs", "hc", "health_checker", "http", "http2", "hystrix", "init", "io", "jwt", "kafka",
        "key_value_store", "lua", "main", "matcher", "misc", "mongo", "multi_connection", "oauth2", "quic",
        "quic_stream", "pool", "rate_limit_quota", "rbac", "rds", "redis", "router", "runtime", "stats",
        "secret", "tap", "testing", "thrift", "tracing", "upstream", "udp", "wasm", "websocket", "golang",
    ]

    /// Every component this process knows, Envoy's first.
    public let components: [String]
    private let cells: [String: LevelCell]
    /// The level of loggers whose label is not a known component, and what `level=` sets besides them.
    private let fallback: LevelCell

    /// - Parameters:
    ///   - additionalComponents: sluice-proxy's own logger labels, so `/logging` can list and change them too.
    /// - Throws: a `ConfigError` naming an unknown component in `componentLevels` (Envoy refuses those too).
    public init(
        defaultLevel: LogLevel = .info, componentLevels: [String: LogLevel] = [:], additionalComponents: [String] = []
    ) throws(ConfigError) {
        var names = Self.envoyComponents
        for name in additionalComponents where !names.contains(name) { names.append(name) }
        components = names
        var cells: [String: LevelCell] = [:]
        for name in names { cells[name] = LevelCell(defaultLevel) }
        for (name, level) in componentLevels.sorted(by: { $0.key < $1.key }) {
            guard let cell = cells[name] else {
                throw makeConfigError(
                    "--component-log-level: unknown component '\(name)'; use one of Envoy's logger names: "
                        + Self.envoyComponents.joined(separator: ", "))
            }
            cell.store(level)
        }
        self.cells = cells
        fallback = LevelCell(defaultLevel)
    }

    /// `-l` for every component, then `--component-log-level` for the ones it names.
    public convenience init(commandLine: ProxyCommandLine, additionalComponents: [String] = []) throws(ConfigError) {
        try self.init(
            defaultLevel: commandLine.logLevel, componentLevels: commandLine.componentLogLevels,
            additionalComponents: additionalComponents)
    }

    /// The level of the logger named `component` (the default level for names that are no component).
    public func level(of component: String) -> LogLevel {
        (cells[component] ?? fallback).load()
    }

    /// The level `level=` last set, or `-l`'s.
    public var defaultLevel: LogLevel { fallback.load() }

    public func isEnabled(_ level: LogLevel, for component: String) -> Bool {
        level != .off && level >= self.level(of: component)
    }

    /// `/logging?level=…`: every logger at once.
    public func setAll(_ level: LogLevel) {
        fallback.store(level)
        for cell in cells.values { cell.store(level) }
    }

    /// `/logging?paths=a:debug,b:info` and `/logging?a=debug`: all or nothing, so a typo in one name
    /// changes no level. Returns the names that are no component (empty on success).
    @discardableResult
    public func set(_ levels: [String: LogLevel]) -> [String] {
        let unknown = levels.keys.filter { cells[$0] == nil }.sorted()
        guard unknown.isEmpty else { return unknown }
        for (name, level) in levels { cells[name]?.store(level) }
        return []
    }

    /// Every component with its level, in Envoy's listing order.
    public func snapshot() -> [(component: String, level: LogLevel)] {
        components.map { ($0, cells[$0]!.load()) }
    }

    /// One logger's level, shared by every handler with that label.
    fileprivate func cell(for component: String) -> LevelCell {
        cells[component] ?? fallback
    }
}

fileprivate final class LevelCell: Sendable {
    private let raw: Atomic<UInt8>

    init(_ level: LogLevel) {
        raw = Atomic(Self.code(level))
    }

    func load() -> LogLevel { Self.level(raw.load(ordering: .relaxed)) }
    func store(_ level: LogLevel) { raw.store(Self.code(level), ordering: .relaxed) }

    private static let order: [LogLevel] = [.trace, .debug, .info, .warning, .error, .critical, .off]
    private static func code(_ level: LogLevel) -> UInt8 { UInt8(order.firstIndex(of: level) ?? 2) }
    private static func level(_ code: UInt8) -> LogLevel { order[Int(min(code, 6))] }
}

/// Where log lines go: stderr, the `--log-path` file, or (in tests) a closure. Each line is one
/// `write(2)`, so lines from different threads never interleave.
public final class ProxyLogOutput: Sendable {
    private enum Destination: Sendable {
        case descriptor(Int32)
        case closure(@Sendable (String) -> Void)
    }

    private let destination: Destination

    public static let standardError = ProxyLogOutput(destination: .descriptor(2))

    private init(destination: Destination) {
        self.destination = destination
    }

    /// For tests and embedding: every formatted line (with its newline) is handed to `write`.
    public init(_ write: @escaping @Sendable (String) -> Void) {
        destination = .closure(write)
    }

    /// `--log-path`: appends to the file, creating it (mode 0644) when missing.
    public static func file(path: String) throws(ConfigError) -> ProxyLogOutput {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw makeConfigError("--log-path \(path): cannot open the file for appending (\(reason)); choose a writable path")
        }
        return ProxyLogOutput(destination: .descriptor(descriptor))
    }

    /// `--log-path` when given, else stderr.
    public static func forCommandLine(_ commandLine: ProxyCommandLine) throws(ConfigError) -> ProxyLogOutput {
        guard let path = commandLine.logPath, !path.isEmpty else { return standardError }
        return try file(path: path)
    }

    public func write(_ line: String) {
        switch destination {
        case .closure(let write):
            write(line)
        case .descriptor(let descriptor):
            var bytes = Array(line.utf8)
            bytes.withUnsafeMutableBytes { buffer in
                guard let base = buffer.baseAddress else { return }
                var offset = 0
                var attempts = 0
                // A short write (a full pipe) is finished in place; bounded so a wedged reader cannot spin us.
                while offset < buffer.count, attempts < 64 {
                    attempts += 1
                    let written = Glibc.write(descriptor, base + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0, errno == EINTR || errno == EAGAIN {
                        continue
                    } else {
                        break
                    }
                }
            }
        }
    }
}

/// A swift-log handler that logs like Envoy: the logger's label is the Envoy component (`main`,
/// `upstream`, …), its level is read from `ProxyLogLevels` on every check (so `/logging` takes effect
/// at once), and lines follow the spdlog pattern in effect.
public struct ProxyLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let component: String
    private let cell: LevelCell
    private let format: ProxyLogFormat
    private let output: ProxyLogOutput
    private let clock: @Sendable () -> WallClockTime
    private let threadID: @Sendable () -> Int

    public init(
        label: String,
        levels: ProxyLogLevels,
        format: ProxyLogFormat,
        output: ProxyLogOutput = .standardError,
        clock: @escaping @Sendable () -> WallClockTime = WallClockTime.now,
        threadID: @escaping @Sendable () -> Int = ProxyLogHandler.currentThreadID
    ) {
        component = label
        cell = levels.cell(for: label)
        self.format = format
        self.output = output
        self.clock = clock
        self.threadID = threadID
    }

    /// Installs the handler for every logger of the process (call once, at start-up).
    public static func bootstrap(levels: ProxyLogLevels, format: ProxyLogFormat, output: ProxyLogOutput) {
        LoggingSystem.bootstrap { label in
            ProxyLogHandler(label: label, levels: levels, format: format, output: output)
        }
    }

    /// Setting changes the level of the whole component (every logger with this label), as
    /// `/logging?<component>=<level>` would: Envoy's levels belong to components, not to logger values.
    public var logLevel: Logger.Level {
        get { Self.swiftLogLevel(cell.load()) }
        set { cell.store(Self.envoyLevel(newValue)) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = Self.envoyLevel(event.level)
        // `off` has no swift-log level, so the getter reports `critical`; this check drops the rest.
        let threshold = cell.load()
        guard threshold != .off, level >= threshold else { return }
        var message = "\(event.message)"
        var fields = metadataProvider?.get() ?? [:]
        fields.merge(metadata) { _, new in new }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        for key in fields.keys.sorted() { message += " \(key)=\(fields[key]!)" }
        let record = ProxyLogRecord(
            time: clock(), level: level, component: component, message: message,
            file: event.file, line: event.line, function: event.function, threadID: threadID())
        output.write(format.format(record))
    }

    public static func envoyLevel(_ level: Logger.Level) -> LogLevel {
        switch level {
        case .trace: .trace
        case .debug: .debug
        case .info, .notice: .info
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }

    public static func swiftLogLevel(_ level: LogLevel) -> Logger.Level {
        switch level {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        case .critical, .off: .critical
        }
    }

    /// The kernel's thread id, which is what spdlog's `%t` prints on Linux. glibc (2.30+) exports
    /// `gettid` but Swift's Glibc module does not declare it, so it is looked up once by name.
    public static let currentThreadID: @Sendable () -> Int = {
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid") {
            let gettid = unsafeBitCast(symbol, to: (@convention(c) () -> pid_t).self)
            return { Int(gettid()) }
        }
        return { Int(bitPattern: pthread_self()) }
    }()
}

/// The whole logging set-up of the process, as Envoy does it at start: the pattern (`--log-format`,
/// else the bootstrap's, else Envoy's default), the output (`--log-path`, else stderr), and a
/// `ProxyLogHandler` for every logger, reading `levels`.
public enum ProxyLogging {
    public static func bootstrap(
        commandLine: ProxyCommandLine, bootstrap: ProxyBootstrap?, levels: ProxyLogLevels
    ) throws(ConfigError) {
        let format = try ProxyLogFormat.resolve(commandLine: commandLine, bootstrap: bootstrap)
        let output = try ProxyLogOutput.forCommandLine(commandLine)
        ProxyLogHandler.bootstrap(levels: levels, format: format, output: output)
    }
}

/// `ConfigError`'s initializer lives in DataPlaneConfig; one call site here keeps its spelling in one place.
func makeConfigError(_ message: String) -> ConfigError {
    ConfigError(message)
}
