/// Bad input on pilot-agent's command line, in its environment or in a file it reads: one line naming the
/// input (flag, variable, file, annotation) and what would be right. Distinct from runtime failures so the
/// caller can exit 2 for these and 1 for the rest.
public struct AgentConfigError: Error, CustomStringConvertible, Sendable, Hashable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    /// Configuration errors exit 2, as sluice-init's do; runtime failures exit 1.
    public var exitCode: Int32 { 2 }

    public var description: String { message }
}
