import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for Envoy in the supervisor's and the agent's tests, until the built-in data plane
/// exists: Envoy's command line, the bootstrap's admin address and static listeners, and the admin
/// endpoints pilot-agent calls. No traffic is proxied; listeners accept and close.
///
/// Switches, all from the environment:
/// - `SLUICE_TEST_DATAPLANE_LOG`: append the argv, bound ports, admin requests and exits there as
///   JSON lines stamped with CLOCK_MONOTONIC milliseconds (`monotonic_ms`).
/// - `SLUICE_TEST_DATAPLANE_STARTUP_DELAY_MS`: wait before the listeners and the admin port open.
/// - `SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS` + `SLUICE_TEST_DATAPLANE_EXIT_CODE`: crash on a timer.
/// - `SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS=N`: N active connections, one fewer per second after
///   a drain.
/// - `SLUICE_TEST_DATAPLANE_ORPHANS=N`: at start, leave N grandchildren that outlive their parent
///   by `SLUICE_TEST_DATAPLANE_ORPHAN_LIFETIME_MS` (200) and then exit, re-parented to the nearest
///   subreaper or PID 1 — the agent must reap them.
/// SIGTERM keeps its default action: the process dies by it (shell code 143), like Envoy.
/// Exits from event-loop threads use `_exit`: `exit` would run static destructors under the
/// running event loop, and the log needs no flushing (one `write` per line).
@main
struct TestDataPlane {
    static func main() {
        let startedAt = monotonicMilliseconds()
        let environment = ProcessInfo.processInfo.environment
        let log = EventLog(path: environment["SLUICE_TEST_DATAPLANE_LOG"])
        let arguments = Array(CommandLine.arguments.dropFirst())
        log.record("argv", ["argv": arguments, "pid": Int(getpid())])

        guard let configPath = configPath(in: arguments) else {
            fail("-c <bootstrap.json> is required (got: \(arguments.joined(separator: " ")))", log: log)
        }
        let bootstrap: BootstrapFile
        do {
            bootstrap = try BootstrapFile(path: configPath)
        } catch {
            fail("\(error)", log: log)
        }

        // Before any thread exists: fork is only safe in a single-threaded process.
        let orphanCount = integer(environment, "SLUICE_TEST_DATAPLANE_ORPHANS") ?? 0
        if orphanCount > 0 {
            let lifetime = integer(environment, "SLUICE_TEST_DATAPLANE_ORPHAN_LIFETIME_MS") ?? 200
            log.record("orphans", ["pids": leaveOrphans(orphanCount, lifetimeMilliseconds: lifetime).map(Int.init)])
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let exitAfter = integer(environment, "SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS") {
            let code = Int32(clamping: integer(environment, "SLUICE_TEST_DATAPLANE_EXIT_CODE") ?? 1)
            group.next().scheduleTask(in: .milliseconds(Int64(exitAfter))) {
                log.record("exit", ["code": Int(code), "reason": "SLUICE_TEST_DATAPLANE_EXIT_AFTER_MS"])
                _exit(code)
            }
        }
        if let delay = integer(environment, "SLUICE_TEST_DATAPLANE_STARTUP_DELAY_MS"), delay > 0 {
            usleep(UInt32(clamping: delay * 1000))
        }

        let state = AdminState(initialActiveConnections: integer(environment, "SLUICE_TEST_DATAPLANE_ACTIVE_CONNECTIONS") ?? 0,
                               startedAt: startedAt)
        do {
            for (index, listener) in bootstrap.listeners.enumerated() {
                let channel = try bindListener(listener.address, index: index, state: state, group: group)
                let bound = BoundListener(name: listener.name, address: listener.address.address,
                                          port: channel.localAddress?.port ?? listener.address.port)
                state.addListener(bound)
                log.record("listening", ["kind": "listener", "name": bound.name, "address": bound.address, "port": bound.port])
            }
            let admin = try bindAdmin(bootstrap.admin, api: AdminAPI(state: state, log: log), log: log, group: group)
            log.record("listening", ["kind": "admin", "name": "admin", "address": bootstrap.admin.address,
                                     "port": admin.localAddress?.port ?? bootstrap.admin.port])
            try admin.closeFuture.wait()
        } catch {
            fail("\(error)", log: log)
        }
    }

    static func configPath(in arguments: [String]) -> String? {
        for (index, argument) in arguments.enumerated() where argument == "-c" || argument == "--config-path" {
            if index + 1 < arguments.count { return arguments[index + 1] }
        }
        return nil
    }

    static func integer(_ environment: [String: String], _ name: String) -> Int? {
        environment[name].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    static func fail(_ message: String, log: EventLog) -> Never {
        printError(message)
        log.record("exit", ["code": 1, "reason": message])
        exit(1)
    }

    /// Accepts and closes: enough for "has its listeners" and for connection counts.
    static func bindListener(_ address: SocketAddress, index: Int, state: AdminState,
                             group: MultiThreadedEventLoopGroup) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.accepted(onListener: index)
                return channel.close()
            }
            .bind(host: address.address, port: address.port).wait()
    }

    static func bindAdmin(_ address: SocketAddress, api: AdminAPI, log: EventLog,
                          group: MultiThreadedEventLoopGroup) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(api: api) {
                        log.record("exit", ["code": 0, "reason": "quitquitquit"])
                        _exit(0)
                    })
                }
            }
            .bind(host: address.address, port: address.port).wait()
    }

    /// Forks `count` children that each fork a grandchild and exit at once; the grandchildren
    /// sleep and exit, by then orphans. Returns the grandchildren's pids. Only async-signal-safe
    /// calls run in the forked processes.
    static func leaveOrphans(_ count: Int, lifetimeMilliseconds: Int) -> [pid_t] {
        var orphans: [pid_t] = []
        for _ in 0..<count {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { break }
            let middle = fork()
            if middle == 0 {
                close(ends[0])
                var grandchild = fork()
                if grandchild == 0 {
                    close(ends[1])
                    var lifetime = timespec(tv_sec: lifetimeMilliseconds / 1000,
                                            tv_nsec: (lifetimeMilliseconds % 1000) * 1_000_000)
                    var remaining = timespec()
                    while nanosleep(&lifetime, &remaining) != 0 && errno == EINTR { lifetime = remaining }
                    _exit(0)
                }
                _ = write(ends[1], &grandchild, MemoryLayout<pid_t>.size)
                _exit(0)
            }
            close(ends[1])
            var grandchild: pid_t = 0
            if middle > 0 {
                _ = read(ends[0], &grandchild, MemoryLayout<pid_t>.size)
                var status: Int32 = 0
                _ = waitpid(middle, &status, 0)
            }
            close(ends[0])
            if grandchild > 0 { orphans.append(grandchild) }
        }
        return orphans
    }
}
