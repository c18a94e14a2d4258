import Foundation
import Testing
@testable import Supervisor
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SignalForwarderTests {
    /// Signals sent to this (the agent's) process reach the target; SIGTERM/SIGINT are the agent's.
    @Test func forwardsHangupAndUserSignalsToTheTarget() async throws {
        #expect(!SignalForwarder.forwardedSignals.contains(SIGTERM))
        #expect(!SignalForwarder.forwardedSignals.contains(SIGINT))
        try SignalForwarder.install()
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        for (index, signal) in [SIGHUP, SIGUSR1, SIGUSR2].enumerated() {
            let ready = directory + "/ready-\(index)"
            let name = signalName(signal).dropFirst(3)
            // The trap is set before the ready file appears, so the signal cannot come too early.
            let pid = try ChildReaper.shared.spawn(shell(
                #"trap 'exit 7' \#(name); : > "$1"; i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 1"#,
                [ready]))
            #expect(await eventually { access(ready, F_OK) == 0 }, "child for \(name) never got ready")
            let forwardedBefore = SignalForwarder.forwarded
            SignalForwarder.target = pid
            kill(getpid(), signal)
            let status = try await withTimeout(.seconds(20), "child for \(name)") { await ChildReaper.shared.exitStatus(of: pid) }
            SignalForwarder.target = nil
            #expect(status == .exited(code: 7), "\(name)")
            #expect(SignalForwarder.forwarded > forwardedBefore)
        }

        // With no data plane the signal is dropped, not fatal to the agent.
        let droppedBefore = SignalForwarder.dropped
        kill(getpid(), SIGHUP)
        #expect(await eventually(within: .seconds(5)) { SignalForwarder.dropped > droppedBefore })
    }
}
