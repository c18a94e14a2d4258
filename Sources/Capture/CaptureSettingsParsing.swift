extension CaptureSettings {
    /// Builds the settings from the environment and the command line (without the program name), with
    /// the precedence and syntax of Istio's command (pflag): `--flag value`, `--flag=value`, `-p 15001`,
    /// `-p15001`, `-p=15001`, grouped shorthands, bare booleans (`--dry-run`, `-n`) or `--dry-run=false`,
    /// and `--` to end the flags.
    public static func parse(
        arguments: [String], environment: [String: String]
    ) throws(ConfigurationError) -> CaptureSettings {
        var settings = CaptureSettings()
        // BindEnv applies the env var at command construction; AdditionalEnv runs after it and so wins;
        // both errors are discarded by Istio, so an unparsable value leaves the previous one in place.
        for input in Input.allCases {
            for name in input.environmentNames {
                if let value = environment[name] {
                    settings.assign(input, value, from: .environment(name))
                }
            }
        }
        try settings.applyCommandLine(arguments)
        return settings
    }

    /// pflag's `parseArgs`, with Sluice's one-line errors: sluice-init takes only flags, and an unknown
    /// one is an error (Istio's istio-iptables refuses it too).
    private mutating func applyCommandLine(_ arguments: [String]) throws(ConfigurationError) {
        let seeHelp = "see sluice-init --help"
        var scanner = PflagScanner(arguments, longArity: { name in
            if let input = Input.byFlagName[name] { return input.kind == .bool ? .boolean : .value }
            return Self.loggingFlags[name].map { $0 == .bool ? .boolean : .value }
        }, shorthand: { letter in
            Input.byShorthand[letter].map { ($0.rawValue, $0.kind == .bool ? .boolean : .value) }
        })
        var positional: [String] = []
        while true {
            let item: PflagScanner.Item?
            do {
                item = try scanner.next()
            } catch {
                throw ConfigurationError("\(error); \(seeHelp)")
            }
            guard let item else { break }
            switch item {
            case .flag(let name, let value, let spelling):
                if let input = Input.byFlagName[name] {
                    try assignFromCommandLine(input, value, spelling: spelling)
                } else if let kind = Self.loggingFlags[name] {
                    try assignLoggingFlag(name, kind: kind, value)
                }
            case .unknownLong(let name, _):
                throw ConfigurationError("unknown flag --\(name); \(seeHelp)")
            case .unknownShorthand(let letter, let argument, _):
                throw ConfigurationError("unknown shorthand flag '\(letter)' in \(argument); \(seeHelp)")
            case .positional(let word):
                positional.append(word)
            }
        }
        if let first = positional.first {
            throw ConfigurationError(
                "unexpected argument \(goQuoted(first)): sluice-init takes only flags; \(seeHelp)")
        }
    }

    private mutating func assignFromCommandLine(
        _ input: Input, _ value: String, spelling: String
    ) throws(ConfigurationError) {
        if assign(input, value, from: .commandLine(spelling)) { return }
        let want = switch input.kind {
        case .bool: "want true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        case .uint16: "want a port number 0-65535"
        case .duration: "want a Go duration such as 5s, 1m30s or 500ms"
        case .string: "unexpected" // strings always parse
        }
        throw ConfigurationError("invalid value \(goQuoted(value)) for \(input.displayName): \(want)")
    }

    private mutating func assignLoggingFlag(
        _ name: String, kind: LoggingFlagKind, _ value: String
    ) throws(ConfigurationError) {
        switch kind {
        case .string:
            break
        case .bool:
            guard GoSyntax.parseBool(value) != nil else {
                throw ConfigurationError("invalid value \(goQuoted(value)) for --\(name): want true or false")
            }
        case .integer:
            guard GoSyntax.parseSigned(value) != nil else {
                throw ConfigurationError("invalid value \(goQuoted(value)) for --\(name): want an integer")
            }
        }
        loggingFlags[name, default: []].append(value)
    }
}

/// Go's value syntaxes, as pflag's typed flags parse them.
public enum GoSyntax {
    /// `strconv.ParseBool`.
    public static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }

    /// `strconv.ParseUint(text, 0, bitSize)`: decimal, `0x`/`0o`/`0b` prefixes, a leading `0` for octal,
    /// and `_` between digits.
    public static func parseUnsigned(_ text: String, bitSize: Int) -> UInt64? {
        var digits = Substring(text)
        guard !digits.isEmpty else { return nil }
        var base: UInt64 = 10
        if digits.first == "0" {
            let second = digits.dropFirst().first.map { Character($0.lowercased()) }
            if digits.count >= 3, second == "b" {
                base = 2; digits = digits.dropFirst(2)
            } else if digits.count >= 3, second == "o" {
                base = 8; digits = digits.dropFirst(2)
            } else if digits.count >= 3, second == "x" {
                base = 16; digits = digits.dropFirst(2)
            } else {
                base = 8; digits = digits.dropFirst()
            }
        }
        let limit: UInt64 = bitSize >= 64 ? .max : (1 << UInt64(bitSize)) - 1
        var value: UInt64 = 0
        var sawUnderscore = false
        for character in digits {
            if character == "_" { sawUnderscore = true; continue }
            guard let digit = character.hexDigitValue, UInt64(digit) < base else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: base)
            let (next, overflow2) = shifted.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2, next <= limit else { return nil }
            value = next
        }
        if sawUnderscore && !underscoresAreSeparators(text) { return nil }
        return value
    }

    /// `strconv.ParseInt(text, 0, 64)`.
    public static func parseSigned(_ text: String) -> Int64? {
        var body = Substring(text)
        var negative = false
        if let sign = body.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            body = body.dropFirst()
        }
        guard let magnitude = parseUnsigned(String(body), bitSize: 64) else { return nil }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// Go's `underscoreOK`: every `_` sits between digits (or right after a base prefix).
    private static func underscoresAreSeparators(_ text: String) -> Bool {
        var characters = Array(text)
        if let first = characters.first, first == "-" || first == "+" { characters.removeFirst() }
        enum Saw { case start, digit, underscore, other }
        var saw = Saw.start
        var index = 0
        var hex = false
        if characters.count >= 2, characters[0] == "0",
           let prefix = characters[1].lowercased().first, "box".contains(prefix) {
            index = 2
            saw = .digit
            hex = prefix == "x"
        }
        while index < characters.count {
            let character = characters[index]
            index += 1
            if character.isASCIIDigit || (hex && character.isHexDigit) {
                saw = .digit
            } else if character == "_" {
                if saw != .digit { return false }
                saw = .underscore
            } else {
                if saw == .underscore { return false }
                saw = .other
            }
        }
        return saw != .underscore
    }

    /// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a bare `0`.
    public static func parseDuration(_ text: String) -> Duration? {
        var scalars = Substring(text).unicodeScalars[...]
        var negative = false
        if let sign = scalars.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            scalars = scalars.dropFirst()
        }
        if String(scalars) == "0" { return .zero }
        if scalars.isEmpty { return nil }

        let maxMagnitude: UInt64 = 1 << 63
        var total: UInt64 = 0
        func isDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }
        while !scalars.isEmpty {
            guard let head = scalars.first, head == "." || isDigit(head) else { return nil }
            // Integer part.
            var whole: UInt64 = 0
            var sawWhole = false
            while let scalar = scalars.first, isDigit(scalar) {
                sawWhole = true
                guard whole <= maxMagnitude / 10 else { return nil }
                whole = whole * 10 + UInt64(scalar.value - 48)
                guard whole <= maxMagnitude else { return nil }
                scalars = scalars.dropFirst()
            }
            // Fraction: digits past what fits are dropped, as Go does.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var sawFraction = false
            if scalars.first == "." {
                scalars = scalars.dropFirst()
                var overflowed = false
                while let scalar = scalars.first, isDigit(scalar) {
                    sawFraction = true
                    scalars = scalars.dropFirst()
                    if overflowed { continue }
                    if fraction > (maxMagnitude - 1) / 10 { overflowed = true; continue }
                    let next = fraction * 10 + UInt64(scalar.value - 48)
                    if next > maxMagnitude { overflowed = true; continue }
                    fraction = next
                    scale *= 10
                }
            }
            guard sawWhole || sawFraction else { return nil }
            // Unit: everything up to the next digit or '.'.
            var unitText = ""
            while let scalar = scalars.first, scalar != ".", !isDigit(scalar) {
                unitText.unicodeScalars.append(scalar)
                scalars = scalars.dropFirst()
            }
            guard let unit = durationUnits[unitText] else { return nil }
            guard whole <= maxMagnitude / unit else { return nil }
            var amount = whole * unit
            if fraction > 0 {
                amount += UInt64(Double(fraction) * (Double(unit) / scale))
                guard amount <= maxMagnitude else { return nil }
            }
            total += amount
            guard total <= maxMagnitude else { return nil }
        }
        if negative { return .nanoseconds(Int64(truncatingIfNeeded: 0 &- total)) }
        guard total <= maxMagnitude - 1 else { return nil }
        return .nanoseconds(Int64(total))
    }

    private static let durationUnits: [String: UInt64] = [
        "ns": 1,
        "us": 1_000,
        "\u{00B5}s": 1_000, // micro sign
        "\u{03BC}s": 1_000, // Greek mu
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60 * 1_000_000_000,
        "h": 3600 * 1_000_000_000,
    ]
}
