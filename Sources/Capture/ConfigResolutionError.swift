/// Bad input on the command line or in the environment: one line naming the input (the env var when the
/// value came from one) and what would be right. `sluice-init` exits with `exitCode` and changes nothing.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Hashable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    /// Configuration errors exit 2, distinct from kernel failures (1) and validation failures (126).
    public var exitCode: Int32 { 2 }

    public var description: String { message }
}
