/// pflag's `parseArgs` as a scanner: which words are flags, the value each flag takes, and which words
/// are positional — the syntax Istio's commands (istio-iptables, pilot-agent) accept. What a flag means
/// is the caller's business; the scanner only needs to know which flags exist and which take a value.
///
/// Syntax: `--flag value`, `--flag=value`, `-p 15001`, `-p15001`, `-p=15001`, grouped shorthands,
/// bare booleans (`--dry-run`, `-n`) or `--dry-run=false`, and `--` to end the flags. A value may start
/// with "-" (`-x ""`, `-x -1`): pflag takes the next word whatever it is.
public struct PflagScanner {
    public enum Arity: Sendable {
        /// A boolean: bare means true; a value only with `=`.
        case boolean
        /// Takes a value: inline, or the next word.
        case value
    }

    public enum Item: Sendable, Hashable {
        /// A known flag and its value, with the spelling used (`--name` or `-x`) for messages.
        case flag(name: String, value: String, spelling: String)
        /// An unknown `--name`. As pflag's `stripUnknownFlagValue` does for tolerant commands, a following
        /// word that does not look like a flag was taken as its value (`swallowed`).
        case unknownLong(name: String, swallowed: String?)
        /// An unknown shorthand inside `argument`; the rest of the group after `=` is dropped, and a
        /// shorthand ending its group swallows the next word as an unknown long flag does.
        case unknownShorthand(letter: Character, argument: String, swallowed: String?)
        case positional(String)
    }

    /// Malformed syntax; callers add their own "see … --help".
    public struct SyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    private var remaining: ArraySlice<String>
    private var pendingShorthands: (letters: Substring, argument: String)?
    private var afterTerminator = false
    private let longArity: (String) -> Arity?
    private let shorthand: (Character) -> (name: String, arity: Arity)?

    /// - Parameters:
    ///   - longArity: the arity of `--name`, or nil when there is no such flag.
    ///   - shorthand: the long name and arity of `-x`, or nil when there is no such shorthand.
    public init(_ arguments: [String], longArity: @escaping (String) -> Arity?,
                shorthand: @escaping (Character) -> (name: String, arity: Arity)?) {
        remaining = arguments[...]
        self.longArity = longArity
        self.shorthand = shorthand
    }

    /// The next item, or nil at the end. Lazy, so a caller that stops at its first error reports that one.
    public mutating func next() throws(SyntaxError) -> Item? {
        if var pending = pendingShorthands {
            let item = try scanShorthand(&pending.letters, argument: pending.argument)
            pendingShorthands = pending.letters.isEmpty ? nil : pending
            return item
        }
        guard let argument = remaining.popFirst() else { return nil }
        if afterTerminator || argument.count < 2 || !argument.hasPrefix("-") { return .positional(argument) }
        if argument == "--" {
            afterTerminator = true
            return try next()
        }
        if argument.hasPrefix("--") { return try scanLong(argument) }
        var letters = Substring(argument.dropFirst())
        let item = try scanShorthand(&letters, argument: argument)
        if !letters.isEmpty { pendingShorthands = (letters, argument) }
        return item
    }

    private mutating func scanLong(_ argument: String) throws(SyntaxError) -> Item {
        let body = argument.dropFirst(2)
        if body.first == "-" || body.first == "=" {
            throw SyntaxError(description: "bad flag syntax \(goQuoted(argument))")
        }
        let name: String
        let inlineValue: String?
        if let equals = body.firstIndex(of: "=") {
            name = String(body[..<equals])
            inlineValue = String(body[body.index(after: equals)...])
        } else {
            name = String(body)
            inlineValue = nil
        }
        guard let arity = longArity(name) else {
            return .unknownLong(name: name, swallowed: inlineValue == nil ? swallowUnknownValue() : nil)
        }
        if let inlineValue { return .flag(name: name, value: inlineValue, spelling: "--\(name)") }
        if arity == .boolean { return .flag(name: name, value: "true", spelling: "--\(name)") }
        guard let next = remaining.popFirst() else { throw SyntaxError(description: "flag --\(name) needs a value") }
        return .flag(name: name, value: next, spelling: "--\(name)")
    }

    /// pflag's `parseSingleShortArg`: consumes one shorthand (and its value) from the front of `letters`.
    private mutating func scanShorthand(_ letters: inout Substring, argument: String) throws(SyntaxError) -> Item {
        let letter = letters.removeFirst()
        let inlineValue = letters.count > 1 && letters.first == "="
        guard let flag = shorthand(letter) else {
            if inlineValue {
                letters = ""
                return .unknownShorthand(letter: letter, argument: argument, swallowed: nil)
            }
            return .unknownShorthand(letter: letter, argument: argument, swallowed: letters.isEmpty ? swallowUnknownValue() : nil)
        }
        let value: String
        if inlineValue {
            value = String(letters.dropFirst())
            letters = ""
        } else if flag.arity == .boolean {
            value = "true"
        } else if !letters.isEmpty {
            value = String(letters)
            letters = ""
        } else if let next = remaining.popFirst() {
            value = next
        } else {
            throw SyntaxError(description: "flag -\(letter) (--\(flag.name)) needs a value")
        }
        return .flag(name: flag.name, value: value, spelling: "-\(letter)")
    }

    private mutating func swallowUnknownValue() -> String? {
        guard let next = remaining.first, !next.hasPrefix("-") else { return nil }
        return remaining.removeFirst()
    }
}

/// Quotes a value for a message the way Go's `%q` does for printable text, so messages read like Istio's.
public func goQuoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\r": result += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f {
                result += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}
