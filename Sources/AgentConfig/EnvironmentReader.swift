import Capture

/// Typed reads of environment variables with Istio's `env.Register` semantics (Go syntax for booleans,
/// integers and durations). Unlike Istio, which logs a bad value and falls back to the default, a bad
/// value is a configuration error naming the variable: a typo should not silently turn a feature off.
/// An empty value counts as unset, as Kubernetes often renders optional variables empty.
struct EnvironmentReader {
    let values: [String: String]

    func string(_ name: String) -> String? {
        guard let value = values[name], !value.isEmpty else { return nil }
        return value
    }

    func string(_ name: String, default fallback: String) -> String {
        string(name) ?? fallback
    }

    func bool(_ name: String, default fallback: Bool) throws(AgentConfigError) -> Bool {
        guard let text = string(name) else { return fallback }
        guard let value = GoSyntax.parseBool(text) else {
            throw AgentConfigError("\(name)=\(goQuoted(text)) is not a boolean: use true or false (Go syntax: 1, t, TRUE, 0, f, FALSE, ...)")
        }
        return value
    }

    func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>, want: String) throws(AgentConfigError) -> Int {
        guard let text = string(name) else { return fallback }
        guard let number = GoSyntax.parseSigned(text), let value = Int(exactly: number), range.contains(value) else {
            throw AgentConfigError("\(name)=\(goQuoted(text)) is not valid: want \(want)")
        }
        return value
    }

    func port(_ name: String, default fallback: Int) throws(AgentConfigError) -> Int {
        try integer(name, default: fallback, in: 1...65535, want: "a port number 1-65535")
    }

    func duration(_ name: String, default fallback: Duration) throws(AgentConfigError) -> Duration {
        guard let text = string(name) else { return fallback }
        guard let value = GoSyntax.parseDuration(text), value >= .zero else {
            throw AgentConfigError("\(name)=\(goQuoted(text)) is not a duration: use Go syntax such as 5s, 1m30s or 500ms")
        }
        return value
    }

    /// Every variable `PREFIX<KEY>=value`, as `KEY: value`, in name order.
    func withPrefix(_ prefix: String) -> [(key: String, value: String)] {
        values.keys.sorted().compactMap { name in
            guard name.hasPrefix(prefix), name.count > prefix.count else { return nil }
            return (String(name.dropFirst(prefix.count)), values[name]!)
        }
    }
}
