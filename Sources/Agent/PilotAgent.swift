import AgentConfig
import Logging
import NIOPosix
import SluiceInit
import StatusServer
import Glibc

/// `pilot-agent`: Istio's sidecar entrypoint, command for command.
public enum PilotAgent {
    /// What `main` does next after the synchronous start.
    public enum Start: Sendable {
        /// Done (help, version, istio-iptables, or a startup error): exit with this code.
        case finished(Int32)
        /// Needs the event loop: `run(_:)`.
        case proxy(PreparedAgent)
        case wait(WaitArguments)
        case request(RequestArguments)
    }

    /// Everything that must happen while the process has a single thread: parsing, configuration,
    /// the bootstrap, and dropping privileges. Also runs the commands that need no event loop.
    public static func prepare(arguments: [String], environment: [String: String]) -> Start {
        let startedAt = ContinuousClock.now
        let invocation: AgentInvocation
        do {
            invocation = try AgentCommandLine.parse(arguments)
        } catch {
            printError("pilot-agent: \(error)")
            return .finished(error.exitCode)
        }
        if case .proxy = invocation.command {} else {
            for warning in invocation.warnings { printError("pilot-agent: warning: \(warning)") }
        }
        switch invocation.command {
        case .help(let topic):
            print(AgentCommandLine.usage(for: topic), terminator: "")
            return .finished(0)
        case .version(let arguments):
            print(arguments.short ? AgentConfiguration.istioVersion
                                  : "pilot-agent version \(AgentConfiguration.istioVersion) (Sluice: Istio's agent behaviour, Sluice's implementation)")
            return .finished(0)
        case .istioIptables(let arguments):
            // Istio's image runs its init container as `pilot-agent istio-iptables …`: exactly sluice-init.
            return .finished(SluiceInitCommand.main(arguments: arguments, environment: environment))
        case .wait(let arguments):
            return .wait(arguments)
        case .request(let arguments):
            return .request(arguments)
        case .proxy:
            do {
                return .proxy(try AgentPreparation.prepare(invocation: invocation, environment: environment, startedAt: startedAt))
            } catch {
                printError("pilot-agent: \(error)")
                return .finished(error.exitCode)
            }
        }
    }

    public static func run(_ start: Start) async -> Int32 {
        switch start {
        case .finished(let code):
            return code
        case .proxy(let prepared):
            return await AgentRuntime.run(prepared)
        case .wait(let arguments):
            return await withEventLoop { group in
                await WaitCommand.run(url: arguments.url, period: arguments.period, requestTimeout: arguments.requestTimeout,
                                      timeout: arguments.timeout, group: group, log: { print($0) })
            }
        case .request(let arguments):
            let (code, output) = await withEventLoop { group in
                await RequestCommand.run(method: arguments.method, path: arguments.path, body: arguments.body,
                                         port: arguments.debugPort, group: group)
            }
            print(output, terminator: output.hasSuffix("\n") || output.isEmpty ? "" : "\n")
            return code
        }
    }

    /// One event loop, shut down when `body` is done: the agent's own traffic is a few requests a
    /// second, and one loop keeps the footprint small.
    static func withEventLoop<Result: Sendable>(_ body: (MultiThreadedEventLoopGroup) async -> Result) async -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let result = await body(group)
        try? await group.shutdownGracefully()
        return result
    }
}
