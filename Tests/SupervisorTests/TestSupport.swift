import Foundation
import Synchronization
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

/// Swift Testing has its own `ExitStatus` (for exit tests); the tests mean the supervisor's.
typealias ExitStatus = Supervisor.ExitStatus

/// A launch of `/bin/sh -c script`, with a minimal environment.
func shell(_ script: String, _ arguments: [String] = [], environment: [String: String] = [:]) -> ProcessLaunch {
    ProcessLaunch(executablePath: "/bin/sh", arguments: ["-c", script, "sh"] + arguments,
                  environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
}

/// Spawns through the shared reaper and waits, failing the test after `timeout`.
func run(_ launch: ProcessLaunch, timeout: Duration = .seconds(20)) async throws -> ExitStatus {
    let pid = try ChildReaper.shared.spawn(launch)
    return try await withTimeout(timeout, "\(launch.commandLine)") {
        await ChildReaper.shared.exitStatus(of: pid)
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(what)" }
}

/// Runs `body`, throwing `TimedOut` if it takes longer than `limit` (the body is cancelled).
func withTimeout<T: Sendable>(_ limit: Duration, _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
func eventually(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// CLOCK_MONOTONIC in milliseconds, the clock of the test data plane's log.
func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

/// A fresh directory under /tmp for one test.
func temporaryDirectory() throws -> String {
    var template = Array("/tmp/sluice-supervisor-XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    return String(cString: path)
}

/// Removes a test's directory and everything in it.
func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// True while /proc shows `pid` (a zombie included).
func processExists(_ pid: pid_t) -> Bool {
    access("/proc/\(pid)", F_OK) == 0
}

/// The `State:` letter and `PPid:` from /proc/<pid>/status, nil when the process is gone.
func processStatus(_ pid: pid_t) -> (state: String, parent: pid_t)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    var state = "?"
    var parent: pid_t = 0
    for line in text.split(separator: "\n") {
        if line.hasPrefix("State:") { state = String(line.dropFirst(6).trimmingCharacters(in: .whitespaces).prefix(1)) }
        if line.hasPrefix("PPid:") { parent = pid_t(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) ?? 0 }
    }
    return (state, parent)
}

// MARK: - Virtual time

/// A clock whose sleeps return at once after moving virtual time to their deadline: Istio's
/// second-scale drain timings run in microseconds and are checked exactly.
struct VirtualClock: Clock {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (left: Instant, right: Instant) -> Bool { left.offset < right.offset }
    }

    final class Storage: Sendable {
        let offset = Mutex(Duration.zero)
    }

    let storage = Storage()
    var now: Instant { Instant(offset: storage.offset.withLock { $0 }) }
    var minimumResolution: Duration { .nanoseconds(1) }
    var elapsed: Duration { now.offset }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try Task.checkCancellation()
        storage.offset.withLock { $0 = max($0, deadline.offset) }
        await Task.yield()
    }
}

// MARK: - Fakes for the drain sequence

struct FakeAdminError: Error {}

/// A scripted admin API that records each call with the virtual time it came at.
final class FakeAdmin: DataPlaneAdmin {
    enum Call: Hashable, CustomStringConvertible {
        case drain(inboundOnly: Bool, graceful: Bool, skipExit: Bool)
        case activeConnections

        var description: String {
            switch self {
            case .drain(let inbound, let graceful, let skipExit): "drain(inboundOnly: \(inbound), graceful: \(graceful), skipExit: \(skipExit))"
            case .activeConnections: "activeConnections"
            }
        }
    }

    /// One scripted answer to `activeDownstreamConnections`.
    enum Answer {
        case active(Int?)
        case failure
    }

    private struct State {
        var calls: [(Call, Duration)] = []
        var answers: [Answer]
        var drainFails: Bool
    }

    private let state: Mutex<State>
    private let clock: VirtualClock?

    init(answers: [Answer] = [], drainFails: Bool = false, clock: VirtualClock? = nil) {
        state = Mutex(State(answers: answers, drainFails: drainFails))
        self.clock = clock
    }

    var calls: [(Call, Duration)] { state.withLock { $0.calls } }

    private func record(_ call: Call) {
        let time = clock?.elapsed ?? .zero
        state.withLock { $0.calls.append((call, time)) }
    }

    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async throws {
        record(.drain(inboundOnly: inboundOnly, graceful: graceful, skipExit: skipExit))
        if state.withLock({ $0.drainFails }) { throw FakeAdminError() }
    }

    func activeDownstreamConnections() async throws -> Int? {
        record(.activeConnections)
        // An exhausted script fails, so a loop that runs too long ends within five more polls.
        let answer = state.withLock { $0.answers.isEmpty ? .failure : $0.answers.removeFirst() }
        switch answer {
        case .active(let count): return count
        case .failure: throw FakeAdminError()
        }
    }
}

/// A data plane that exits when sent one of `exitsOn`, recording each signal's virtual time.
final class FakeDataPlane: Sendable {
    private struct State {
        var exit: ExitStatus?
        var signals: [(Int32, Duration)] = []
    }

    private let state = Mutex(State())
    let exitsOn: Set<Int32>
    let clock: VirtualClock

    init(exitsOn: Set<Int32> = [SIGKILL, SIGTERM], clock: VirtualClock) {
        self.exitsOn = exitsOn
        self.clock = clock
    }

    var signals: [(Int32, Duration)] { state.withLock { $0.signals } }

    func sendSignal(_ signal: Int32) async {
        let time = clock.elapsed
        let exits = exitsOn.contains(signal)
        state.withLock { state in
            state.signals.append((signal, time))
            if exits && state.exit == nil { state.exit = .signaled(signal: signal, coreDumped: false) }
        }
    }

    /// Polls in real time (bounded: 10 s); the exit is checked before cancellation, as the reaper
    /// delivers a status that is already there.
    func waitForExit() async -> ExitStatus? {
        for _ in 0..<10_000 {
            if let exit = state.withLock({ $0.exit }) { return exit }
            if Task.isCancelled { return nil }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }
}

// MARK: - The test data plane

/// `sluice-test-dataplane`, built next to the test bundle (`swift build --build-tests` builds it).
func testDataPlanePath() throws -> String {
    let executable = try #require(try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    // The bundle may be a directory (….xctest/…) on some toolchains: look upwards a little.
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("sluice-test-dataplane").path
        if access(candidate, X_OK) == 0 { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    Issue.record("sluice-test-dataplane not found next to \(executable); build it with `swift build --product sluice-test-dataplane`")
    throw TimedOut(what: "locating sluice-test-dataplane")
}

/// A running test data plane: its log, admin port and listener ports.
struct RunningDataPlane {
    var pid: pid_t
    var directory: String
    var logPath: String
    var adminPort: Int
    var listenerPorts: [Int]

    /// Kills it if it still runs and removes its directory (for `defer`).
    func stop() {
        _ = try? ChildReaper.shared.signal(pid, SIGKILL)
        removeDirectory(directory)
    }
}

/// Reads the test data plane's JSON-lines log.
func logEvents(_ path: String) -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { line in
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }
}

/// Writes a bootstrap with the admin and `listeners` on 127.0.0.1 port 0 (the data plane logs the
/// ports it got), spawns the test data plane and waits until its admin port listens.
func startTestDataPlane(listeners: [String] = ["virtualInbound"], environment: [String: String] = [:],
                        extraArguments: [String] = []) async throws -> RunningDataPlane {
    let directory = try temporaryDirectory()
    let bootstrapPath = directory + "/envoy-rev.json"
    let logPath = directory + "/dataplane.log"
    let listenerJSON = listeners.map {
        #"{"name": "\#($0)", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}"#
    }.joined(separator: ", ")
    let bootstrap = #"""
    {"node": {"id": "sidecar~127.0.0.1~test.default~default.svc.cluster.local"},
     "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
     "static_resources": {"listeners": [\#(listenerJSON)], "clusters": []}}
    """#
    try bootstrap.write(toFile: bootstrapPath, atomically: true, encoding: .utf8)
    let launch = ProcessLaunch(
        executablePath: try testDataPlanePath(),
        arguments: ["-c", bootstrapPath, "--drain-time-s", "45", "--drain-strategy", "immediate",
                    "--disable-hot-restart", "--allow-unknown-static-fields", "-l", "warning"] + extraArguments,
        environment: ["SLUICE_TEST_DATAPLANE_LOG": logPath].merging(environment) { $1 })
    let pid = try ChildReaper.shared.spawn(launch)
    var adminPort: Int?
    let started = await eventually(within: .seconds(15)) {
        adminPort = logEvents(logPath).first { $0["event"] as? String == "listening" && $0["kind"] as? String == "admin" }?["port"] as? Int
        return adminPort != nil || !processExists(pid) || processStatus(pid)?.state == "Z"
    }
    guard started, let adminPort else {
        _ = try? ChildReaper.shared.signal(pid, SIGKILL)
        Issue.record("test data plane did not start; log: \(logEvents(logPath))")
        removeDirectory(directory)
        throw TimedOut(what: "test data plane start")
    }
    let ports = logEvents(logPath).filter { $0["kind"] as? String == "listener" }.compactMap { $0["port"] as? Int }
    return RunningDataPlane(pid: pid, directory: directory, logPath: logPath, adminPort: adminPort, listenerPorts: ports)
}

// MARK: - A tiny blocking HTTP client (the test target links only Supervisor)

struct HTTPResult {
    var status: Int
    var body: String
}

/// One request on a fresh connection to 127.0.0.1:`port`, `Connection: close`, 5 s timeouts.
func httpRequest(_ method: String, port: Int, _ target: String) throws -> HTTPResult {
    let descriptor = try connectLoopback(port: port)
    defer { close(descriptor) }
    let request = Array("\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
        let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard count > 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        sent += count
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    for _ in 0..<10_000 {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count <= 0 { break }
        response += buffer[..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n"),
          let status = Int(text.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") else {
        throw TimedOut(what: "HTTP response to \(method) \(target): \(text.debugDescription)")
    }
    return HTTPResult(status: status, body: String(text[headerEnd.upperBound...]))
}

/// A TCP connection to 127.0.0.1:`port` with 5 s send and receive timeouts.
func connectLoopback(port: Int) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else {
        let number = errno
        close(descriptor)
        throw POSIXError(.init(rawValue: number) ?? .EIO)
    }
    return descriptor
}

/// The agent's admin client in miniature, over the blocking client: enough to run a real drain
/// sequence against the test data plane. Sums `listener.*downstream_cx_active` as Istio does,
/// leaving out per-worker stats and the admin listener.
struct LoopbackAdmin: DataPlaneAdmin {
    var port: Int

    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async throws {
        let flags = [inboundOnly ? "inboundonly" : nil, graceful ? "graceful" : nil, skipExit ? "skip_exit" : nil]
        let result = try httpRequest("POST", port: port, "/drain_listeners?" + flags.compactMap { $0 }.joined(separator: "&"))
        guard result.status == 200 else { throw FakeAdminError() }
    }

    func activeDownstreamConnections() async throws -> Int? {
        let result = try httpRequest("GET", port: port, "/stats?usedonly&filter=downstream_cx_active$")
        guard result.status == 200 else { throw FakeAdminError() }
        var total: Int?
        for line in result.body.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].hasPrefix("listener."), !parts[0].contains("worker_"),
                  !parts[0].hasPrefix("listener.admin."), let value = Int(parts[1].trimmingCharacters(in: .whitespaces))
            else { continue }
            total = (total ?? 0) + value
        }
        return total
    }
}
