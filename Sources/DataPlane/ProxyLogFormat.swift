import ConfigFormats
import DataPlaneConfig

/// One log line before formatting.
public struct ProxyLogRecord: Sendable {
    public var time: WallClockTime
    public var level: LogLevel
    /// The logger name (spdlog's `%n`): Envoy's component.
    public var component: String
    public var message: String
    public var file: String
    public var line: UInt
    public var function: String
    public var threadID: Int

    public init(
        time: WallClockTime, level: LogLevel, component: String, message: String,
        file: String = "", line: UInt = 0, function: String = "", threadID: Int = 0
    ) {
        self.time = time
        self.level = level
        self.component = component
        self.message = message
        self.file = file
        self.line = line
        self.function = function
        self.threadID = threadID
    }
}

/// An spdlog pattern (`--log-format`, or the bootstrap's `application_log_config.log_format.text_format`),
/// compiled once. Times are UTC. Flags, with spdlog's meanings:
///
///     %Y year   %y 2-digit year   %m month   %d day   %H hour   %M minute   %S second
///     %T and %X = %H:%M:%S   %D = %m/%d/%y   %z UTC offset (+00:00)   %E epoch seconds
///     %e milliseconds (3 digits)   %f microseconds (6)   %F nanoseconds (9)
///     %l level (`warning`)   %L level letter (`W`)   %n logger name   %v message
///     %t thread id   %P process id   %g source file   %s its base name   %# line   %@ file:line   %! function
///     %j message JSON-escaped, %_ message with control characters escaped (Envoy's own flags)   %% a percent sign
///
/// (spdlog's `%F` is nanoseconds, not strftime's date.) Any other flag, and spdlog's padding (`%-8l`),
/// is refused by name rather than printed literally as spdlog would.
public struct ProxyLogFormat: Sendable {
    /// Envoy's default `--log-format` since 1.17 (earlier ones lacked the `[%g:%#]` source location).
    public static let envoyDefault = "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v"

    enum Piece: Sendable, Equatable {
        case literal(String)
        case year, shortYear, month, day, hour, minute, second, time, shortDate, utcOffset, epochSeconds
        case milliseconds, microseconds, nanoseconds
        case level, levelLetter, loggerName, message, jsonEscapedMessage, escapedMessage
        case threadID, processID, sourceFile, sourceBaseName, sourceLine, sourceLocation, function
    }

    public let pattern: String
    let pieces: [Piece]
    private let processID: Int

    /// - Throws: a `ConfigError` naming the first flag sluice-proxy cannot print.
    public init(pattern: String) throws(ConfigError) {
        self.pattern = pattern
        pieces = try Self.compile(pattern)
        processID = Int(getpid())
    }

    /// For start-up checks: throws as `init(pattern:)` does.
    public static func validate(pattern: String) throws(ConfigError) {
        _ = try compile(pattern)
    }

    /// The pattern in effect: `--log-format`, else the bootstrap's `application_log_config`, else
    /// Envoy's default. Envoy refuses both at once, and so does this.
    public static func resolve(commandLine: ProxyCommandLine, bootstrap: ProxyBootstrap?) throws(ConfigError) -> ProxyLogFormat {
        let fromFlag = commandLine.logFormat.flatMap { $0.isEmpty ? nil : $0 }
        var fromBootstrap = bootstrap?.applicationLogFormat.flatMap { $0.isEmpty ? nil : $0 }
        if fromBootstrap == nil, let json = bootstrap?.applicationLogJSONFormat { fromBootstrap = try jsonPattern(json) }
        if fromFlag != nil, fromBootstrap != nil {
            throw makeConfigError(
                "--log-format and application_log_config.log_format are both set; Envoy accepts only one of them: "
                    + "drop the flag or the bootstrap field")
        }
        let pattern = fromFlag ?? fromBootstrap ?? envoyDefault
        do {
            return try ProxyLogFormat(pattern: pattern)
        } catch {
            let source = fromFlag != nil ? "--log-format" : "application_log_config.log_format.text_format"
            throw makeConfigError("\(source): \(error.message)")
        }
    }

    /// application_log_config.log_format.json_format as one pattern, as Envoy turns it into one: each
    /// value is a pattern of its own inside a JSON string (`%j` is the JSON-escaped message), keys in
    /// the order written. The agent writes this when it logs as JSON, so both logs stay one JSON stream.
    public static func jsonPattern(_ object: JSONObject) throws(ConfigError) -> String {
        var members: [String] = []
        for (key, value) in object {
            guard let pattern = value.stringValue else {
                throw makeConfigError("application_log_config.log_format.json_format.\(key): must be a string pattern")
            }
            members.append(quoted(key) + ":" + quoted(pattern))
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    private static func quoted(_ text: String) -> String {
        "\"" + JSONValue.escapedStringContents(text) + "\""
    }

    /// The line, ending in a newline.
    public func format(_ record: ProxyLogRecord) -> String {
        let date = record.time.utc
        var line = ""
        line.reserveCapacity(pattern.utf8.count + record.message.utf8.count + 48)
        for piece in pieces {
            switch piece {
            case .literal(let text): line += text
            case .year: line += date.year.padded(4)
            case .shortYear: line += (date.year % 100).padded(2)
            case .month: line += date.month.padded(2)
            case .day: line += date.day.padded(2)
            case .hour: line += date.hour.padded(2)
            case .minute: line += date.minute.padded(2)
            case .second: line += date.second.padded(2)
            case .time: line += "\(date.hour.padded(2)):\(date.minute.padded(2)):\(date.second.padded(2))"
            case .shortDate: line += "\(date.month.padded(2))/\(date.day.padded(2))/\((date.year % 100).padded(2))"
            case .utcOffset: line += "+00:00"
            case .epochSeconds: line += String(record.time.seconds)
            case .milliseconds: line += (date.nanosecond / 1_000_000).padded(3)
            case .microseconds: line += (date.nanosecond / 1000).padded(6)
            case .nanoseconds: line += date.nanosecond.padded(9)
            case .level: line += record.level.rawValue
            case .levelLetter: line += Self.letter(record.level)
            case .loggerName: line += record.component
            case .message: line += record.message
            case .jsonEscapedMessage: line += Self.jsonEscaped(record.message)
            case .escapedMessage: line += Self.controlEscaped(record.message)
            case .threadID: line += String(record.threadID)
            case .processID: line += String(processID)
            case .sourceFile: line += record.file
            case .sourceBaseName: line += record.file.split(separator: "/").last.map(String.init) ?? ""
            case .sourceLine: line += record.line == 0 ? "" : String(record.line)
            case .sourceLocation: line += record.file.isEmpty ? "" : "\(record.file):\(record.line)"
            case .function: line += record.function
            }
        }
        return line + "\n"
    }

    static func compile(_ pattern: String) throws(ConfigError) -> [Piece] {
        var pieces: [Piece] = []
        var literal = ""
        var iterator = pattern.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else {
                literal.append(character)
                continue
            }
            guard let flag = iterator.next() else {
                throw makeConfigError("log format '\(pattern)' ends with a lone '%'; write '%%' for a percent sign")
            }
            if flag == "%" {
                literal.append("%")
                continue
            }
            guard let piece = flags[flag] else {
                let hint = "-+=0123456789".contains(flag)
                    ? "spdlog's padding and alignment (e.g. '%-8l') is not supported"
                    : "supported flags are " + supportedFlagList
                throw makeConfigError("log format '\(pattern)': unsupported flag '%\(flag)'; \(hint)")
            }
            if !literal.isEmpty {
                pieces.append(.literal(literal))
                literal = ""
            }
            pieces.append(piece)
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        return pieces
    }

    private static let flags: [Character: Piece] = [
        "Y": .year, "y": .shortYear, "m": .month, "d": .day, "H": .hour, "M": .minute, "S": .second,
        "T": .time, "X": .time, "D": .shortDate, "z": .utcOffset, "E": .epochSeconds,
        "e": .milliseconds, "f": .microseconds, "F": .nanoseconds,
        "l": .level, "L": .levelLetter, "n": .loggerName, "v": .message, "j": .jsonEscapedMessage, "_": .escapedMessage,
        "t": .threadID, "P": .processID, "g": .sourceFile, "s": .sourceBaseName, "#": .sourceLine, "@": .sourceLocation, "!": .function,
    ]

    private static let supportedFlagList =
        "%Y %y %m %d %H %M %S %T %X %D %z %E %e %f %F %l %L %n %v %j %_ %t %P %g %s %# %@ %! %%"

    /// spdlog's short level names.
    private static func letter(_ level: LogLevel) -> String {
        switch level {
        case .trace: "T"
        case .debug: "D"
        case .info: "I"
        case .warning: "W"
        case .error: "E"
        case .critical: "C"
        case .off: "O"
        }
    }

    /// Envoy's `%j`: the message as the inside of a JSON string.
    static func jsonEscaped(_ text: String) -> String {
        JSONValue.escapedStringContents(text)
    }

    /// Envoy's `%_`: C-style escapes for control characters, so one message stays one line.
    static func controlEscaped(_ text: String) -> String {
        var output = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                output += "\\x" + String(Int(scalar.value), radix: 16).leftPadded(to: 2)
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
