/// A stats setting sluice-proxy cannot use: a regex that does not compile (a `stats_matcher`
/// `safe_regex`, a `stats_tags` regex, an admin `filter=`) or an admin query value it does not know.
/// The message quotes the bad input and says what would be accepted; callers that know where the
/// input came from (a bootstrap JSON path) prefix it.
public struct StatsError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
