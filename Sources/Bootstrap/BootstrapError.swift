/// A bootstrap that could not be produced. Every case is a configuration error (a bad custom
/// template or its variables): the caller exits 2 and the message says what to fix.
public enum BootstrapError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A custom bootstrap template (`--templateFile`, `ISTIO_BOOTSTRAP`) that cannot be parsed or
    /// executed; `line` is 1-based, counted in the template text.
    case template(line: Int, problem: String)

    public var description: String {
        switch self {
        case .template(let line, let problem): "bootstrap template line \(line): \(problem)"
        }
    }
}
