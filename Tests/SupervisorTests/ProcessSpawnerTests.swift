import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ExitStatusTests {
    @Test func decodesWaitStatusWords() {
        #expect(ExitStatus(waitStatus: 0x0300) == .exited(code: 3))
        #expect(ExitStatus(waitStatus: 0) == .exited(code: 0))
        #expect(ExitStatus(waitStatus: 0x0009) == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(ExitStatus(waitStatus: 0x008b) == .signaled(signal: SIGSEGV, coreDumped: true))
    }

    @Test func shellCodesAreCodeOrSignalPlus128() {
        #expect(ExitStatus.exited(code: 3).shellCode == 3)
        #expect(ExitStatus.signaled(signal: SIGTERM, coreDumped: false).shellCode == 143)
        #expect(ExitStatus.signaled(signal: SIGKILL, coreDumped: false).description == "killed by SIGKILL")
    }
}

@Suite struct ProcessSpawnerTests {
    @Test func reportsTheExitCode() async throws {
        let status = try await run(shell("exit 3"))
        #expect(status == .exited(code: 3))
        #expect(status.shellCode == 3)
    }

    @Test func reportsTheKillingSignal() async throws {
        let status = try await run(shell("kill -KILL $$"))
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(status.shellCode == 137)
    }

    @Test func missingBinaryIsAConfigurationErrorNamingThePath() throws {
        let path = "/nonexistent/sluice/envoy"
        #expect(throws: ProcessError.executableNotFound(path: path)) {
            try ChildReaper.shared.spawn(ProcessLaunch(executablePath: path))
        }
        let error = ProcessError.executableNotFound(path: path)
        #expect(error.isConfigurationError)
        #expect(error.description.contains(path))
    }

    @Test func nonExecutableFilesAndDirectoriesAreRefused() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let file = directory + "/envoy"
        try "not a program".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        for path in [file, directory] {
            do {
                _ = try ProcessSpawner.spawn(ProcessLaunch(executablePath: path))
                Issue.record("\(path) was spawned")
            } catch {
                guard case .notExecutable(let named, _) = error else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
                #expect(named == path)
                #expect(error.isConfigurationError)
            }
        }
    }

    /// The agent ignores SIGTERM (its shutdown handling) and blocks signals in its threads; a data
    /// plane inheriting either would survive a SIGTERM sent to it.
    @Test func childGetsDefaultDispositionsAndAnEmptyMask() async throws {
        let previous = signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, previous) }
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        sigaddset(&blocked, SIGUSR1)
        var savedMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &blocked, &savedMask)
        let pid: pid_t
        do {
            defer { pthread_sigmask(SIG_SETMASK, &savedMask, nil) }
            pid = try ChildReaper.shared.spawn(shell("kill -TERM $$; exit 0"))
        }
        let status = try await withTimeout(.seconds(20), "child") { await ChildReaper.shared.exitStatus(of: pid) }
        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))

        let usr1 = try await run(shell("kill -USR1 $$; exit 0"))
        #expect(usr1 == .signaled(signal: SIGUSR1, coreDumped: false))
    }

    @Test func environmentWorkingDirectoryAndStandardInput() async throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let resolved = try #require(realpath(directory, nil))
        defer { free(resolved) }
        let script = """
            [ "$GREETING" = hello ] || exit 10
            [ -z "$HOME" ] || exit 11
            [ "$(pwd -P)" = "$EXPECTED" ] || exit 12
            [ "$(readlink /proc/$$/fd/0)" = /dev/null ] || exit 13
            exit 0
            """
        var launch = shell(script, environment: ["GREETING": "hello", "EXPECTED": String(cString: resolved)])
        launch.workingDirectory = directory
        #expect(try await run(launch) == .exited(code: 0))
    }

    @Test func missingWorkingDirectoryIsRefused() throws {
        var launch = shell("exit 0")
        launch.workingDirectory = "/nonexistent/sluice"
        #expect(throws: ProcessError.workingDirectoryNotFound(path: "/nonexistent/sluice")) {
            try ChildReaper.shared.spawn(launch)
        }
    }

    /// The data plane must not hold the agent's sockets (a listening 15020 would outlive the agent).
    @Test func descriptorsAboveStandardErrorAreNotInherited() async throws {
        let descriptor = open("/dev/null", O_RDONLY)  // deliberately without O_CLOEXEC
        #expect(descriptor > 2)
        defer { close(descriptor) }
        let status = try await run(shell("[ -e /proc/$$/fd/\(descriptor) ] && exit 1; exit 0"))
        #expect(status == .exited(code: 0))
    }

    @Test func commandLineQuotesWhatNeedsIt() {
        let launch = ProcessLaunch(executablePath: "/usr/local/bin/envoy",
                                   arguments: ["-c", "a b.json", "--config-yaml", "{'x': 1}"], environment: [:])
        #expect(launch.commandLine == #"/usr/local/bin/envoy -c 'a b.json' --config-yaml '{'\''x'\'': 1}'"#)
    }
}
