import ConfigFormats

/// A value during execution: a JSON value, or a key the variables do not have (with the path that
/// named it, for the error message if it ever gets printed).
enum TemplateValue: Equatable {
    case value(JSONValue)
    case missing(String)

    /// Go's truthiness: false, 0, "", empty lists and maps, nil, and missing keys are false.
    var isTrue: Bool {
        guard case .value(let value) = self else { return false }
        switch value {
        case .null: return false
        case .bool(let flag): return flag
        case .integer(let number): return number != 0
        case .double(let number): return number != 0
        case .string(let text): return !text.isEmpty
        case .array(let elements): return !elements.isEmpty
        case .object(let object): return !object.isEmpty
        }
    }
}

struct TemplateExecution {
    let root: JSONValue
    /// Innermost scope last; `$` is the root.
    private var scopes: [[String: TemplateValue]]

    init(root: JSONValue) {
        self.root = root
        self.scopes = [["$": .value(root)]]
    }

    mutating func run(_ nodes: [TemplateNode], dot: TemplateValue, into output: inout String) throws(BootstrapError) {
        for node in nodes {
            switch node {
            case .text(let text):
                output += text
            case .output(let stages, let line):
                switch try evaluate(stages, dot: dot, line: line) {
                case .value(let value):
                    output += Self.print(value)
                case .missing(let path):
                    throw .template(line: line, problem: Self.noValue(path))
                }
            case .declare(let variable, let stages, let line):
                scopes[scopes.count - 1][variable] = try evaluate(stages, dot: dot, line: line)
            case .conditional(let branches, let otherwise, let line):
                var taken = false
                for branch in branches where try evaluate(branch.condition, dot: dot, line: line).isTrue {
                    try runScoped(branch.body, dot: dot, into: &output)
                    taken = true
                    break
                }
                if !taken, let otherwise { try runScoped(otherwise, dot: dot, into: &output) }
            case .loop(let loop):
                try runLoop(loop, dot: dot, into: &output)
            }
        }
    }

    private mutating func runScoped(
        _ nodes: [TemplateNode], dot: TemplateValue, bindings: [String: TemplateValue] = [:], into output: inout String
    ) throws(BootstrapError) {
        scopes.append(bindings)
        defer { scopes.removeLast() }
        try run(nodes, dot: dot, into: &output)
    }

    private mutating func runLoop(_ loop: RangeLoop, dot: TemplateValue, into output: inout String) throws(BootstrapError) {
        let elements: [(key: JSONValue, value: JSONValue)]
        switch try evaluate(loop.over, dot: dot, line: loop.line) {
        case .missing, .value(.null):
            elements = []
        case .value(.array(let list)):
            elements = list.enumerated().map { (.integer(Int64($0.offset)), $0.element) }
        case .value(.object(let object)):
            // Go ranges over maps in sorted key order.
            elements = object.keys.sorted().map { (.string($0), object[$0]!) }
        case .value(let other):
            throw .template(line: loop.line, problem: "range can't iterate over \(other.kindDescription)")
        }
        guard !elements.isEmpty else {
            if let otherwise = loop.otherwise { try runScoped(otherwise, dot: dot, into: &output) }
            return
        }
        for element in elements {
            var bindings: [String: TemplateValue] = [:]
            if let key = loop.keyVariable { bindings[key] = .value(element.key) }
            if let value = loop.valueVariable { bindings[value] = .value(element.value) }
            try runScoped(loop.body, dot: .value(element.value), bindings: bindings, into: &output)
        }
    }

    // MARK: - Expressions

    private func evaluate(_ stages: [TemplateExpression], dot: TemplateValue, line: Int) throws(BootstrapError) -> TemplateValue {
        var result: TemplateValue?
        for stage in stages {
            if let previous = result, case .call(let name, let arguments) = stage {
                result = try call(name, arguments, piped: previous, dot: dot, line: line)
            } else {
                result = try evaluate(stage, dot: dot, line: line)
            }
        }
        return result ?? .missing("an empty pipeline")
    }

    private func evaluate(
        _ expression: TemplateExpression, dot: TemplateValue, line: Int
    ) throws(BootstrapError) -> TemplateValue {
        switch expression {
        case .dot:
            return dot
        case .variable(let name):
            guard let value = scopes.reversed().lazy.compactMap({ $0[name] }).first else {
                throw .template(line: line, problem: "undefined variable \(name)")
            }
            return value
        case .literal(let value):
            return .value(value)
        case .keys(let base, let names):
            var current = try evaluate(base, dot: dot, line: line)
            var path = Self.describe(base)
            for name in names {
                path += "." + name
                switch current {
                case .missing:
                    current = .missing(path)
                case .value(.null):
                    current = .missing(path)
                case .value(.object(let object)):
                    current = object[name].map(TemplateValue.value) ?? .missing(path)
                case .value(let other):
                    let container = path.dropLast(name.count + 1)
                    let location = container.isEmpty ? "." : String(container)
                    throw .template(
                        line: line, problem: "can't look up key \(name) in \(location), which is \(other.kindDescription)")
                }
            }
            return current
        case .call(let name, let arguments):
            return try call(name, arguments, piped: nil, dot: dot, line: line)
        case .pipeline(let stages):
            return try evaluate(stages, dot: dot, line: line)
        }
    }

    private static func noValue(_ what: String) -> String {
        "no value for \(what): the bootstrap template variables have no such key"
    }

    private static func describe(_ base: TemplateExpression) -> String {
        switch base {
        case .dot: ""
        case .variable(let name): name
        default: "(…)"
        }
    }

    // MARK: - Functions

    private func call(
        _ name: String, _ argumentExpressions: [TemplateExpression], piped: TemplateValue?, dot: TemplateValue, line: Int
    ) throws(BootstrapError) -> TemplateValue {
        let count = argumentExpressions.count + (piped == nil ? 0 : 1)
        func argument(_ index: Int) throws(BootstrapError) -> TemplateValue {
            if index == argumentExpressions.count, let piped { return piped }
            return try evaluate(argumentExpressions[index], dot: dot, line: line)
        }
        func require(_ expected: ClosedRange<Int>) throws(BootstrapError) {
            guard expected.contains(count) else {
                let wanted =
                    expected.lowerBound == expected.upperBound ? "\(expected.lowerBound)" : "at least \(expected.lowerBound)"
                throw .template(line: line, problem: "\(name) takes \(wanted) argument\(wanted == "1" ? "" : "s"), not \(count)")
            }
        }
        func present(_ value: TemplateValue) throws(BootstrapError) -> JSONValue {
            switch value {
            case .value(let json): return json
            case .missing(let path):
                throw .template(line: line, problem: Self.noValue("\(path) (passed to \(name))"))
            }
        }

        switch name {
        case "toJSON", "toJson":
            try require(1...1)
            return .value(.string(try present(try argument(0)).renderedJSON(pretty: false)))
        case "js":
            try require(1...1)
            return .value(.string(Self.escapeJavaScript(Self.print(try present(try argument(0))))))
        case "not":
            try require(1...1)
            return .value(.bool(!(try argument(0)).isTrue))
        case "and", "or":
            try require(1...Int.max)
            var last = try argument(0)
            // Go stops at the first argument that decides the result.
            for index in 1..<count where last.isTrue == (name == "and") {
                last = try argument(index)
            }
            return last
        case "eq", "ne":
            try require(2...Int.max)
            let first = try argument(0)
            var equal = false
            for index in 1..<count where !equal {
                equal = try Self.equal(first, try argument(index), line: line)
            }
            return .value(.bool(name == "eq" ? equal : !equal))
        case "len":
            try require(1...1)
            switch try present(try argument(0)) {
            case .string(let text): return .value(.integer(Int64(text.utf8.count)))
            case .array(let elements): return .value(.integer(Int64(elements.count)))
            case .object(let object): return .value(.integer(Int64(object.count)))
            case let other: throw .template(line: line, problem: "len of \(other.kindDescription)")
            }
        case "index":
            try require(1...Int.max)
            var current = try argument(0)
            for position in 1..<count {
                let key = try present(try argument(position))
                switch (current, key) {
                case (.missing, _), (.value(.null), _):
                    current = .missing("index …")
                case (.value(.object(let object)), .string(let name)):
                    current = object[name].map(TemplateValue.value) ?? .missing("index key \"\(name)\"")
                case (.value(.array(let elements)), _):
                    guard let offset = key.intValue, offset >= 0, offset < elements.count else {
                        throw .template(
                            line: line, problem: "index \(Self.print(key)) out of range for a list of \(elements.count)")
                    }
                    current = .value(elements[Int(offset)])
                case (.value(let container), _):
                    throw .template(line: line, problem: "can't index \(container.kindDescription) with \(key.kindDescription)")
                }
            }
            return current
        default:
            throw .template(line: line, problem: "unknown function \"\(name)\"")
        }
    }

    private static func equal(_ left: TemplateValue, _ right: TemplateValue, line: Int) throws(BootstrapError) -> Bool {
        func comparable(_ value: TemplateValue) throws(BootstrapError) -> JSONValue {
            switch value {
            case .missing: return .null
            case .value(.array), .value(.object):
                throw .template(line: line, problem: "eq and ne compare strings, numbers, booleans and nil, not lists or objects")
            case .value(let json): return json
            }
        }
        let (a, b) = (try comparable(left), try comparable(right))
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    // MARK: - Printing (Go's fmt %v for decoded JSON)

    static func print(_ value: JSONValue) -> String {
        switch value {
        case .null: return "<nil>"
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let number): return String(number)
        case .double(let number):
            if number.rounded() == number, abs(number) < 1e21, let integer = Int64(exactly: number) { return String(integer) }
            return "\(number)"
        case .string(let text): return text
        case .array(let elements): return "[" + elements.map(print).joined(separator: " ") + "]"
        case .object(let object):
            return "map[" + object.keys.sorted().map { "\($0):\(print(object[$0]!))" }.joined(separator: " ") + "]"
        }
    }

    /// Go's `js` escaping (`template.JSEscapeString`): quotes, backslash and HTML-significant
    /// characters escaped, control and non-printable characters as \uXXXX.
    static func escapeJavaScript(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "'": escaped += "\\'"
            case "\"": escaped += "\\\""
            case "<": escaped += "\\u003C"
            case ">": escaped += "\\u003E"
            case "&": escaped += "\\u0026"
            case "=": escaped += "\\u003D"
            case _ where scalar.value < 0x20 || (scalar.value >= 0x7F && !scalar.isPrintable):
                let hex = String(scalar.value, radix: 16, uppercase: true)
                escaped += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}

private extension Unicode.Scalar {
    /// Close to Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
    var isPrintable: Bool {
        switch properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator: false
        case .spaceSeparator: self == " "
        default: true
        }
    }
}
