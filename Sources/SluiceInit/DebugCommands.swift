import Capture
import Netfilter

/// Runs a debugging subcommand: parse, enter the pod's network namespace (on the calling thread, which
/// in `sluice-init` is the process's only one), then inspect, explain, trace or graph.
enum DebugCommands {
    static func run(_ arguments: [String], environment: [String: String], output: inout StandardStreams) -> Int32 {
        let command: DebugCommand
        do {
            command = try DebugCommandLine.parse(arguments)
        } catch {
            output.err("sluice-init: \(error.message)")
            return 2
        }
        let target: NamespaceTarget
        switch command {
        case .help(let text):
            output.out(text)
            return 0
        case .inspect(let options): target = options.namespace
        case .explain(let options): target = options.namespace
        case .trace(_, let namespace): target = namespace
        case .graph(let options): target = options.namespace
        }
        if let failure = enter(target) {
            output.err("sluice-init: \(failure.message)")
            return failure.exitCode
        }
        switch command {
        case .help: return 0
        case .inspect(let options): return InspectCommand.run(options, namespace: target, environment: environment, output: &output)
        case .explain(let options): return ExplainCommand.run(options, environment: environment, output: &output)
        case .trace(let options, _): return TraceCommand.run(options, output: &output)
        case .graph(let options): return GraphCommand.run(options, environment: environment, output: &output)
        }
    }

    /// Prints a failure the way every subcommand does and gives its exit code: 2 for what the user can
    /// fix in the arguments, the kernel error's own code otherwise.
    static func report(_ error: any Error, output: inout StandardStreams) -> Int32 {
        switch error {
        case let error as ConfigurationError:
            output.err("sluice-init: \(error.message)")
            return error.exitCode
        case let error as KernelError:
            output.err("sluice-init: \(error)")
            return error.exitCode
        default:
            output.err("sluice-init: \(error)")
            return 1
        }
    }

    /// Enters `target`; nil when done (or nothing to do), else why not. A path that does not open is the
    /// user's to fix (exit 2); a refused `setns` is a privilege problem (exit 1).
    private static func enter(_ target: NamespaceTarget) -> ProgrammingError? {
        let namespace: NetworkNamespace
        switch target {
        case .current:
            return nil
        case .path(let path):
            guard let opened = try? NetworkNamespace.open(path: path) else {
                return ProgrammingError(message: "cannot open --netns \(path): want a network namespace file such as "
                                        + "/run/netns/<name> or /proc/<pid>/ns/net", exitCode: 2)
            }
            namespace = opened
        case .process(let pid):
            guard let opened = try? NetworkNamespace.open(pid: pid) else {
                return ProgrammingError(message: "cannot open /proc/\(pid)/ns/net for --pid \(pid): no such process, "
                                        + "or it is not visible from here (run on the pod's node, as root)", exitCode: 2)
            }
            namespace = opened
        }
        do {
            try namespace.enter()
            return nil
        } catch {
            return ProgrammingError(message: "\(error) (entering another network namespace needs CAP_SYS_ADMIN: run as root)", exitCode: 1)
        }
    }
}
