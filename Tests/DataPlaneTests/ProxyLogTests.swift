import ConfigFormats
import DataPlane
import DataPlaneConfig
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// 2024-03-05T06:07:08.123456789Z
let fixedLogTime = WallClockTime(seconds: 1_709_618_828, nanoseconds: 123_456_789)

func record(_ message: String = "hello", level: LogLevel = .warning, component: String = "upstream") -> ProxyLogRecord {
    ProxyLogRecord(
        time: fixedLogTime, level: level, component: component, message: message,
        file: "DataPlane/HTTPRouteListener.swift", line: 42, function: "forward(_:)", threadID: 77)
}

/// Collects the lines a handler writes.
final class LineCollector: Sendable {
    let lines = Mutex<[String]>([])
    var output: ProxyLogOutput { ProxyLogOutput { line in self.lines.withLock { $0.append(line) } } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite("Proxy logging")
struct ProxyLogTests {
    // MARK: - Levels

    @Test func levelsComeFromTheCommandLine() throws {
        let commandLine = try ProxyCommandLine.parse(["-l", "warning", "--component-log-level", "upstream:debug,connection:trace"])
        let levels = try ProxyLogLevels(commandLine: commandLine, additionalComponents: ["forwarding"])
        #expect(levels.defaultLevel == .warning)
        #expect(levels.level(of: "admin") == .warning)
        #expect(levels.level(of: "upstream") == .debug)
        #expect(levels.level(of: "connection") == .trace)
        #expect(levels.level(of: "forwarding") == .warning)
        #expect(levels.level(of: "not-a-component") == .warning)
        #expect(levels.isEnabled(.debug, for: "upstream"))
        #expect(!levels.isEnabled(.info, for: "admin"))
        #expect(!levels.isEnabled(.off, for: "connection"))
        #expect(levels.snapshot().first?.component == "admin")
        #expect(levels.snapshot().last?.component == "forwarding")
        #expect(levels.components.contains("main") && levels.components.contains("misc") && levels.components.contains("pool"))
    }

    @Test func unknownComponentOnTheCommandLineIsAConfigError() {
        #expect {
            _ = try ProxyLogLevels(defaultLevel: .info, componentLevels: ["upstreams": .debug])
        } throws: { error in
            (error as? ConfigError)?.message.contains("'upstreams'") == true
        }
    }

    @Test func runtimeChangesAreAllOrNothing() throws {
        let levels = try ProxyLogLevels()
        #expect(levels.set(["upstream": .debug, "nosuch": .trace, "alsonot": .trace]) == ["alsonot", "nosuch"])
        #expect(levels.level(of: "upstream") == .info)
        #expect(levels.set(["upstream": .debug, "router": .error]).isEmpty)
        #expect(levels.level(of: "upstream") == .debug)
        #expect(levels.level(of: "router") == .error)
        levels.setAll(.critical)
        #expect(levels.snapshot().allSatisfy { $0.level == .critical })
        #expect(levels.level(of: "not-a-component") == .critical)
    }

    // MARK: - Formatting

    @Test func istiosPattern() throws {
        let format = try ProxyLogFormat(pattern: "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t")
        #expect(format.format(record()) == "2024-03-05T06:07:08.123456Z\twarning\tenvoy upstream DataPlane/HTTPRouteListener.swift:42\thello\tthread=77\n")
    }

    @Test func envoysDefaultPattern() throws {
        let format = try ProxyLogFormat(pattern: ProxyLogFormat.envoyDefault)
        #expect(format.format(record(level: .info, component: "main"))
            == "[2024-03-05 06:07:08.123][77][info][main] [DataPlane/HTTPRouteListener.swift:42] hello\n")
    }

    @Test func otherFlags() throws {
        let format = try ProxyLogFormat(pattern: "%L|%e|%F|%%|%s|%@|%!|%D|%H%M%S|%y|%z|%E")
        #expect(format.format(record(level: .critical))
            == "C|123|123456789|%|HTTPRouteListener.swift|DataPlane/HTTPRouteListener.swift:42|forward(_:)|03/05/24|060708|24|+00:00|1709618828\n")
        let escaped = try ProxyLogFormat(pattern: "{\"msg\":\"%j\"} %_")
        #expect(escaped.format(record("a \"b\"\nc")) == "{\"msg\":\"a \\\"b\\\"\\nc\"} a \"b\"\\nc\n")
        let levels = try ProxyLogFormat(pattern: "%L")
        #expect([LogLevel.trace, .debug, .info, .warning, .error, .off].map { levels.format(record(level: $0)) }
            == ["T\n", "D\n", "I\n", "W\n", "E\n", "O\n"])
    }

    @Test(arguments: [("[%Q] %v", "'%Q'"), ("%-8l %v", "padding"), ("%v %", "lone '%'"), ("%c", "'%c'")])
    func unsupportedFlagsAreConfigErrors(pattern: String, named: String) {
        #expect {
            try ProxyLogFormat.validate(pattern: pattern)
        } throws: { error in
            (error as? ConfigError)?.message.contains(named) == true
        }
    }

    @Test func patternInEffect() throws {
        let bootstrap = try parseBootstrap("""
        {"node": {"id": "n", "cluster": "c"}, "static_resources": {},
         "application_log_config": {"log_format": {"text_format": "%l %v"}}}
        """)
        #expect(try ProxyLogFormat.resolve(commandLine: ProxyCommandLine(), bootstrap: bootstrap).pattern == "%l %v")
        #expect(try ProxyLogFormat.resolve(commandLine: ProxyCommandLine(), bootstrap: nil).pattern == ProxyLogFormat.envoyDefault)
        let flag = try ProxyCommandLine.parse(["--log-format", "%v"])
        #expect(try ProxyLogFormat.resolve(commandLine: flag, bootstrap: nil).pattern == "%v")
        #expect(throws: ConfigError.self) {
            _ = try ProxyLogFormat.resolve(commandLine: flag, bootstrap: bootstrap)
        }
        let bad = try ProxyCommandLine.parse(["--log-format", "%Q"])
        #expect {
            _ = try ProxyLogFormat.resolve(commandLine: bad, bootstrap: nil)
        } throws: { error in
            (error as? ConfigError)?.message.hasPrefix("--log-format: ") == true
        }
    }

    // MARK: - Handler

    @Test func handlerFollowsTheComponentLevelAtEveryCall() throws {
        let levels = try ProxyLogLevels(defaultLevel: .info)
        let collector = LineCollector()
        let format = try ProxyLogFormat(pattern: "%l [%n] %v")
        let logger = Logger(label: "upstream") { label in
            ProxyLogHandler(label: label, levels: levels, format: format, output: collector.output, clock: { fixedLogTime }, threadID: { 1 })
        }
        logger.debug("hidden")
        logger.info("shown")
        logger.notice("notice is info")
        _ = levels.set(["upstream": .trace])
        logger.trace("now shown", metadata: ["peer": "10.0.0.1"])
        _ = levels.set(["upstream": .error])
        logger.warning("hidden again")
        logger.critical("always")
        levels.setAll(.off)
        logger.critical("not even this")
        #expect(collector.all == [
            "info [upstream] shown\n",
            "info [upstream] notice is info\n",
            "trace [upstream] now shown peer=10.0.0.1\n",
            "critical [upstream] always\n",
        ])
    }

    @Test func settingTheLoggerLevelSetsTheComponent() throws {
        let levels = try ProxyLogLevels(defaultLevel: .info)
        let format = try ProxyLogFormat(pattern: "%v")
        var logger = Logger(label: "router") { label in
            ProxyLogHandler(label: label, levels: levels, format: format, output: LineCollector().output)
        }
        #expect(logger.logLevel == .info)
        logger.logLevel = .debug
        #expect(levels.level(of: "router") == .debug)
        levels.setAll(.off)
        #expect(logger.logLevel == .critical)
    }

    @Test func threadIDIsTheKernels() {
        let id = ProxyLogHandler.currentThreadID()
        // /proc/thread-self links to "<pid>/task/<tid>" for the calling thread.
        var buffer = [CChar](repeating: 0, count: 128)
        let length = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        #expect(length > 0)
        let link = String(decoding: buffer.prefix(max(0, length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #expect(link == "\(getpid())/task/\(id)")
    }

    @Test func fileOutputAppendsWholeLines() throws {
        let path = "/tmp/sluice-proxylog-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path) }
        let output = try ProxyLogOutput.file(path: path)
        output.write("one\n")
        output.write("two\n")
        let file = try #require(fopen(path, "r"))
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        var lines: [String] = []
        while lines.count < 10, fgets(&buffer, 64, file) != nil {
            lines.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        #expect(lines == ["one\n", "two\n"])
        #expect(throws: ConfigError.self) { _ = try ProxyLogOutput.file(path: "/nonexistent-dir/x.log") }
    }

    // MARK: - Time

    @Test func calendarFieldsInUTC() {
        let date = fixedLogTime.utc
        #expect([date.year, date.month, date.day, date.hour, date.minute, date.second] == [2024, 3, 5, 6, 7, 8])
        #expect(date.weekday == 2)  // a Tuesday
        #expect(WallClockTime(seconds: 0).utc.weekday == 4)  // a Thursday
        let leapDay = WallClockTime(seconds: 951_868_799).utc
        #expect([leapDay.year, leapDay.month, leapDay.day, leapDay.hour] == [2000, 2, 29, 23])
        let beforeEpoch = WallClockTime(seconds: -1).utc
        #expect([beforeEpoch.year, beforeEpoch.month, beforeEpoch.day, beforeEpoch.second] == [1969, 12, 31, 59])
    }

    @Test func timestampsAsProtobufAndHTTPWriteThem() {
        #expect(fixedLogTime.protobufTimestamp == "2024-03-05T06:07:08.123456789Z")
        #expect(WallClockTime(seconds: 1_709_618_828, nanoseconds: 120_000_000).protobufTimestamp == "2024-03-05T06:07:08.120Z")
        #expect(WallClockTime(seconds: 1_709_618_828, nanoseconds: 1000).protobufTimestamp == "2024-03-05T06:07:08.000001Z")
        #expect(WallClockTime(seconds: 1_709_618_828).protobufTimestamp == "2024-03-05T06:07:08Z")
        #expect(fixedLogTime.httpDate == "Tue, 05 Mar 2024 06:07:08 GMT")
    }
}

@Suite("json_format: the bootstrap's JSON log lines")
struct ProxyLogJSONFormatTests {
    @Test("json_format becomes one pattern, keys in order, the message JSON-escaped")
    func jsonFormatPattern() throws {
        let object: JSONObject = ["level": "%l", "scope": "envoy %n", "msg": "%j"]
        #expect(try ProxyLogFormat.jsonPattern(object) == #"{"level":"%l","scope":"envoy %n","msg":"%j"}"#)
        let bad: JSONObject = ["level": 3]
        #expect(throws: ConfigError.self) { try ProxyLogFormat.jsonPattern(bad) }
    }
}
