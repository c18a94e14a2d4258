/// Every failure of this module: a sentence naming the bad input and, where there is one, the fix.
public struct WorkloadIdentityError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
