import ConfigFormats

// MARK: - Syntax tree

/// A value-producing part of an action.
indirect enum TemplateExpression: Equatable {
    /// `.`
    case dot
    /// `.a.b` from `.`, or keys after another expression: `$x.a`, `(…).a`.
    case keys(base: TemplateExpression, names: [String])
    /// `$` (the root) or `$name`.
    case variable(String)
    case literal(JSONValue)
    /// `name arg…`; a pipeline stage appends the previous result as the last argument.
    case call(String, [TemplateExpression])
    /// `( … )`
    case pipeline([TemplateExpression])
}

indirect enum TemplateNode: Equatable {
    case text(String)
    case output(stages: [TemplateExpression], line: Int)
    case declare(variable: String, stages: [TemplateExpression], line: Int)
    case conditional(branches: [ConditionalBranch], otherwise: [TemplateNode]?, line: Int)
    case loop(RangeLoop)
}

struct ConditionalBranch: Equatable {
    var condition: [TemplateExpression]
    var body: [TemplateNode]
}

struct RangeLoop: Equatable {
    var keyVariable: String?
    var valueVariable: String?
    var over: [TemplateExpression]
    var body: [TemplateNode]
    var otherwise: [TemplateNode]?
    var line: Int
}

// MARK: - Tokens

enum TemplateToken: Equatable {
    case dot
    /// `.a.b` (names without the dots).
    case keys([String])
    /// `$` or `$name`, with any `.a.b` that follows it.
    case variable(String, keys: [String])
    case identifier(String)
    case literal(JSONValue)
    case leftParen
    case rightParen
    case pipe
    case declare
    case comma
}

struct LexedToken: Equatable {
    var token: TemplateToken
    /// Whether whitespace came before it: `(…).a` applies keys, `(…) .a` is another argument.
    var spaced: Bool
}

enum TemplateLexer {
    static func lex(_ content: String, line: Int) throws(BootstrapError) -> [LexedToken] {
        let scalars = Array(content.unicodeScalars)
        var tokens: [LexedToken] = []
        var index = 0
        var spaced = true

        func isIdentifierScalar(_ scalar: Unicode.Scalar) -> Bool {
            scalar == "_" || scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
        }
        func name(from start: Int) -> (String, Int) {
            var end = start
            while end < scalars.count, isIdentifierScalar(scalars[end]) { end += 1 }
            return (String(String.UnicodeScalarView(scalars[start..<end])), end)
        }
        /// `.a.b.c` starting at a dot.
        func keyChain(from start: Int) throws(BootstrapError) -> ([String], Int) {
            var names: [String] = []
            var position = start
            while position < scalars.count, scalars[position] == "." {
                let (key, end) = name(from: position + 1)
                guard !key.isEmpty else {
                    if names.isEmpty { return ([], position + 1) }
                    throw .template(line: line, problem: "a key name must follow '.' in \"\(content.trimmed)\"")
                }
                names.append(key)
                position = end
            }
            return (names, position)
        }

        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
                spaced = true
                index += 1
                continue
            }
            var token: TemplateToken
            switch scalar {
            case ".":
                let (names, end) = try keyChain(from: index)
                token = names.isEmpty ? .dot : .keys(names)
                index = end
            case "$":
                let (variableName, afterName) = name(from: index + 1)
                let (names, end) = try keyChain(from: afterName)
                token = .variable("$" + variableName, keys: names)
                index = end
            case "(": token = .leftParen; index += 1
            case ")": token = .rightParen; index += 1
            case "|": token = .pipe; index += 1
            case ",": token = .comma; index += 1
            case ":":
                guard index + 1 < scalars.count, scalars[index + 1] == "=" else {
                    throw .template(line: line, problem: "unexpected ':' (only ':=' is supported)")
                }
                token = .declare
                index += 2
            case "=":
                throw .template(line: line, problem: "assigning to a variable with '=' is not supported; declare it with ':='")
            case "\"":
                let (text, end) = try quotedString(scalars, from: index, line: line)
                token = .literal(.string(text))
                index = end
            case "`":
                var end = index + 1
                while end < scalars.count, scalars[end] != "`" { end += 1 }
                token = .literal(.string(String(String.UnicodeScalarView(scalars[(index + 1)..<end]))))
                index = end + 1
            case "-", "+", "0"..."9":
                let (number, end) = try numberLiteral(scalars, from: index, line: line)
                token = .literal(number)
                index = end
            default:
                guard isIdentifierScalar(scalar) else {
                    throw .template(line: line, problem: "unexpected character '\(scalar)' in \"\(content.trimmed)\"")
                }
                let (word, end) = name(from: index)
                index = end
                switch word {
                case "true": token = .literal(.bool(true))
                case "false": token = .literal(.bool(false))
                case "nil": token = .literal(.null)
                default: token = .identifier(word)
                }
            }
            tokens.append(LexedToken(token: token, spaced: spaced))
            spaced = false
        }
        return tokens
    }

    private static func quotedString(
        _ scalars: [Unicode.Scalar], from start: Int, line: Int
    ) throws(BootstrapError) -> (String, Int) {
        var text = String.UnicodeScalarView()
        var index = start + 1
        while index < scalars.count, scalars[index] != "\"" {
            guard scalars[index] == "\\" else {
                text.append(scalars[index])
                index += 1
                continue
            }
            guard index + 1 < scalars.count else { break }
            let escape = scalars[index + 1]
            index += 2
            switch escape {
            case "n": text.append("\n")
            case "t": text.append("\t")
            case "r": text.append("\r")
            case "\\", "\"", "'": text.append(escape)
            case "x", "u":
                let digits = escape == "x" ? 2 : 4
                let hex = String(String.UnicodeScalarView(scalars[index..<min(index + digits, scalars.count)]))
                guard hex.count == digits, let value = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(value) else {
                    throw .template(line: line, problem: "bad \\\(escape) escape in a quoted string")
                }
                text.append(decoded)
                index += digits
            default:
                throw .template(line: line, problem: "unknown escape \\\(escape) in a quoted string")
            }
        }
        return (String(text), index + 1)
    }

    private static func numberLiteral(
        _ scalars: [Unicode.Scalar], from start: Int, line: Int
    ) throws(BootstrapError) -> (JSONValue, Int) {
        var end = start
        if scalars[end] == "-" || scalars[end] == "+" { end += 1 }
        func continuesNumber(_ scalar: Unicode.Scalar, after previous: Unicode.Scalar) -> Bool {
            if ("0"..."9").contains(scalar) || scalar == "." || scalar == "e" || scalar == "E" { return true }
            return (scalar == "-" || scalar == "+") && (previous == "e" || previous == "E")
        }
        while end < scalars.count, continuesNumber(scalars[end], after: scalars[end - 1]) { end += 1 }
        let text = String(String.UnicodeScalarView(scalars[start..<end]))
        if let integer = Int64(text) { return (.integer(integer), end) }
        if let double = Double(text), double.isFinite, text.contains(where: \.isNumber) { return (.double(double), end) }
        throw .template(line: line, problem: "bad number \(text)")
    }
}

extension String {
    /// Without the leading and trailing whitespace Go's template syntax ignores.
    var trimmed: String {
        String(drop(while: TemplateScanner.isTrimmable).reversed().drop(while: TemplateScanner.isTrimmable).reversed())
    }
}

// MARK: - Parser

/// Turns the scanned items into a tree, matching `if`/`range`/`else`/`end`.
struct TemplateParser {
    private let items: [TemplateItem]
    private var position = 0

    /// Deep enough for any real template, shallow enough to keep recursion off the stack's edge.
    static let maximumNesting = 100

    static func parse(_ source: String) throws(BootstrapError) -> [TemplateNode] {
        var parser = TemplateParser(items: try TemplateScanner.scan(source))
        let (nodes, terminator) = try parser.parseList(opener: nil, depth: 0)
        switch terminator {
        case .endOfInput: break
        case .else(_, let line): throw .template(line: line, problem: "{{ else }} outside {{ if }} or {{ range }}")
        case .end(let line): throw .template(line: line, problem: "{{ end }} without a matching {{ if }} or {{ range }}")
        }
        return nodes
    }

    private init(items: [TemplateItem]) {
        self.items = items
    }

    private enum Terminator {
        case endOfInput
        case `else`([LexedToken], line: Int)
        case end(line: Int)
    }

    private struct Opener {
        var keyword: String
        var line: Int
    }

    private mutating func parseList(opener: Opener?, depth: Int) throws(BootstrapError) -> ([TemplateNode], Terminator) {
        var nodes: [TemplateNode] = []
        while position < items.count {
            let item = items[position]
            position += 1
            guard case .action(let content, let line) = item else {
                if case .text(let text) = item { nodes.append(.text(text)) }
                continue
            }
            if Self.isComment(content) { continue }
            if content.trimmed.hasPrefix("/*") {
                throw .template(line: line, problem: "a comment must fill its action: {{/* … */}}")
            }
            let tokens = try TemplateLexer.lex(content, line: line)
            guard let first = tokens.first else { throw .template(line: line, problem: "empty action {{ }}") }
            if case .identifier(let keyword) = first.token {
                let rest = Array(tokens.dropFirst())
                switch keyword {
                case "if":
                    try checkNesting(depth, line: line)
                    nodes.append(try parseConditional(rest, line: line, depth: depth))
                    continue
                case "range":
                    try checkNesting(depth, line: line)
                    nodes.append(try parseRange(rest, line: line, depth: depth))
                    continue
                case "else":
                    return (nodes, .else(rest, line: line))
                case "end":
                    guard rest.isEmpty else { throw .template(line: line, problem: "unexpected text after {{ end }}") }
                    return (nodes, .end(line: line))
                case "with", "define", "template", "block", "break", "continue":
                    throw .template(
                        line: line,
                        problem: "{{ \(keyword) }} is not supported (only if, else, range, end, variables and comments are)")
                default:
                    break
                }
            }
            if tokens.count >= 2, case .variable(let name, let keys) = first.token, keys.isEmpty, tokens[1].token == .declare {
                guard name != "$" else { throw .template(line: line, problem: "cannot declare $, it is the root") }
                let stages = try ExpressionParser.parsePipeline(Array(tokens.dropFirst(2)), line: line)
                nodes.append(.declare(variable: name, stages: stages, line: line))
                continue
            }
            nodes.append(.output(stages: try ExpressionParser.parsePipeline(tokens, line: line), line: line))
        }
        if let opener {
            throw .template(line: opener.line, problem: "{{ \(opener.keyword) }} has no matching {{ end }}")
        }
        return (nodes, .endOfInput)
    }

    private func checkNesting(_ depth: Int, line: Int) throws(BootstrapError) {
        guard depth < Self.maximumNesting else {
            throw .template(line: line, problem: "if/range nested more than \(Self.maximumNesting) levels deep")
        }
    }

    private static func isComment(_ content: String) -> Bool {
        let inner = content.trimmed
        return inner.hasPrefix("/*") && inner.hasSuffix("*/") && inner.count >= 4
    }

    private mutating func parseConditional(_ tokens: [LexedToken], line: Int, depth: Int) throws(BootstrapError) -> TemplateNode {
        guard !tokens.isEmpty else { throw .template(line: line, problem: "{{ if }} needs a condition") }
        var branches: [ConditionalBranch] = []
        var condition = try ExpressionParser.parsePipeline(tokens, line: line)
        let opener = Opener(keyword: "if", line: line)
        while true {
            let (body, terminator) = try parseList(opener: opener, depth: depth + 1)
            branches.append(ConditionalBranch(condition: condition, body: body))
            switch terminator {
            case .end:
                return .conditional(branches: branches, otherwise: nil, line: line)
            case .else(let rest, let elseLine):
                if rest.isEmpty {
                    let (otherwise, final) = try parseList(opener: opener, depth: depth + 1)
                    guard case .end = final else {
                        throw .template(line: elseLine, problem: "{{ else }} after {{ else }} in the {{ if }} of line \(line)")
                    }
                    return .conditional(branches: branches, otherwise: otherwise, line: line)
                }
                guard case .identifier("if") = rest[0].token, rest.count > 1 else {
                    throw .template(line: elseLine, problem: "only {{ else }} or {{ else if … }} may follow {{ if }}")
                }
                condition = try ExpressionParser.parsePipeline(Array(rest.dropFirst()), line: elseLine)
            case .endOfInput:
                throw .template(line: line, problem: "{{ if }} has no matching {{ end }}")
            }
        }
    }

    private mutating func parseRange(_ tokens: [LexedToken], line: Int, depth: Int) throws(BootstrapError) -> TemplateNode {
        var keyVariable: String?
        var valueVariable: String?
        var expressionTokens = tokens
        if let declare = tokens.firstIndex(where: { $0.token == .declare }) {
            var names: [String] = []
            for (offset, token) in tokens[..<declare].enumerated() {
                switch (offset % 2, token.token) {
                case (0, .variable(let name, keys: [])) where name != "$": names.append(name)
                case (1, .comma): break
                default: throw .template(line: line, problem: "{{ range }} declares variables as $v := … or $k, $v := …")
                }
            }
            guard names.count == 1 || names.count == 2, tokens[..<declare].count == names.count * 2 - 1 else {
                throw .template(line: line, problem: "{{ range }} declares one or two variables, not \(names.count)")
            }
            if names.count == 2 { keyVariable = names[0] }
            valueVariable = names.last
            expressionTokens = Array(tokens[(declare + 1)...])
        }
        guard !expressionTokens.isEmpty else { throw .template(line: line, problem: "{{ range }} needs a list or object") }
        let over = try ExpressionParser.parsePipeline(expressionTokens, line: line)
        let opener = Opener(keyword: "range", line: line)
        let (body, terminator) = try parseList(opener: opener, depth: depth + 1)
        var otherwise: [TemplateNode]?
        switch terminator {
        case .end: break
        case .else(let rest, let elseLine):
            guard rest.isEmpty else { throw .template(line: elseLine, problem: "only a plain {{ else }} may follow {{ range }}") }
            let (elseBody, final) = try parseList(opener: opener, depth: depth + 1)
            guard case .end = final else {
                throw .template(line: elseLine, problem: "{{ else }} after {{ else }} in a {{ range }}")
            }
            otherwise = elseBody
        case .endOfInput:
            throw .template(line: line, problem: "{{ range }} has no matching {{ end }}")
        }
        return .loop(RangeLoop(
            keyVariable: keyVariable, valueVariable: valueVariable, over: over, body: body,
            otherwise: otherwise, line: line))
    }
}

/// Pipelines and expressions inside one action.
enum ExpressionParser {
    static let functions: Set<String> = ["toJSON", "toJson", "js", "and", "or", "not", "eq", "ne", "len", "index"]

    static func parsePipeline(_ tokens: [LexedToken], line: Int, depth: Int = 0) throws(BootstrapError) -> [TemplateExpression] {
        guard depth < TemplateParser.maximumNesting else {
            throw .template(line: line, problem: "parentheses nested more than \(TemplateParser.maximumNesting) levels deep")
        }
        var stages: [TemplateExpression] = []
        var index = 0
        var parentheses = 0
        var stage: [LexedToken] = []
        while index < tokens.count {
            let token = tokens[index]
            switch token.token {
            case .leftParen: parentheses += 1
            case .rightParen: parentheses -= 1
            default: break
            }
            if token.token == .pipe, parentheses == 0 {
                stages.append(try parseCommand(stage, line: line, piped: !stages.isEmpty, depth: depth))
                stage = []
            } else {
                stage.append(token)
            }
            index += 1
        }
        stages.append(try parseCommand(stage, line: line, piped: !stages.isEmpty, depth: depth))
        return stages
    }

    private static func parseCommand(
        _ tokens: [LexedToken], line: Int, piped: Bool, depth: Int
    ) throws(BootstrapError) -> TemplateExpression {
        guard let first = tokens.first else { throw .template(line: line, problem: "missing value in pipeline") }
        var operands: [TemplateExpression] = []
        var index = 0
        if case .identifier(let name) = first.token {
            guard functions.contains(name) else {
                let supported = functions.sorted().joined(separator: ", ")
                throw .template(line: line, problem: "unknown function \"\(name)\" (supported: \(supported))")
            }
            index = 1
            while index < tokens.count { operands.append(try parseOperand(tokens, &index, line: line, depth: depth)) }
            return .call(name, operands)
        }
        let operand = try parseOperand(tokens, &index, line: line, depth: depth)
        guard index == tokens.count else {
            throw .template(line: line, problem: "a value cannot take arguments; only functions can")
        }
        if piped { throw .template(line: line, problem: "only a function can follow '|'") }
        return operand
    }

    private static func parseOperand(
        _ tokens: [LexedToken], _ index: inout Int, line: Int, depth: Int
    ) throws(BootstrapError) -> TemplateExpression {
        let token = tokens[index]
        index += 1
        switch token.token {
        case .dot: return .dot
        case .keys(let names): return .keys(base: .dot, names: names)
        case .variable(let name, let names): return names.isEmpty ? .variable(name) : .keys(base: .variable(name), names: names)
        case .literal(let value): return .literal(value)
        case .identifier(let name):
            // A function used as an argument takes no arguments of its own, as in Go.
            guard functions.contains(name) else { throw .template(line: line, problem: "unknown function \"\(name)\"") }
            return .call(name, [])
        case .leftParen:
            var inner: [LexedToken] = []
            var level = 1
            while index < tokens.count {
                let next = tokens[index]
                index += 1
                if next.token == .leftParen { level += 1 }
                if next.token == .rightParen {
                    level -= 1
                    if level == 0 { break }
                }
                inner.append(next)
            }
            guard level == 0 else { throw .template(line: line, problem: "unclosed '(' in action") }
            let stages = try parsePipeline(inner, line: line, depth: depth + 1)
            if index < tokens.count, !tokens[index].spaced, case .keys(let names) = tokens[index].token {
                index += 1
                return .keys(base: .pipeline(stages), names: names)
            }
            return .pipeline(stages)
        case .rightParen: throw .template(line: line, problem: "unexpected ')' in action")
        case .pipe: throw .template(line: line, problem: "unexpected '|' in action")
        case .declare: throw .template(line: line, problem: "unexpected ':=' (variables are declared as {{ $x := … }})")
        case .comma: throw .template(line: line, problem: "unexpected ',' in action")
        }
    }
}
