// Our own YAML reader, standard library only: a Foundation-based YAML package costs pilot-agent 7–10 MB of
// resident memory, and the agent must stay under 20 MB. It reads what Istio users write in PROXY_CONFIG, the
// proxy.istio.io/config annotation, mesh config and ISTIO_BOOTSTRAP_OVERRIDE files, and refuses the rest of
// YAML by name rather than guessing.

extension JSONValue {
    /// Reads YAML (1.2 core schema) or JSON — JSON is YAML — into the same values, as Istio reads
    /// `PROXY_CONFIG`, mesh config and bootstrap overrides. Mapping keys must be scalars; anchors are
    /// expanded (within a size budget); only the first document counts. An empty document is null.
    /// Errors start with `YAML line N, column M: `.
    public static func parse(yamlOrJSON text: String) throws(FormatError) -> JSONValue {
        var reader = YAMLReader(text: text)
        return try reader.readFirstDocument()
    }
}

private enum Byte {
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let hash = UInt8(ascii: "#")
    static let colon = UInt8(ascii: ":")
    static let dash = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let question = UInt8(ascii: "?")
    static let comma = UInt8(ascii: ",")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let doubleQuote = UInt8(ascii: "\"")
    static let singleQuote = UInt8(ascii: "'")
    static let backslash = UInt8(ascii: "\\")
    static let ampersand = UInt8(ascii: "&")
    static let asterisk = UInt8(ascii: "*")
    static let bang = UInt8(ascii: "!")
    static let pipe = UInt8(ascii: "|")
    static let greater = UInt8(ascii: ">")
    static let at = UInt8(ascii: "@")
    static let backtick = UInt8(ascii: "`")
    static let percent = UInt8(ascii: "%")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }
    static func isBlank(_ byte: UInt8) -> Bool { byte == space || byte == tab || byte == newline }
    static func isDigit(_ byte: UInt8) -> Bool { byte >= zero && byte <= nine }
    static func isFlowIndicator(_ byte: UInt8) -> Bool {
        byte == comma || byte == openBracket || byte == closeBracket || byte == openBrace || byte == closeBrace
    }
    static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}

/// The only tags accepted: they say how to read a scalar, and nothing Istio reads needs others.
private enum ScalarTag: String {
    case str = "!!str", int = "!!int", bool = "!!bool", float = "!!float", null = "!!null"
}

private struct YAMLReader {
    private struct Anchored {
        var value: JSONValue
        /// Nodes plus characters, what copying it at an alias costs.
        var weight: Int
        /// Collection levels inside it, so a copy cannot push the document past the depth limit.
        var height: Int
    }

    private struct Properties {
        var anchor: String?
        var tag: ScalarTag?
        var tagOffset = 0
        var start: Int?
        var isEmpty: Bool { start == nil }
    }

    private enum Context { case document, afterDocumentStart, mappingValue, sequenceEntry }

    /// Deep enough for any configuration; shallow enough that hostile input cannot exhaust the stack.
    static let maximumDepth = 512
    /// Aliases copy values, so a few lines can describe a billion ("billion laughs"); configuration never
    /// needs more than this many copied nodes and characters.
    static let maximumAliasExpansion = 1_000_000

    private let bytes: [UInt8]
    private let firstLineStart: Int
    private var offset: Int
    /// The document ended: end of input, or a `---` / `...` marker.
    private var ended = false
    /// Indentation of the line `offset` is on, after `skipToContent`.
    private var lineIndent = 0
    private var anchors: [String: Anchored] = [:]
    private var weight = 0
    private var aliasWeight = 0
    private var deepest = 0
    /// The text of the scalar `readFlowNode` just read, nil after a collection or alias: `[a: 1]` needs it as a key.
    private var lastFlowScalar: String?

    init(text: String) {
        var input = Array(text.utf8)
        if input.contains(Byte.carriageReturn) {
            var unixLines: [UInt8] = []
            unixLines.reserveCapacity(input.count)
            for (index, byte) in input.enumerated()
            where !(byte == Byte.carriageReturn && index + 1 < input.count && input[index + 1] == Byte.newline) {
                unixLines.append(byte)
            }
            input = unixLines
        }
        bytes = input
        firstLineStart = input.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        offset = firstLineStart
    }

    // MARK: Positions and errors

    private var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private func byte(at index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private func isBlankOrEnd(_ index: Int) -> Bool {
        guard let byte = byte(at: index) else { return true }
        return Byte.isBlank(byte)
    }

    private func column(of index: Int) -> Int {
        var start = index
        while start > firstLineStart, bytes[start - 1] != Byte.newline { start -= 1 }
        return index - start
    }

    private func error(_ problem: String, at index: Int) -> FormatError {
        var line = 1
        var column = 1
        for byte in bytes[firstLineStart..<min(max(index, firstLineStart), bytes.count)] {
            if byte == Byte.newline { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        return FormatError("YAML line \(line), column \(column): \(problem)")
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    private func text(_ start: Int, _ end: Int) -> String {
        String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// `---` or `...` alone at the start of a line.
    private func isDocumentMarker(at lineStart: Int) -> Bool {
        guard lineStart + 3 <= bytes.count else { return false }
        let marker = bytes[lineStart..<lineStart + 3]
        return (marker.elementsEqual([Byte.dash, Byte.dash, Byte.dash]) || marker.elementsEqual([Byte.dot, Byte.dot, Byte.dot]))
            && isBlankOrEnd(lineStart + 3)
    }

    private func isSequenceEntry(at index: Int) -> Bool {
        byte(at: index) == Byte.dash && isBlankOrEnd(index + 1)
    }

    private var atLineEnd: Bool {
        guard let byte = current else { return true }
        return byte == Byte.newline || (byte == Byte.hash && offset > 0 && Byte.isBlank(bytes[offset - 1]))
    }

    private mutating func skipSpaces() {
        while let byte = current, Byte.isWhitespace(byte) { offset += 1 }
    }

    /// From the start of a line, skips blank and comment lines and stops on the first character of the next line
    /// with content, returning its indentation; nil when the document ends first.
    private mutating func skipToContent() throws(FormatError) -> Int? {
        while true {
            let start = offset
            guard start < bytes.count, !isDocumentMarker(at: start) else { ended = true; return nil }
            var index = start
            var firstTab: Int?
            while let byte = byte(at: index), Byte.isWhitespace(byte) {
                if byte == Byte.tab, firstTab == nil { firstTab = index }
                index += 1
            }
            guard let byte = byte(at: index) else { offset = index; ended = true; return nil }
            if byte == Byte.newline { offset = index + 1; continue }
            if byte == Byte.hash {
                while let next = self.byte(at: index), next != Byte.newline { index += 1 }
                offset = min(index + 1, bytes.count)
                continue
            }
            if let firstTab {
                throw error("tab characters are not allowed in indentation; indent with spaces", at: firstTab)
            }
            offset = index
            lineIndent = index - start
            return lineIndent
        }
    }

    /// After a value only spaces and a comment may follow on its line; then moves to the next line with content.
    private mutating func nextContentLine() throws(FormatError) -> Int? {
        skipSpaces()
        if atLineEnd {
            while let byte = current, byte != Byte.newline { offset += 1 }
        }
        if let byte = current {
            guard byte == Byte.newline else {
                if byte == Byte.colon {
                    throw error("mapping values are not allowed here; quote a value that contains ': ', or check the indentation", at: offset)
                }
                throw error("unexpected text after the value; quote the whole value", at: offset)
            }
            offset += 1
        }
        return try skipToContent()
    }

    // MARK: Documents and block structure

    mutating func readFirstDocument() throws(FormatError) -> JSONValue {
        var indent = try skipToContent()
        // Directives (%YAML, %TAG) may precede the document; they change nothing Istio reads.
        while indent == 0, current == Byte.percent {
            while let byte = current, byte != Byte.newline { offset += 1 }
            if current != nil { offset += 1 }
            indent = try skipToContent()
        }
        let value: JSONValue
        if indent != nil {
            value = try readValue(parentIndent: -1, context: .document, depth: 0)
        } else if offset < bytes.count, bytes[offset] == Byte.dash {
            ended = false
            offset += 3
            value = try readValue(parentIndent: -1, context: .afterDocumentStart, depth: 0)
        } else {
            return .null
        }
        guard ended else {
            throw error("unexpected content after the document's top-level value; check this line's indentation", at: offset)
        }
        return value
    }

    /// Reads the node after `key:`, `- `, `---` or at the document start: on the same line or the lines below.
    /// Leaves `offset` on the next line with content (or the document ended).
    private mutating func readValue(parentIndent: Int, context: Context, depth: Int) throws(FormatError) -> JSONValue {
        skipSpaces()
        let properties = try readProperties(inFlow: false)
        let mark = (weight: weight, deepest: deepest)
        deepest = depth
        let value: JSONValue
        if atLineEnd {
            if let indent = try nextContentLine(),
               indent > parentIndent || (indent == parentIndent && context == .mappingValue && isSequenceEntry(at: offset)) {
                value = try readBlockNode(parentIndent: parentIndent, depth: depth, properties: properties, allowsCollection: true)
            } else {
                value = try resolve("", quoted: false, tag: properties.tag, at: properties.tagOffset)
            }
        } else {
            // `- a: 1` and `- - x` start collections on the entry's line; `key: a: 1` does not.
            let allowsCollection = properties.isEmpty && (context == .document || context == .sequenceEntry)
            value = try readBlockNode(parentIndent: parentIndent, depth: depth, properties: properties, allowsCollection: allowsCollection)
        }
        if let anchor = properties.anchor {
            anchors[anchor] = Anchored(value: value, weight: weight - mark.weight, height: deepest - depth)
        }
        deepest = max(mark.deepest, deepest)
        return value
    }

    /// Reads the node whose first character is at `offset`.
    private mutating func readBlockNode(parentIndent: Int, depth: Int, properties: Properties, allowsCollection: Bool) throws(FormatError) -> JSONValue {
        let start = offset
        let first = bytes[start]
        if first == Byte.question, isBlankOrEnd(start + 1) {
            throw error("explicit keys ('? ') are not supported; mapping keys must be plain or quoted text", at: start)
        }
        let isSequence = isSequenceEntry(at: start)
        if isSequence || looksLikeKey() {
            guard allowsCollection else {
                if !properties.isEmpty {
                    throw error("an anchor or tag on the same line as a mapping key or list item is not supported; put it alone on the line before", at: start)
                }
                if isSequence {
                    throw error("a list cannot start on the same line as its key; put each '- ' item on its own line below", at: start)
                }
                throw error("mapping values are not allowed here; quote a value that contains ': ', or start the nested mapping on the next line", at: start)
            }
            if let tag = properties.tag {
                throw error("\(tag.rawValue) applies only to scalars, not to a mapping or list", at: properties.tagOffset)
            }
            let column = column(of: start)
            return isSequence ? try readBlockSequence(column: column, depth: depth) : try readBlockMapping(column: column, depth: depth)
        }
        switch first {
        case Byte.pipe, Byte.greater:
            let text = try readBlockScalar(parentIndent: parentIndent)
            let value = try resolve(text, quoted: true, tag: properties.tag, at: start)
            _ = try skipToContent()
            return value
        case Byte.openBrace, Byte.openBracket:
            if let tag = properties.tag {
                throw error("\(tag.rawValue) applies only to scalars, not to a mapping or list", at: properties.tagOffset)
            }
            let value = first == Byte.openBrace ? try readFlowMapping(depth: depth) : try readFlowSequence(depth: depth)
            skipSpaces()
            if current == Byte.colon {
                throw error("mapping keys must be scalars (plain or quoted text), not a list or mapping", at: start)
            }
            _ = try nextContentLine()
            return value
        case Byte.asterisk:
            guard properties.isEmpty else { throw error("an alias cannot carry an anchor or tag", at: start) }
            let value = try readAlias(depth: depth)
            skipSpaces()
            if current == Byte.colon { throw error("an alias cannot be a mapping key; write the key out", at: start) }
            _ = try nextContentLine()
            return value
        case Byte.doubleQuote, Byte.singleQuote:
            let text = try readQuoted()
            let value = try resolve(text, quoted: true, tag: properties.tag, at: start)
            _ = try nextContentLine()
            return value
        default:
            try checkPlainStart(at: start, inFlow: false)
            let text = readPlainBlock(parentIndent: parentIndent)
            let value = try resolve(text, quoted: false, tag: properties.tag, at: start)
            _ = try nextContentLine()
            return value
        }
    }

    /// Whether the line from `offset` is `key: …` with a single-line plain or quoted key.
    private func looksLikeKey() -> Bool {
        var index = offset
        switch bytes[index] {
        case Byte.doubleQuote, Byte.singleQuote:
            guard let close = closingQuoteOnLine(from: index) else { return false }
            index = close + 1
        case Byte.openBrace, Byte.openBracket, Byte.asterisk, Byte.ampersand, Byte.bang, Byte.pipe, Byte.greater:
            return false
        default:
            index = scanPlainEnd(from: index, inFlow: false)
        }
        while let byte = byte(at: index), Byte.isWhitespace(byte) { index += 1 }
        return byte(at: index) == Byte.colon && isBlankOrEnd(index + 1)
    }

    private func closingQuoteOnLine(from open: Int) -> Int? {
        let quote = bytes[open]
        var index = open + 1
        while let byte = byte(at: index), byte != Byte.newline {
            if quote == Byte.doubleQuote, byte == Byte.backslash { index += 2; continue }
            if byte == quote {
                if quote == Byte.singleQuote, self.byte(at: index + 1) == Byte.singleQuote { index += 2; continue }
                return index
            }
            index += 1
        }
        return nil
    }

    private mutating func enterCollection(depth: Int, at start: Int) throws(FormatError) {
        guard depth < Self.maximumDepth else { throw error("nested more than \(Self.maximumDepth) levels deep", at: start) }
        deepest = max(deepest, depth)
        weight += 1
    }

    private mutating func readBlockMapping(column: Int, depth: Int) throws(FormatError) -> JSONValue {
        try enterCollection(depth: depth, at: offset)
        var object = JSONObject()
        while true {
            let keyStart = offset
            let key = try readBlockKey()
            guard object[key] == nil else {
                throw error("duplicate key \"\(key)\"; each key may appear only once in a mapping", at: keyStart)
            }
            weight += key.utf8.count
            object[key] = try readValue(parentIndent: column, context: .mappingValue, depth: depth + 1)
            if ended || lineIndent < column { break }
            guard lineIndent == column else {
                throw error("bad indentation: this line is indented more than the key above it (column \(column + 1)); align it with that key or nest it under a key ending in ':'", at: offset)
            }
        }
        return .object(object)
    }

    private mutating func readBlockKey() throws(FormatError) -> String {
        let start = offset
        let key: String
        switch bytes[start] {
        case Byte.dash where isBlankOrEnd(start + 1):
            throw error("expected 'key: value' but found a list item; a list belongs under a key ending in ':'", at: start)
        case Byte.question where isBlankOrEnd(start + 1):
            throw error("explicit keys ('? ') are not supported; mapping keys must be plain or quoted text", at: start)
        case Byte.openBrace, Byte.openBracket:
            throw error("mapping keys must be scalars (plain or quoted text), not a list or mapping", at: start)
        case Byte.asterisk:
            throw error("an alias cannot be a mapping key; write the key out", at: start)
        case Byte.ampersand, Byte.bang:
            throw error("anchors and tags on mapping keys are not supported", at: start)
        case Byte.doubleQuote, Byte.singleQuote:
            key = try readQuoted()
            if bytes[start..<offset].contains(Byte.newline) {
                throw error("a quoted mapping key must fit on one line", at: start)
            }
        default:
            if bytes[start] == Byte.colon, isBlankOrEnd(start + 1) {
                throw error("a key is missing before ':'", at: start)
            }
            try checkPlainStart(at: start, inFlow: false)
            let end = scanPlainEnd(from: start, inFlow: false)
            key = text(start, end)
            offset = end
            // YAML 1.1 merge keys: Go's YAML applies them, so reading "<<" as a plain key would silently differ.
            if key == "<<" { throw error("merge keys ('<<') are not supported; write the merged keys out", at: start) }
        }
        skipSpaces()
        guard current == Byte.colon, isBlankOrEnd(offset + 1) else {
            throw error("expected 'key: value' (a ':' followed by a space or line end) at \"\(key)\"", at: start)
        }
        offset += 1
        return key
    }

    private mutating func readBlockSequence(column: Int, depth: Int) throws(FormatError) -> JSONValue {
        try enterCollection(depth: depth, at: offset)
        var elements: [JSONValue] = []
        while true {
            offset += 1
            elements.append(try readValue(parentIndent: column, context: .sequenceEntry, depth: depth + 1))
            if ended || lineIndent < column { break }
            guard lineIndent == column else {
                throw error("bad indentation: this line is indented more than the '-' above it (column \(column + 1))", at: offset)
            }
            guard isSequenceEntry(at: offset) else { break }
        }
        return .array(elements)
    }

    // MARK: Scalars

    /// Where a plain scalar starting at `start` ends on its line (trailing spaces excluded): before `: `,
    /// ` #`, the line end, and in flow context before `,[]{}`.
    private func scanPlainEnd(from start: Int, inFlow: Bool) -> Int {
        var index = start
        while let byte = byte(at: index), byte != Byte.newline {
            if byte == Byte.colon {
                let next = self.byte(at: index + 1)
                if next == nil || Byte.isBlank(next!) || (inFlow && Byte.isFlowIndicator(next!)) { break }
            } else if byte == Byte.hash, index > start, Byte.isWhitespace(bytes[index - 1]) {
                break
            } else if inFlow, Byte.isFlowIndicator(byte) {
                break
            }
            index += 1
        }
        while index > start, Byte.isWhitespace(bytes[index - 1]) { index -= 1 }
        return index
    }

    private func checkPlainStart(at index: Int, inFlow: Bool) throws(FormatError) {
        let first = bytes[index]
        let next = byte(at: index + 1)
        let separated = next == nil || Byte.isBlank(next!) || (inFlow && Byte.isFlowIndicator(next!))
        switch first {
        case Byte.at, Byte.backtick, Byte.percent:
            throw error("a plain value cannot start with \(describe(first)); quote it", at: index)
        case Byte.comma, Byte.closeBracket, Byte.closeBrace, Byte.openBracket, Byte.openBrace, Byte.hash:
            throw error("unexpected \(describe(first))", at: index)
        case Byte.pipe, Byte.greater:
            throw error("block scalars (| and >) cannot appear inside [ ] or { }", at: index)
        case Byte.colon where separated:
            throw error("a key is missing before ':'", at: index)
        case Byte.dash where separated, Byte.question where separated:
            throw error("unexpected \(describe(first)); quote the value", at: index)
        default:
            return
        }
    }

    /// A plain scalar in block context; lines indented more than its parent continue it, folded into spaces.
    private mutating func readPlainBlock(parentIndent: Int) -> String {
        let start = offset
        var end = scanPlainEnd(from: start, inFlow: false)
        var result = text(start, end)
        offset = end
        while true {
            var index = offset
            while let byte = byte(at: index), Byte.isWhitespace(byte) { index += 1 }
            guard byte(at: index) == Byte.newline else { break }
            var lineBreaks = 0
            var lineStart = index + 1
            var contentStart = lineStart
            while true {
                contentStart = lineStart
                while byte(at: contentStart) == Byte.space { contentStart += 1 }
                guard byte(at: contentStart) == Byte.newline else { break }
                lineBreaks += 1
                lineStart = contentStart + 1
            }
            guard let first = byte(at: contentStart), first != Byte.tab, first != Byte.hash,
                  contentStart - lineStart > parentIndent, !isDocumentMarker(at: lineStart) else { break }
            end = scanPlainEnd(from: contentStart, inFlow: false)
            var after = end
            while let byte = byte(at: after), Byte.isWhitespace(byte) { after += 1 }
            // A more indented `key: value` line is an indentation mistake, reported by the enclosing mapping.
            guard end > contentStart, byte(at: after) != Byte.colon else { break }
            result += lineBreaks == 0 ? " " : String(repeating: "\n", count: lineBreaks)
            result += text(contentStart, end)
            offset = end
        }
        return result
    }

    /// A single- or double-quoted scalar; line breaks inside fold into spaces (blank lines into newlines).
    private mutating func readQuoted() throws(FormatError) -> String {
        let start = offset
        let quote = bytes[start]
        let unterminated = quote == Byte.doubleQuote
            ? "unterminated double-quoted string; add the closing '\"'"
            : "unterminated single-quoted string; add the closing \"'\""
        offset += 1
        var utf8: [UInt8] = []
        var keptCount = 0  // bytes before this came from escapes or text and survive folding
        while true {
            guard let byte = current else { throw error(unterminated, at: start) }
            if byte == quote {
                if quote == Byte.singleQuote, self.byte(at: offset + 1) == Byte.singleQuote {
                    utf8.append(Byte.singleQuote)
                    offset += 2
                    keptCount = utf8.count
                    continue
                }
                offset += 1
                return String(decoding: utf8, as: UTF8.self)
            }
            if byte == Byte.newline {
                while utf8.count > keptCount, Byte.isWhitespace(utf8[utf8.count - 1]) { utf8.removeLast() }
                offset += 1
                var lineBreaks = 0
                while true {
                    if isDocumentMarker(at: offset) { throw error(unterminated, at: start) }
                    while let next = current, Byte.isWhitespace(next) { offset += 1 }
                    guard current == Byte.newline else { break }
                    lineBreaks += 1
                    offset += 1
                }
                if lineBreaks == 0 { utf8.append(Byte.space) } else { utf8.append(contentsOf: repeatElement(Byte.newline, count: lineBreaks)) }
                keptCount = utf8.count
                continue
            }
            if quote == Byte.doubleQuote, byte == Byte.backslash {
                if self.byte(at: offset + 1) == Byte.newline {
                    // An escaped line break joins the lines without a space.
                    offset += 2
                    while let next = current, Byte.isWhitespace(next) { offset += 1 }
                } else {
                    try readEscape(into: &utf8)
                }
                keptCount = utf8.count
                continue
            }
            utf8.append(byte)
            offset += 1
            if !Byte.isWhitespace(byte) { keptCount = utf8.count }
        }
    }

    private mutating func readEscape(into utf8: inout [UInt8]) throws(FormatError) {
        let start = offset
        offset += 1
        guard let escaped = current else { throw error("unterminated double-quoted string; add the closing '\"'", at: start) }
        offset += 1
        let simple: UInt32?
        switch escaped {
        case Byte.zero: simple = 0
        case UInt8(ascii: "a"): simple = 0x07
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "t"), Byte.tab: simple = 0x09
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "v"): simple = 0x0B
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "e"): simple = 0x1B
        case Byte.space, Byte.doubleQuote, UInt8(ascii: "/"), Byte.backslash: simple = UInt32(escaped)
        case UInt8(ascii: "N"): simple = 0x85
        case UInt8(ascii: "_"): simple = 0xA0
        case UInt8(ascii: "L"): simple = 0x2028
        case UInt8(ascii: "P"): simple = 0x2029
        default: simple = nil
        }
        var code: UInt32
        if let simple {
            code = simple
        } else {
            let digits: Int
            switch escaped {
            case UInt8(ascii: "x"): digits = 2
            case UInt8(ascii: "u"): digits = 4
            case UInt8(ascii: "U"): digits = 8
            default: throw error("invalid escape \\\(Character(Unicode.Scalar(escaped))) in a double-quoted string", at: start)
            }
            code = try readHex(digits: digits, escapeStart: start)
            // JSON writes characters beyond the BMP as surrogate pairs; JSON is YAML, so read them the same.
            if digits == 4, (0xD800..<0xDC00).contains(code) {
                guard byte(at: offset) == Byte.backslash, byte(at: offset + 1) == UInt8(ascii: "u") else {
                    throw error("unpaired surrogate in \\u escape", at: start)
                }
                offset += 2
                let low = try readHex(digits: 4, escapeStart: start)
                guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape", at: start) }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("escape names no Unicode character", at: start) }
        utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    private mutating func readHex(digits: Int, escapeStart: Int) throws(FormatError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<digits {
            guard let byte = current, Byte.isHexDigit(byte) else {
                throw error("escape needs \(digits) hex digits", at: escapeStart)
            }
            code = code << 4 | UInt32(Int(String(Character(Unicode.Scalar(byte))), radix: 16)!)
            offset += 1
        }
        return code
    }

    private enum Chomping { case clip, strip, keep }

    /// A `|` (literal) or `>` (folded) block scalar; leaves `offset` at the start of the first line after it.
    private mutating func readBlockScalar(parentIndent: Int) throws(FormatError) -> String {
        let start = offset
        let isLiteral = bytes[start] == Byte.pipe
        offset += 1
        var chomping: Chomping?
        var explicitIndent: Int?
        while let byte = current {
            if chomping == nil, byte == Byte.dash || byte == Byte.plus {
                chomping = byte == Byte.dash ? .strip : .keep
            } else if explicitIndent == nil, byte > Byte.zero, byte <= Byte.nine {
                explicitIndent = Int(byte - Byte.zero)
            } else {
                break
            }
            offset += 1
        }
        skipSpaces()
        if atLineEnd {
            while let byte = current, byte != Byte.newline { offset += 1 }
        }
        guard current == nil || current == Byte.newline else {
            throw error("invalid block scalar header: after | or > only '-' or '+', an indentation digit and a comment may follow", at: start)
        }
        if current != nil { offset += 1 }

        let minimumIndent = parentIndent + 1
        var contentIndent = minimumIndent
        if let explicitIndent {
            contentIndent = max(parentIndent, 0) + explicitIndent
        } else {
            var lineStart = offset
            while lineStart < bytes.count {
                var cursor = lineStart
                while byte(at: cursor) == Byte.space { cursor += 1 }
                if byte(at: cursor) == Byte.newline { lineStart = cursor + 1; continue }
                if byte(at: cursor) != nil { contentIndent = max(cursor - lineStart, minimumIndent) }
                break
            }
        }

        var lines: [ArraySlice<UInt8>] = []
        while offset < bytes.count {
            let lineStart = offset
            if isDocumentMarker(at: lineStart) { break }
            var cursor = lineStart
            while cursor - lineStart < contentIndent, byte(at: cursor) == Byte.space { cursor += 1 }
            var lineEnd = cursor
            while let byte = byte(at: lineEnd), byte != Byte.newline { lineEnd += 1 }
            if cursor - lineStart < contentIndent {
                guard cursor == lineEnd else { break }  // less indented content ends the scalar
                lines.append([])
            } else {
                lines.append(bytes[cursor..<lineEnd])
            }
            offset = min(lineEnd + 1, bytes.count)
        }

        var trailingBreaks = 0
        while let last = lines.last, last.isEmpty { lines.removeLast(); trailingBreaks += 1 }
        var utf8: [UInt8] = []
        if isLiteral {
            for (index, line) in lines.enumerated() {
                if index > 0 { utf8.append(Byte.newline) }
                utf8.append(contentsOf: line)
            }
        } else {
            var pendingBreaks = 0
            var previousMoreIndented = false
            var wroteLine = false
            for line in lines {
                if line.isEmpty { pendingBreaks += 1; continue }
                // More indented lines keep their line breaks; the others fold into spaces.
                let moreIndented = Byte.isWhitespace(line.first!)
                if !wroteLine {
                    utf8.append(contentsOf: repeatElement(Byte.newline, count: pendingBreaks))
                } else if moreIndented || previousMoreIndented {
                    utf8.append(contentsOf: repeatElement(Byte.newline, count: pendingBreaks + 1))
                } else if pendingBreaks == 0 {
                    utf8.append(Byte.space)
                } else {
                    utf8.append(contentsOf: repeatElement(Byte.newline, count: pendingBreaks))
                }
                utf8.append(contentsOf: line)
                pendingBreaks = 0
                wroteLine = true
                previousMoreIndented = moreIndented
            }
        }
        switch chomping ?? .clip {
        case .strip:
            break
        case .clip:
            if !lines.isEmpty { utf8.append(Byte.newline) }
        case .keep:
            if !lines.isEmpty { utf8.append(Byte.newline) }
            utf8.append(contentsOf: repeatElement(Byte.newline, count: trailingBreaks))
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    // MARK: Anchors, aliases and tags

    private mutating func readProperties(inFlow: Bool) throws(FormatError) -> Properties {
        var properties = Properties()
        while let first = current, first == Byte.ampersand || first == Byte.bang {
            let start = offset
            offset += 1
            while let byte = current, !Byte.isBlank(byte), !Byte.isFlowIndicator(byte) { offset += 1 }
            let name = text(start + 1, offset)
            if first == Byte.ampersand {
                guard !name.isEmpty else { throw error("'&' must be followed by an anchor name", at: start) }
                guard properties.anchor == nil else { throw error("a value can carry only one anchor", at: start) }
                properties.anchor = name
            } else {
                guard properties.tag == nil else { throw error("a value can carry only one tag", at: start) }
                guard let tag = ScalarTag(rawValue: "!" + name) else {
                    throw error("unsupported tag !\(name); only !!str, !!int, !!bool, !!float and !!null are accepted", at: start)
                }
                properties.tag = tag
                properties.tagOffset = start
            }
            if properties.start == nil { properties.start = start }
            if inFlow { skipFlowSpace() } else { skipSpaces() }
        }
        return properties
    }

    private mutating func readAlias(depth: Int) throws(FormatError) -> JSONValue {
        let start = offset
        offset += 1
        while let byte = current, !Byte.isBlank(byte), !Byte.isFlowIndicator(byte) { offset += 1 }
        let name = text(start + 1, offset)
        guard !name.isEmpty else { throw error("'*' must be followed by an anchor name", at: start) }
        guard let anchored = anchors[name] else {
            throw error("unknown alias *\(name): no value before it carries the anchor &\(name)", at: start)
        }
        aliasWeight += anchored.weight
        weight += anchored.weight
        guard aliasWeight <= Self.maximumAliasExpansion else {
            throw error("aliases expand the document beyond \(Self.maximumAliasExpansion) values and characters; refusing it as too large", at: start)
        }
        guard depth + anchored.height < Self.maximumDepth else {
            throw error("nested more than \(Self.maximumDepth) levels deep", at: start)
        }
        deepest = max(deepest, depth + anchored.height)
        return anchored.value
    }

    /// Applies the YAML 1.2 core schema to a plain scalar, or the tag when there is one; quoted scalars are strings.
    private mutating func resolve(_ text: String, quoted: Bool, tag: ScalarTag?, at start: Int) throws(FormatError) -> JSONValue {
        weight += 1 + text.utf8.count
        switch tag {
        case nil:
            if quoted { return .string(text) }
            if Self.isNull(text) { return .null }
            if let flag = Self.boolean(text) { return .bool(flag) }
            if let integer = try integer(text, at: start) { return .integer(integer) }
            if let number = try float(text, at: start) { return .double(number) }
            return .string(text)
        case .str:
            return .string(text)
        case .null:
            guard Self.isNull(text) else { throw error("\"\(text)\" is not a valid !!null (write null, ~ or nothing)", at: start) }
            return .null
        case .bool:
            guard let flag = Self.boolean(text) else { throw error("\"\(text)\" is not a valid !!bool (write true or false)", at: start) }
            return .bool(flag)
        case .int:
            guard let integer = try integer(text, at: start) else { throw error("\"\(text)\" is not a valid !!int", at: start) }
            return .integer(integer)
        case .float:
            if let integer = try integer(text, at: start) { return .double(Double(integer)) }
            guard let number = try float(text, at: start) else { throw error("\"\(text)\" is not a valid !!float", at: start) }
            return .double(number)
        }
    }

    private static func isNull(_ text: String) -> Bool {
        text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    private static func boolean(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": true
        case "false", "False", "FALSE": false
        default: nil
        }
    }

    /// Decimal, `0x` hex or `0o` octal; nil when the text is not shaped like one. Decimals with a leading zero
    /// (`08`) stay text, as Istio's Go YAML reads them.
    private func integer(_ text: String, at start: Int) throws(FormatError) -> Int64? {
        let utf8 = Array(text.utf8)
        func outOfRange() -> FormatError { error("the integer \(text) does not fit in 64 bits; quote it if it is meant as text", at: start) }
        if utf8.count > 2, utf8[0] == Byte.zero, utf8[1] == UInt8(ascii: "x") || utf8[1] == UInt8(ascii: "o") {
            let isHex = utf8[1] == UInt8(ascii: "x")
            let digits = utf8[2...]
            guard digits.allSatisfy({ isHex ? Byte.isHexDigit($0) : ($0 >= Byte.zero && $0 <= UInt8(ascii: "7")) }) else { return nil }
            guard let value = Int64(String(decoding: digits, as: UTF8.self), radix: isHex ? 16 : 8) else { throw outOfRange() }
            return value
        }
        var body = utf8[...]
        if let sign = body.first, sign == Byte.plus || sign == Byte.dash { body = body.dropFirst() }
        guard !body.isEmpty, body.allSatisfy(Byte.isDigit) else { return nil }
        if body.count > 1, body.first == Byte.zero { return nil }
        guard let value = Int64(text) else { throw outOfRange() }
        return value
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` with a point or an exponent; nil otherwise.
    private func float(_ text: String, at start: Int) throws(FormatError) -> Double? {
        let unsigned = text.first == "+" || text.first == "-" ? String(text.dropFirst()) : text
        if [".inf", ".Inf", ".INF"].contains(unsigned) || [".nan", ".NaN", ".NAN"].contains(text) {
            throw error("\(text) is not a finite number; quote it if it is meant as text", at: start)
        }
        let utf8 = Array(text.utf8)
        var index = 0
        var normalized = ""
        if index < utf8.count, utf8[index] == Byte.plus || utf8[index] == Byte.dash {
            if utf8[index] == Byte.dash { normalized = "-" }
            index += 1
        }
        let integerStart = index
        while index < utf8.count, Byte.isDigit(utf8[index]) { index += 1 }
        let integerDigits = String(decoding: utf8[integerStart..<index], as: UTF8.self)
        var fractionDigits = ""
        var hasPoint = false
        if index < utf8.count, utf8[index] == Byte.dot {
            hasPoint = true
            index += 1
            let fractionStart = index
            while index < utf8.count, Byte.isDigit(utf8[index]) { index += 1 }
            fractionDigits = String(decoding: utf8[fractionStart..<index], as: UTF8.self)
        }
        guard !integerDigits.isEmpty || !fractionDigits.isEmpty else { return nil }
        var exponent = ""
        if index < utf8.count, utf8[index] == UInt8(ascii: "e") || utf8[index] == UInt8(ascii: "E") {
            index += 1
            var sign = ""
            if index < utf8.count, utf8[index] == Byte.plus || utf8[index] == Byte.dash {
                if utf8[index] == Byte.dash { sign = "-" }
                index += 1
            }
            let exponentStart = index
            while index < utf8.count, Byte.isDigit(utf8[index]) { index += 1 }
            guard index > exponentStart else { return nil }
            exponent = "e" + sign + String(decoding: utf8[exponentStart..<index], as: UTF8.self)
        }
        guard index == utf8.count, hasPoint || !exponent.isEmpty else { return nil }
        normalized += (integerDigits.isEmpty ? "0" : integerDigits) + "." + (fractionDigits.isEmpty ? "0" : fractionDigits) + exponent
        guard let number = Double(normalized), number.isFinite else {
            throw error("the number \(text) is out of range", at: start)
        }
        return number
    }

    // MARK: Flow collections

    private mutating func skipFlowSpace() {
        while let byte = current {
            if Byte.isWhitespace(byte) {
                offset += 1
            } else if byte == Byte.newline {
                offset += 1
                if isDocumentMarker(at: offset) { return }
            } else if byte == Byte.hash, offset == 0 || Byte.isBlank(bytes[offset - 1]) {
                while let next = current, next != Byte.newline { offset += 1 }
            } else {
                return
            }
        }
    }

    /// End of input, or a document marker: either leaves a flow collection unterminated.
    private var flowInputEnded: Bool {
        current == nil || ((offset == 0 || bytes[offset - 1] == Byte.newline) && isDocumentMarker(at: offset))
    }

    private mutating func readFlowNode(depth: Int) throws(FormatError) -> JSONValue {
        let properties = try readProperties(inFlow: true)
        let mark = (weight: weight, deepest: deepest)
        deepest = depth
        let start = offset
        var scalarText: String?
        let value: JSONValue
        guard !flowInputEnded, let first = current else {
            throw error("unexpected end of the document; expected a value", at: start)
        }
        switch first {
        case Byte.openBrace, Byte.openBracket:
            if let tag = properties.tag {
                throw error("\(tag.rawValue) applies only to scalars, not to a mapping or list", at: properties.tagOffset)
            }
            value = first == Byte.openBrace ? try readFlowMapping(depth: depth) : try readFlowSequence(depth: depth)
        case Byte.doubleQuote, Byte.singleQuote:
            let text = try readQuoted()
            value = try resolve(text, quoted: true, tag: properties.tag, at: start)
            scalarText = text
        case Byte.asterisk:
            guard properties.isEmpty else { throw error("an alias cannot carry an anchor or tag", at: start) }
            value = try readAlias(depth: depth)
        case Byte.comma, Byte.closeBracket, Byte.closeBrace:
            // `[&a , b]`, `{k: !!str }`: a node of properties alone is empty.
            guard !properties.isEmpty else { throw error("unexpected \(describe(first)); expected a value", at: start) }
            value = try resolve("", quoted: false, tag: properties.tag, at: properties.tagOffset)
            scalarText = ""
        default:
            try checkPlainStart(at: start, inFlow: true)
            let end = scanPlainEnd(from: start, inFlow: true)
            let text = text(start, end)
            offset = end
            value = try resolve(text, quoted: false, tag: properties.tag, at: start)
            scalarText = text
        }
        if let anchor = properties.anchor {
            anchors[anchor] = Anchored(value: value, weight: weight - mark.weight, height: deepest - depth)
        }
        deepest = max(mark.deepest, deepest)
        lastFlowScalar = scalarText
        return value
    }

    private mutating func readFlowSequence(depth: Int) throws(FormatError) -> JSONValue {
        let open = offset
        try enterCollection(depth: depth, at: open)
        offset += 1
        func unterminated() -> FormatError { error("unterminated flow sequence: '[' without its closing ']'", at: open) }
        var elements: [JSONValue] = []
        while true {
            skipFlowSpace()
            guard !flowInputEnded, let first = current else { throw unterminated() }
            if first == Byte.closeBracket { offset += 1; return .array(elements) }
            let entryStart = offset
            var element = try readFlowNode(depth: depth + 1)
            skipFlowSpace()
            if current == Byte.colon {
                // `[a: 1]` is a list holding the mapping {a: 1}.
                guard let key = lastFlowScalar else {
                    throw error("mapping keys must be scalars (plain or quoted text), not a list or mapping", at: entryStart)
                }
                try enterCollection(depth: depth + 1, at: entryStart)
                weight += key.utf8.count
                offset += 1
                skipFlowSpace()
                var pairValue: JSONValue = .null
                if let next = current, next != Byte.comma, next != Byte.closeBracket, !flowInputEnded {
                    pairValue = try readFlowNode(depth: depth + 2)
                }
                element = .object(JSONObject([(key, pairValue)]))
                skipFlowSpace()
            }
            elements.append(element)
            guard !flowInputEnded, let next = current else { throw unterminated() }
            if next == Byte.comma { offset += 1; continue }
            if next == Byte.closeBracket { offset += 1; return .array(elements) }
            throw error("expected ',' or ']' in a flow sequence, found \(describe(next))", at: offset)
        }
    }

    private mutating func readFlowMapping(depth: Int) throws(FormatError) -> JSONValue {
        let open = offset
        try enterCollection(depth: depth, at: open)
        offset += 1
        func unterminated() -> FormatError { error("unterminated flow mapping: '{' without its closing '}'", at: open) }
        var object = JSONObject()
        while true {
            skipFlowSpace()
            guard !flowInputEnded, let first = current else { throw unterminated() }
            if first == Byte.closeBrace { offset += 1; return .object(object) }
            let keyStart = offset
            let key: String
            switch first {
            case Byte.openBrace, Byte.openBracket:
                throw error("mapping keys must be scalars (plain or quoted text), not a list or mapping", at: keyStart)
            case Byte.asterisk:
                throw error("an alias cannot be a mapping key; write the key out", at: keyStart)
            case Byte.ampersand, Byte.bang:
                throw error("anchors and tags on mapping keys are not supported", at: keyStart)
            case Byte.question where isBlankOrEnd(keyStart + 1):
                throw error("explicit keys ('? ') are not supported; mapping keys must be plain or quoted text", at: keyStart)
            case Byte.doubleQuote, Byte.singleQuote:
                key = try readQuoted()
            default:
                try checkPlainStart(at: keyStart, inFlow: true)
                let end = scanPlainEnd(from: keyStart, inFlow: true)
                key = text(keyStart, end)
                offset = end
            }
            guard object[key] == nil else {
                throw error("duplicate key \"\(key)\"; each key may appear only once in a mapping", at: keyStart)
            }
            weight += key.utf8.count
            skipFlowSpace()
            var value: JSONValue = .null
            if current == Byte.colon {
                offset += 1
                skipFlowSpace()
                if let next = current, next != Byte.comma, next != Byte.closeBrace, !flowInputEnded {
                    value = try readFlowNode(depth: depth + 1)
                }
            }
            object[key] = value
            skipFlowSpace()
            guard !flowInputEnded, let next = current else { throw unterminated() }
            if next == Byte.comma { offset += 1; continue }
            if next == Byte.closeBrace { offset += 1; return .object(object) }
            throw error("expected ',' or '}' in a flow mapping, found \(describe(next))", at: offset)
        }
    }
}
