import ConfigFormats

/// Renders a custom bootstrap template (`--templateFile`, `ISTIO_BOOTSTRAP`). Istio renders these
/// with Go's `text/template`; Sluice implements the subset that bootstrap templates use, with Go's
/// semantics, and refuses everything else by name instead of guessing:
///
/// - Text is copied verbatim; actions are `{{ … }}`. `{{-` trims the whitespace (spaces, tabs,
///   newlines) before the action, `-}}` the whitespace after it; the `-` must be followed (or
///   preceded) by whitespace, as in Go.
/// - Comments: `{{/* … */}}`, also `{{- /* … */ -}}`; they may span lines and print nothing.
/// - Values: `.` (the current value), `.a.b` (keys, from `.`), `$` (the root), `$x` and `$x.a`
///   (variables), `"strings"` and `` `raw strings` ``, numbers, `true`, `false`, `nil`, and
///   `( pipeline )` with optional keys after it: `(index .m "k").a`.
/// - Pipelines: `value`, `function arg…`, and `… | function arg…` (the left side becomes the last argument).
/// - Functions: `toJSON` / `toJson` (compact JSON), `js` (Go's JavaScript string escaping),
///   `and`, `or`, `not`, `eq`, `ne`, `len`, `index`.
/// - Control: `{{ if p }}…{{ else if p }}…{{ else }}…{{ end }}` with Go's truthiness (false, 0,
///   "", empty lists and objects, null and missing keys are false); `{{ range p }}…{{ else }}…{{ end }}`
///   over a list (in order) or an object (values in key order, as Go sorts map keys), with `.` set to
///   the element, optionally `range $v := p` or `range $k, $v := p`; `{{ $x := p }}` declares a
///   variable until the end of the enclosing block.
///
/// Unlike Go, printing a key the variables do not have is an error naming the key (Go prints
/// `<no value>`, which only surfaces later as an unreadable bootstrap). A missing key is still
/// simply false in a condition and empty in `range`, so `{{ if .zipkin }}` keeps working.
/// Printed values follow Go's `fmt`: strings raw, integral numbers without a fraction, null as
/// `<nil>`, lists as `[a b]` and objects as `map[k:v]` (use `toJSON` for JSON).
///
/// Anything else (`with`, `define`, `template`, `block`, other functions, an action without its
/// closing `}}`, an `if` or `range` without its `end`) is a `BootstrapError` naming it and its line.
/// The caller checks that the result parses as JSON, or YAML for templates named `.yaml`/`.yaml.tmpl`.
public enum BootstrapTemplate {
    public static func render(template: String, variables: JSONObject) throws(BootstrapError) -> String {
        let nodes = try TemplateParser.parse(template)
        var execution = TemplateExecution(root: .object(variables))
        var output = ""
        try execution.run(nodes, dot: .value(.object(variables)), into: &output)
        return output
    }
}

// MARK: - Scanning text and actions

/// One piece of template source: literal text, or the inside of one `{{ … }}` (markers removed).
enum TemplateItem: Equatable {
    case text(String)
    case action(String, line: Int)
}

enum TemplateScanner {
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// The whitespace Go's trim markers remove.
    static func isTrimmable(_ character: Character) -> Bool {
        character == " " || character == "\t" || character == "\n" || character == "\r" || character == "\r\n"
    }

    /// Splits the source into text and actions and applies the trim markers.
    static func scan(_ source: String) throws(BootstrapError) -> [TemplateItem] {
        let bytes = Array(source.utf8)
        var items: [TemplateItem] = []
        var trimNextText = false
        var position = 0
        var line = 1

        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        func countLines(_ range: Range<Int>) -> Int { bytes[range].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }

        while position < bytes.count {
            let open = firstIndex(of: [0x7B, 0x7B], in: bytes, from: position) ?? bytes.count
            var literal = text(position..<open)
            if trimNextText { literal = String(literal.drop(while: isTrimmable)) }
            trimNextText = false
            line += countLines(position..<open)
            if open == bytes.count {
                if !literal.isEmpty { items.append(.text(literal)) }
                break
            }
            let actionLine = line
            var start = open + 2
            let trimBefore = start + 1 < bytes.count && bytes[start] == UInt8(ascii: "-") && isSpace(bytes[start + 1])
            if trimBefore {
                while let last = literal.last, isTrimmable(last) { literal.removeLast() }
                start += 1
            }
            if !literal.isEmpty { items.append(.text(literal)) }

            let close = try closingDelimiter(in: bytes, from: start, line: actionLine)
            var end = close
            if end - start >= 2, bytes[end - 1] == UInt8(ascii: "-"), isSpace(bytes[end - 2]) {
                end -= 1
                trimNextText = true
            }
            items.append(.action(text(start..<end), line: actionLine))
            line += countLines(open..<close)
            position = close + 2
        }
        return items
    }

    private static func firstIndex(of pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + pattern.count <= bytes.count {
            if bytes[index] == pattern[0], bytes[index + 1] == pattern[1] { return index }
            index += 1
        }
        return nil
    }

    /// The index of the `}}` ending the action that starts at `from`; quoted strings and comments
    /// may contain `}}` without ending it.
    private static func closingDelimiter(in bytes: [UInt8], from: Int, line: Int) throws(BootstrapError) -> Int {
        var index = from
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == 0x0A { break }
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw .template(line: line, problem: "unterminated quoted string in action")
                }
            case UInt8(ascii: "`"):
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "`") { index += 1 }
                guard index < bytes.count else {
                    throw .template(line: line, problem: "unterminated raw string in action")
                }
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                guard let commentEnd = firstIndex(of: [0x2A, 0x2F], in: bytes, from: index + 2) else {
                    throw .template(line: line, problem: "unterminated comment: /* without */")
                }
                index = commentEnd + 1
            case UInt8(ascii: "}") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "}"):
                return index
            default:
                break
            }
            index += 1
        }
        throw .template(line: line, problem: "unterminated action: {{ without a closing }}")
    }
}
