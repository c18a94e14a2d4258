import Capture
import Glibc
import Netfilter

/// `sluice-init`: Istio's `istio-iptables` command line in, one nftables transaction out.
///
/// The pipeline is pure up to the last step (settings → config → ruleset → text); only `apply`
/// touches the kernel, and only through `Netfilter`. Exit codes: 0 done (or nothing to do), 2 bad
/// configuration (nothing changed), 1 the kernel refused (nothing changed: the batch is atomic), 126
/// `--run-validation` failed (Istio's code, which istio-cni's repair controller acts on).
public enum SluiceInitCommand {
    public static func main(arguments: [String], environment: [String: String]) -> Int32 {
        var output = StandardStreams()
        return run(arguments: arguments, environment: environment, facts: LiveSystemFacts(), output: &output)
    }

    static func run(
        arguments: [String], environment: [String: String], facts: some SystemFacts, output: inout StandardStreams
    ) -> Int32 {
        if let first = arguments.first, DebugCommand.names.contains(first) {
            return DebugCommands.run(arguments, environment: environment, output: &output)
        }
        // Istio's injected init container runs `pilot-agent istio-iptables <flags>`; accepting the
        // subcommand name lets an image whose entrypoint is sluice-init take those args unchanged.
        let flags = arguments.first == "istio-iptables" ? Array(arguments.dropFirst()) : arguments
        let resolved: ResolvedCapture
        do {
            let settings = try CaptureSettings.parse(arguments: flags, environment: environment)
            if settings.help {
                output.out(CaptureSettings.usage)
                return 0
            }
            resolved = try CaptureConfig.resolve(settings, facts: facts)
        } catch {
            output.err("sluice-init: \(error.message)")
            return error.exitCode
        }
        for warning in resolved.warnings { output.err("sluice-init: warning: \(warning)") }
        let options = resolved.runOptions

        if options.skipRuleApply && !options.dryRun {
            // CNI mode: the rules are someone else's, so only Istio's probe can judge them; nothing
            // needs building (this runs on every pod start).
            return options.runValidation ? Validation.probe(resolved, output: &output) : 0
        }

        // No tables is the cleanup: the batch and the text then remove every owned table.
        let ruleset = options.cleanupOnly ? Ruleset(tables: []) : RulesetBuilder.build(resolved.config).stamped()
        let routing = options.cleanupOnly ? RoutingPlan.cleanup(for: resolved.config) : RoutingPlan.apply(for: resolved.config)
        if options.dryRun {
            let text = NftTextRenderer.render(ruleset) + routing.dryRunComments
            if let path = options.dryRunFilePath {
                guard writeFile(path, text) else {
                    output.err("sluice-init: cannot write DRY_RUN_FILE_PATH \(path): \(String(cString: strerror(errno)))")
                    return 2
                }
            } else {
                output.out(text, terminator: "")
            }
            return 0
        }
        do {
            let outcome = try RulesetProgrammer().program(ruleset, routing: routing)
            output.out("sluice-init: \(outcome)")
            if options.runValidation && !options.cleanupOnly {
                return Validation.afterApply(ruleset, resolved, programmedBy: outcome.nftables, output: &output)
            }
            return 0
        } catch let error as ProgrammingError {
            output.err("sluice-init: \(error.message)")
            return error.exitCode
        } catch {
            output.err("sluice-init: \(error)")
            return 1
        }
    }

    private static func writeFile(_ path: String, _ text: String) -> Bool {
        guard let file = fopen(path, "w") else { return false }
        defer { fclose(file) }
        return fputs(text, file) >= 0
    }
}

/// stdout and stderr, swappable in tests.
struct StandardStreams {
    var captured: (out: String, err: String)? = nil

    mutating func out(_ text: String, terminator: String = "\n") {
        if captured != nil { captured!.out += text + terminator } else { write(STDOUT_FILENO, text + terminator) }
    }

    mutating func err(_ text: String) {
        if captured != nil { captured!.err += text + "\n" } else { write(STDERR_FILENO, text + "\n") }
    }

    /// Writes all of `text`, retrying short writes and EINTR (a pipe reader may take it in pieces).
    private func write(_ descriptor: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = retryingInterrupts { bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
