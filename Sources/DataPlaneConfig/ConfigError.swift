/// A command line or bootstrap that sluice-proxy will not run with. The message names the flag or
/// the JSON path (`static_resources.clusters[2].type`), the value when there is one, and what would
/// be accepted instead.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Envoy's log levels (spdlog's), from the most to the least verbose.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case trace, debug, info, warning, error, critical, off

    /// Envoy's spellings: spdlog's level names, plus "warn", which Envoy also takes for `warning`.
    public init?(envoyName: String) {
        if envoyName == "warn" {
            self = .warning
            return
        }
        guard let level = LogLevel(rawValue: envoyName) else { return nil }
        self = level
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool {
        lhs.order < rhs.order
    }

    private var order: Int { LogLevel.allCases.firstIndex(of: self)! }

    /// For error messages and the usage text: `trace, debug, info, warning (or warn), error, critical, off`.
    static let acceptedNames = "trace, debug, info, warning (or warn), error, critical, off"
}
