import ConfigFormats
import Glibc
import Logging

/// Logs the way Istio's agent does, so log pipelines parsing istio-proxy containers keep working:
/// text `2026-11-21T10:00:00.000000Z<TAB>info<TAB>[scope<TAB>]message[<TAB>key=value…]`, or with
/// `--log_as_json` one JSON object per line with `time`, `level`, `scope` and `msg`. The logger's
/// label is the scope (`default`, `status`, `supervisor`, …); `--log_output_level` sets levels per scope.
public struct IstioLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let scope: String
    private let json: Bool

    public init(scope: String, level: Logger.Level, json: Bool) {
        self.scope = scope
        self.logLevel = level
        self.json = json
    }

    /// Installs the handler for every logger the process makes: the `default` scope at `defaultLevel`,
    /// scopes named in `--log_output_level` at theirs, any other scope at `unlistedLevel`.
    public static func bootstrap(defaultLevel: Logger.Level, scopeLevels: [String: Logger.Level],
                                 unlistedLevel: Logger.Level, json: Bool) {
        LoggingSystem.bootstrap { label in
            let level = label == "default" ? defaultLevel : scopeLevels[label] ?? unlistedLevel
            return IstioLogHandler(scope: label, level: level, json: json)
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let line = json
            ? Self.jsonLine(time: Self.timestamp(), level: Self.istioName(event.level), scope: scope, message: "\(event.message)", fields: fields)
            : Self.textLine(time: Self.timestamp(), level: Self.istioName(event.level), scope: scope, message: "\(event.message)", fields: fields)
        // One write per line: lines from several threads never interleave on a pipe.
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            var attempts = 0
            while offset < buffer.count, attempts < 16 {
                attempts += 1
                let written = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 { offset += written } else if errno != EINTR { break }
            }
        }
    }

    static func istioName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: "debug"
        case .info, .notice: "info"
        case .warning: "warn"
        case .error: "error"
        case .critical: "fatal"
        }
    }

    static func textLine(time: String, level: String, scope: String, message: String, fields: Logger.Metadata) -> String {
        var line = "\(time)\t\(level)\t"
        // Istio prints the scope only for scopes other than "default".
        if scope != "default" { line += "\(scope)\t" }
        line += message
        for key in fields.keys.sorted() { line += "\t\(key)=\(fields[key]!)" }
        return line + "\n"
    }

    static func jsonLine(time: String, level: String, scope: String, message: String, fields: Logger.Metadata) -> String {
        var line = "{\"level\":\(quoted(level)),\"time\":\(quoted(time)),\"scope\":\(quoted(scope)),\"msg\":\(quoted(message))"
        for key in fields.keys.sorted() { line += ",\(quoted(key)):\(quoted("\(fields[key]!)"))" }
        return line + "}\n"
    }

    private static func quoted(_ text: String) -> String {
        JSONValue.string(text).renderedJSON(pretty: false)
    }

    /// UTC with microseconds, as Istio's zap encoder prints it.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let micros = Int32(now.tv_nsec / 1000)
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2)).\(padded(micros, 6))Z"
    }
}
