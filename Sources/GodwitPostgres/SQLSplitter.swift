/// One statement of a script and where it starts in that script.
///
/// `text` is a verbatim slice of the script: it starts at the statement's first real token
/// (leading whitespace and comments are skipped) and ends at its last non-whitespace character
/// before the terminating `;`, which is not included. Comments inside the statement, including
/// one right before the `;`, are kept, so the server sees exactly what the file says.
public struct SQLStatement: Sendable, Equatable {
    /// The statement, without the terminating `;` and without surrounding whitespace.
    public var text: String
    /// 1-based line in the whole script where `text` begins.
    public var startLine: Int
    /// 1-based column, counted in Unicode scalars, where `text` begins.
    public var startColumn: Int
    /// 0-based UTF-8 byte offset in the whole script where `text` begins.
    public var startOffset: Int

    public init(text: String, startLine: Int, startColumn: Int, startOffset: Int) {
        self.text = text
        self.startLine = startLine
        self.startColumn = startColumn
        self.startOffset = startOffset
    }
}

extension SQLStatement {
    /// Maps a 1-based character position inside `text` (as PostgreSQL reports it in an error)
    /// to a 1-based (line, column) in the whole script.
    ///
    /// PostgreSQL counts positions in characters of the query string, which for a UTF-8
    /// database are Unicode scalars, not bytes and not Swift `Character`s. Because `text` is a
    /// verbatim slice of the script, walking it from the statement's start lands on the same
    /// place in the file. Positions below 1 map to the start of the statement; positions past
    /// the end map to just after its last character, which is where the server points for
    /// "syntax error at end of input" (it reports `length + 1`).
    public func location(ofCharacterPosition position: Int) -> (line: Int, column: Int) {
        LineCounter(line: startLine, column: startColumn).location(ofScalarPosition: position, in: text)
    }
}

/// Line and column arithmetic for error positions in a script sent as a whole.
public enum SourceLocation {
    /// 1-based (line, column) of the 1-based character position `position` within `text`.
    ///
    /// Counts Unicode scalars, as PostgreSQL does. `\n`, `\r\n` and a lone `\r` each end a line.
    /// Out-of-range positions are clamped as in ``SQLStatement/location(ofCharacterPosition:)``.
    public static func lineAndColumn(in text: String, characterPosition position: Int) -> (line: Int, column: Int) {
        LineCounter().location(ofScalarPosition: position, in: text)
    }
}

/// Cuts a PostgreSQL script into statements on the client side.
///
/// Needed for `-- no-transaction` migrations: commands such as `CREATE INDEX CONCURRENTLY`
/// refuse to run inside the implicit transaction the server wraps around a multi-statement
/// query string, so each statement has to be sent on its own.
///
/// The splitter is a lexer, not a parser. It knows just enough of PostgreSQL's lexical rules
/// to find the semicolons that end statements, mirroring the server's `scan.l` and psql's
/// `psqlscan.l`:
///
/// - `'...'` strings with `''` escapes. Backslashes are literal, as they are with the default
///   `standard_conforming_strings = on`. `U&'...'`, `B'...'`, `X'...'` and `N'...'` need no
///   special case: the prefix lexes as a word and the quote that follows as a plain string.
/// - `E'...'` strings, where a backslash escapes the next byte. A string continued on the
///   next line (`E'a'` newline `'b'`) stays an E-string, so the continuation is followed too.
/// - `"..."` identifiers with `""` escapes.
/// - `$$...$$` and `$tag$...$tag$`. `$1` is a parameter, and a `$` inside a word (`a$b`) belongs
///   to the word, exactly as in the server's lexer.
/// - `--` comments to the end of the line and `/* ... */` comments, which nest.
/// - Parentheses: like psql, a `;` inside parentheses does not end a statement. Valid SQL does
///   have such semicolons: `CREATE RULE ... DO ALSO (INSERT ...; INSERT ...)`. A stray `)`
///   is ignored rather than driving the depth negative.
/// - SQL-standard routine bodies: in a statement that starts `CREATE [OR REPLACE] FUNCTION` or
///   `CREATE [OR REPLACE] PROCEDURE`, `BEGIN ATOMIC` at parenthesis depth 0 opens a body whose
///   semicolons do not end the statement. Inside it, `CASE` and `END` (whole words, any case)
///   are counted so a `CASE ... END` does not close the body early. Requiring both the routine
///   header and the word `ATOMIC` keeps `BEGIN;`, `BEGIN WORK;` and a column named `begin`
///   from swallowing the rest of the script; psql uses the same header heuristic.
///
/// Malformed input never fails: an unterminated string, identifier, dollar quote or comment
/// simply runs to the end of the script, and that remainder becomes the last statement so the
/// server reports the error against it. The scan is a single forward pass over the UTF-8 bytes,
/// linear in the size of the script.
public enum SQLSplitter {
    /// The statements of `script` in order. Statements made only of whitespace and comments
    /// (a lone directive line, a trailing comment, `;;`) are dropped.
    public static func split(_ script: String) -> [SQLStatement] {
        var script = script
        return script.withUTF8 { bytes in
            var scanner = StatementScanner(bytes: bytes)
            return scanner.run()
        }
    }
}

// MARK: - Scanner

/// The single pass behind ``SQLSplitter/split(_:)``.
///
/// Works on UTF-8 bytes: every character that matters lexically is ASCII, and UTF-8 never
/// uses ASCII byte values inside a multi-byte sequence, so non-ASCII text can be stepped over
/// byte by byte. Bytes of 0x80 and above count as identifier characters, as in PostgreSQL.
private struct StatementScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var statements: [SQLStatement] = []

    /// Line/column bookkeeping, advanced lazily up to each statement start so the hot loop
    /// does not pay for it on every byte.
    var counter = LineCounter()
    var counterOffset = 0

    // Per-statement state, reset after each statement.
    /// Byte offset of the current statement's first token; `nil` while only whitespace and
    /// comments have been seen since the last statement.
    var start: Int?
    var parenDepth = 0
    var header = RoutineHeader.undecided
    /// The previous token was `BEGIN` in a place where `BEGIN ATOMIC` may open a body.
    var afterBegin = false
    /// Nesting of the open `BEGIN ATOMIC` body plus any `CASE` inside it; 0 outside a body.
    var atomicDepth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func run() -> [SQLStatement] {
        let count = bytes.count
        var index = 0
        while index < count {
            let byte = bytes[index]
            if byte.isSQLWhitespace {
                index += 1
            } else if byte == .minus, peek(index + 1) == .minus {
                index = endOfLineComment(from: index + 2)
            } else if byte == .slash, peek(index + 1) == .star {
                index = endOfBlockComment(from: index + 2)
            } else if byte == .semicolon, parenDepth == 0, atomicDepth == 0 {
                finishStatement(end: index)
                index += 1
            } else {
                if start == nil { start = index }
                index = endOfToken(at: index)
            }
        }
        finishStatement(end: count)
        return statements
    }

    private func peek(_ index: Int) -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    /// Records the statement from `start` up to `end` (the `;` or the end of the script),
    /// trimmed of trailing whitespace, and resets the per-statement state.
    private mutating func finishStatement(end: Int) {
        defer {
            start = nil
            parenDepth = 0
            header = .undecided
            afterBegin = false
            atomicDepth = 0
        }
        guard let start else { return }
        var end = end
        // `start` is a non-whitespace byte, so this stops at `start + 1` at the latest.
        while end > start, bytes[end - 1].isSQLWhitespace { end -= 1 }

        while counterOffset < start {
            counter.consume(byte: bytes[counterOffset])
            counterOffset += 1
        }
        let (line, column) = counter.location(beforeScalar: UInt32(bytes[start]))
        // Both ends sit on ASCII bytes or scalar boundaries, so the slice is valid UTF-8.
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        statements.append(SQLStatement(text: text, startLine: line, startColumn: column, startOffset: start))
    }

    // MARK: Tokens

    /// Consumes the token starting at `index` (not whitespace, not a comment, not a
    /// statement-ending `;`) and returns the index just past it.
    private mutating func endOfToken(at index: Int) -> Int {
        let byte = bytes[index]
        if byte.isIdentifierStart {
            let end = endOfWord(from: index + 1)
            if end == index + 1, byte | 0x20 == UInt8(ascii: "e"), peek(end) == .singleQuote {
                noteOtherToken()
                return endOfQuoted(from: end + 1, delimiter: .singleQuote, backslashEscapes: true)
            }
            noteWord(index..<end)
            return end
        }
        noteOtherToken()
        switch byte {
        case .singleQuote:
            return endOfQuoted(from: index + 1, delimiter: .singleQuote, backslashEscapes: false)
        case .doubleQuote:
            return endOfQuoted(from: index + 1, delimiter: .doubleQuote, backslashEscapes: false)
        case .dollar:
            return endOfDollarToken(at: index)
        case .openParen:
            parenDepth += 1
            return index + 1
        case .closeParen:
            parenDepth = max(0, parenDepth - 1)
            return index + 1
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            return endOfNumber(from: index + 1)
        default:
            return index + 1
        }
    }

    /// End of an identifier or keyword: letters, digits, `_`, `$` and non-ASCII bytes.
    private func endOfWord(from index: Int) -> Int {
        var index = index
        while index < bytes.count, bytes[index].isIdentifierContinuation { index += 1 }
        return index
    }

    /// End of a numeric literal. Trailing letters are swallowed (PostgreSQL rejects them as
    /// junk) so that `1end` can never be mistaken for the keyword `END`. `$` is not swallowed:
    /// the server lexes `1$$...$$` as a number followed by a dollar quote.
    private func endOfNumber(from index: Int) -> Int {
        var index = index
        while index < bytes.count {
            let byte = bytes[index]
            guard byte.isDollarTagContinuation || byte == .dot else { break }
            index += 1
        }
        return index
    }

    /// End of a quoted string or identifier whose opening delimiter ends just before `index`.
    /// A doubled delimiter is an escaped one. Unterminated: the end of the script.
    private func endOfQuoted(from index: Int, delimiter: UInt8, backslashEscapes: Bool) -> Int {
        let count = bytes.count
        var index = index
        while index < count {
            let byte = bytes[index]
            if byte == delimiter {
                if index + 1 < count, bytes[index + 1] == delimiter {
                    index += 2
                } else if backslashEscapes, let resumed = endOfContinuationQuote(after: index + 1) {
                    index = resumed
                } else {
                    return index + 1
                }
            } else if backslashEscapes, byte == .backslash {
                index += 2
            } else {
                index += 1
            }
        }
        return count
    }

    /// If a string literal that closed just before `index` continues (whitespace containing a
    /// newline, optionally `--` comments each followed by a newline, then another `'`), returns
    /// the index just past the reopening quote. The server treats the continuation as part of
    /// the same literal, which matters for E-strings: `\'` in the continuation is still escaped.
    private func endOfContinuationQuote(after index: Int) -> Int? {
        let count = bytes.count
        var index = index
        while index < count, bytes[index].isHorizontalWhitespace { index += 1 }
        guard index < count, bytes[index].isNewline else { return nil }
        index += 1
        while index < count {
            if bytes[index].isSQLWhitespace {
                index += 1
            } else if bytes[index] == .minus, peek(index + 1) == .minus {
                // Only a comment that is itself followed by a newline keeps the string open.
                let newline = endOfLineComment(from: index + 2)
                guard newline < count else { return nil }
                index = newline + 1
            } else {
                break
            }
        }
        guard index < count, bytes[index] == .singleQuote else { return nil }
        return index + 1
    }

    /// Handles a `$` that starts a token: a dollar-quoted string, a `$1` parameter, or a lone
    /// `$` (which the server treats as an operator character, then lexes the rest anew).
    private func endOfDollarToken(at index: Int) -> Int {
        let count = bytes.count
        guard let next = peek(index + 1) else { return index + 1 }
        if next.isDigit { return endOfNumber(from: index + 2) }

        var tagEnd = index + 1
        if next.isIdentifierStart {
            tagEnd += 1
            while tagEnd < count, bytes[tagEnd].isDollarTagContinuation { tagEnd += 1 }
        }
        guard tagEnd < count, bytes[tagEnd] == .dollar else { return index + 1 }

        // Look for the closing delimiter, identical to the opening one `bytes[index...tagEnd]`.
        // A failed comparison can skip everything it matched: those bytes are tag characters,
        // and a tag never contains `$`, so no other closing delimiter can start among them.
        // Each byte is thus looked at at most twice and the search stays linear.
        let length = tagEnd - index + 1
        var candidate = tagEnd + 1
        while candidate < count {
            guard bytes[candidate] == .dollar else {
                candidate += 1
                continue
            }
            var matched = 1
            while matched < length, candidate + matched < count, bytes[candidate + matched] == bytes[index + matched] {
                matched += 1
            }
            if matched == length { return candidate + length }
            candidate += matched
        }
        return count
    }

    /// End of a `--` comment whose `--` ends just before `index`: the newline (left for the
    /// caller to consume as whitespace) or the end of the script.
    private func endOfLineComment(from index: Int) -> Int {
        var index = index
        while index < bytes.count, !bytes[index].isNewline { index += 1 }
        return index
    }

    /// End of a block comment whose opening `/*` ends just before `index`. Block comments nest
    /// in PostgreSQL, so `/* a /* b */ c */` is a single comment.
    private func endOfBlockComment(from index: Int) -> Int {
        let count = bytes.count
        var depth = 1
        var index = index
        while index < count {
            let byte = bytes[index]
            if byte == .slash, peek(index + 1) == .star {
                depth += 1
                index += 2
            } else if byte == .star, peek(index + 1) == .slash {
                depth -= 1
                index += 2
                if depth == 0 { return index }
            } else {
                index += 1
            }
        }
        return count
    }

    // MARK: BEGIN ATOMIC tracking

    private mutating func noteOtherToken() {
        afterBegin = false
        if header.isUndecided { header = .other }
    }

    private mutating func noteWord(_ range: Range<Int>) {
        header.advance(with: range, in: bytes)
        guard header == .routine, parenDepth == 0 else {
            afterBegin = false
            return
        }
        if atomicDepth == 0 {
            if afterBegin, bytes.matches(range, keyword: "atomic") {
                atomicDepth = 1
                afterBegin = false
            } else {
                afterBegin = bytes.matches(range, keyword: "begin")
            }
        } else if bytes.matches(range, keyword: "case") {
            atomicDepth += 1
        } else if bytes.matches(range, keyword: "end") {
            atomicDepth -= 1
        }
    }
}

/// Whether a statement begins `CREATE [OR REPLACE] {FUNCTION | PROCEDURE}`, decided from its
/// first few tokens. Only such statements can contain a `BEGIN ATOMIC` body.
private enum RoutineHeader {
    case undecided, afterCreate, afterOr, afterReplace
    case routine, other

    var isUndecided: Bool {
        switch self {
        case .undecided, .afterCreate, .afterOr, .afterReplace: true
        case .routine, .other: false
        }
    }

    mutating func advance(with word: Range<Int>, in bytes: UnsafeBufferPointer<UInt8>) {
        func isRoutine() -> Bool {
            bytes.matches(word, keyword: "function") || bytes.matches(word, keyword: "procedure")
        }
        switch self {
        case .undecided:
            self = bytes.matches(word, keyword: "create") ? .afterCreate : .other
        case .afterCreate:
            self = bytes.matches(word, keyword: "or") ? .afterOr : isRoutine() ? .routine : .other
        case .afterOr:
            self = bytes.matches(word, keyword: "replace") ? .afterReplace : .other
        case .afterReplace:
            self = isRoutine() ? .routine : .other
        case .routine, .other:
            break
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether the word in `range` is `keyword` (given in lowercase ASCII letters), ignoring
    /// ASCII case. Setting bit 0x20 lowercases letters and cannot turn any other identifier
    /// byte (digit, `_`, `$`, non-ASCII) into a letter, so no false matches arise.
    fileprivate func matches(_ range: Range<Int>, keyword: StaticString) -> Bool {
        guard range.count == keyword.utf8CodeUnitCount else { return false }
        return keyword.withUTF8Buffer { keyword in
            var offset = 0
            while offset < keyword.count {
                guard self[range.lowerBound + offset] | 0x20 == keyword[offset] else { return false }
                offset += 1
            }
            return true
        }
    }
}

// MARK: - Lines and columns

/// Tracks the 1-based line and column of a position while scalars are fed to it.
///
/// `\n`, `\r\n` and a lone `\r` each end a line, like most editors; columns count Unicode
/// scalars. A `\r` is held back until the next scalar shows whether it is the first half of
/// `\r\n`, so the `\r` and the `\n` of a CRLF both sit at the end of the line they end.
private struct LineCounter {
    private var line: Int
    private var column: Int
    private var pendingCarriageReturn = false

    init(line: Int = 1, column: Int = 1) {
        self.line = line
        self.column = column
    }

    /// Steps over one scalar.
    mutating func consume(scalar value: UInt32) {
        if pendingCarriageReturn {
            pendingCarriageReturn = false
            if value != UInt32(UInt8.lineFeed) {
                line += 1
                column = 1
            }
        }
        switch value {
        case UInt32(UInt8.lineFeed):
            line += 1
            column = 1
        case UInt32(UInt8.carriageReturn):
            column += 1
            pendingCarriageReturn = true
        default:
            column += 1
        }
    }

    /// Steps over one UTF-8 byte. Continuation bytes are part of the scalar their lead byte
    /// already counted, and ASCII bytes are scalars of the same value.
    mutating func consume(byte: UInt8) {
        guard byte & 0xC0 != 0x80 else { return }
        consume(scalar: UInt32(byte))
    }

    /// Where the scalar `next` (or the end of the text, for `nil`) sits.
    func location(beforeScalar next: UInt32?) -> (line: Int, column: Int) {
        if pendingCarriageReturn, next != UInt32(UInt8.lineFeed) { return (line + 1, 1) }
        return (line, column)
    }

    /// Where the 1-based scalar `position` of `text` sits, with the counter describing the
    /// start of `text`. Clamped to the start and to just past the end.
    func location(ofScalarPosition position: Int, in text: String) -> (line: Int, column: Int) {
        var counter = self
        var remaining = max(position, 1) - 1
        for scalar in text.unicodeScalars {
            if remaining == 0 { return counter.location(beforeScalar: scalar.value) }
            counter.consume(scalar: scalar.value)
            remaining -= 1
        }
        return counter.location(beforeScalar: nil)
    }
}

// MARK: - Byte classes

extension UInt8 {
    fileprivate static let tab = UInt8(ascii: "\t")
    fileprivate static let lineFeed = UInt8(ascii: "\n")
    fileprivate static let verticalTab: UInt8 = 0x0B
    fileprivate static let formFeed: UInt8 = 0x0C
    fileprivate static let carriageReturn = UInt8(ascii: "\r")
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let singleQuote = UInt8(ascii: "'")
    fileprivate static let doubleQuote = UInt8(ascii: "\"")
    fileprivate static let dollar = UInt8(ascii: "$")
    fileprivate static let openParen = UInt8(ascii: "(")
    fileprivate static let closeParen = UInt8(ascii: ")")
    fileprivate static let star = UInt8(ascii: "*")
    fileprivate static let minus = UInt8(ascii: "-")
    fileprivate static let dot = UInt8(ascii: ".")
    fileprivate static let slash = UInt8(ascii: "/")
    fileprivate static let semicolon = UInt8(ascii: ";")
    fileprivate static let backslash = UInt8(ascii: "\\")

    /// Whitespace between tokens: space, tab, newline, carriage return, form feed, vertical tab.
    fileprivate var isSQLWhitespace: Bool {
        switch self {
        case .space, .tab, .lineFeed, .carriageReturn, .formFeed, .verticalTab: true
        default: false
        }
    }

    /// PostgreSQL's `horiz_space`, the whitespace allowed before the newline of a string
    /// continuation.
    fileprivate var isHorizontalWhitespace: Bool {
        switch self {
        case .space, .tab, .formFeed, .verticalTab: true
        default: false
        }
    }

    fileprivate var isNewline: Bool { self == .lineFeed || self == .carriageReturn }

    fileprivate var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }

    /// PostgreSQL's `ident_start`; also the first character of a dollar-quote tag.
    fileprivate var isIdentifierStart: Bool {
        switch self {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), 0x80...:
            true
        default: false
        }
    }

    /// PostgreSQL's `dolq_cont`: identifier characters except `$`.
    fileprivate var isDollarTagContinuation: Bool { isIdentifierStart || isDigit }

    /// PostgreSQL's `ident_cont`.
    fileprivate var isIdentifierContinuation: Bool { isDollarTagContinuation || self == .dollar }
}
