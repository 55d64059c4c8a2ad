/// One lexical token of a statement, as the linter sees it: comments and whitespace are gone,
/// strings and dollar-quoted bodies are single tokens, so that no word inside them is ever
/// taken for a keyword.
public struct SQLToken: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A keyword or unquoted identifier.
        case word
        /// A `"quoted identifier"`; `text` keeps the quotes.
        case quotedIdentifier
        /// A string constant of any kind, or a dollar-quoted body.
        case string
        case number
        /// `$1`.
        case parameter
        /// Any other character: `(`, `)`, `,`, `.`, operators.
        case symbol
    }

    public var kind: Kind
    /// The token exactly as written.
    public var text: String
    /// Parenthesis depth at the token (a `(` has the depth outside it).
    public var depth: Int
    /// Offset in Unicode scalars of the token in the statement (kept for words and for `)`).
    public var start = 0

    /// The word in upper case, or nil for anything that is not an unquoted word.
    public var keyword: String? { kind == .word ? text.uppercased() : nil }

    public func isKeyword(_ word: String) -> Bool { kind == .word && text.uppercased() == word }
    public func isSymbol(_ symbol: String) -> Bool { kind == .symbol && text == symbol }

    /// The name as PostgreSQL folds it: unquoted words in lower case, quoted ones verbatim.
    public var identifier: String? {
        switch kind {
        case .word: text.lowercased()
        case .quotedIdentifier: String(text.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
        default: nil
        }
    }
}

/// A small lexer over one statement's text: just enough of PostgreSQL's rules (the same ones
/// ``SQLSplitter`` follows) to step over comments, strings, quoted identifiers and dollar
/// quotes. It never fails; an unterminated construct runs to the end.
public enum SQLTokenizer {
    public static func tokens(_ text: String) -> [SQLToken] {
        let scalars = Array(text.unicodeScalars)
        var tokens: [SQLToken] = []
        var index = 0
        var depth = 0
        func slice(_ from: Int, _ to: Int) -> String {
            var string = String.UnicodeScalarView()
            string.append(contentsOf: scalars[from..<min(to, scalars.count)])
            return String(string)
        }
        func peek(_ offset: Int) -> Unicode.Scalar? {
            index + offset < scalars.count ? scalars[index + offset] : nil
        }
        while index < scalars.count {
            let scalar = scalars[index]
            let start = index
            if scalar.properties.isWhitespace {
                index += 1
            } else if scalar == "-", peek(1) == "-" {
                while index < scalars.count, scalars[index] != "\n", scalars[index] != "\r" { index += 1 }
            } else if scalar == "/", peek(1) == "*" {
                var nesting = 1
                index += 2
                while index < scalars.count, nesting > 0 {
                    if scalars[index] == "/", peek(1) == "*" {
                        nesting += 1
                        index += 2
                    } else if scalars[index] == "*", peek(1) == "/" {
                        nesting -= 1
                        index += 2
                    } else {
                        index += 1
                    }
                }
            } else if scalar.isWordStart {
                index += 1
                while index < scalars.count, scalars[index].isWordContinuation { index += 1 }
                // E'...' strings: a one-letter word E (or e) right before a quote.
                if index == start + 1, scalar == "e" || scalar == "E", index < scalars.count, scalars[index] == "'" {
                    index = endOfQuoted(scalars, from: index + 1, delimiter: "'", backslashes: true)
                    tokens.append(SQLToken(kind: .string, text: slice(start, index), depth: depth))
                } else {
                    tokens.append(SQLToken(kind: .word, text: slice(start, index), depth: depth, start: start))
                }
            } else if scalar == "'" {
                index = endOfQuoted(scalars, from: index + 1, delimiter: "'", backslashes: false)
                tokens.append(SQLToken(kind: .string, text: slice(start, index), depth: depth))
            } else if scalar == "\"" {
                index = endOfQuoted(scalars, from: index + 1, delimiter: "\"", backslashes: false)
                tokens.append(SQLToken(kind: .quotedIdentifier, text: slice(start, index), depth: depth))
            } else if scalar == "$" {
                if let next = peek(1), ("0"..."9").contains(next) {
                    index += 1
                    while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
                    tokens.append(SQLToken(kind: .parameter, text: slice(start, index), depth: depth))
                } else if let end = endOfDollarQuote(scalars, at: index) {
                    index = end
                    tokens.append(SQLToken(kind: .string, text: slice(start, index), depth: depth))
                } else {
                    index += 1
                    tokens.append(SQLToken(kind: .symbol, text: "$", depth: depth))
                }
            } else if ("0"..."9").contains(scalar) {
                while index < scalars.count, scalars[index].isWordContinuation || scalars[index] == "." { index += 1 }
                tokens.append(SQLToken(kind: .number, text: slice(start, index), depth: depth))
            } else if scalar == "(" {
                tokens.append(SQLToken(kind: .symbol, text: "(", depth: depth))
                depth += 1
                index += 1
            } else if scalar == ")" {
                depth = max(0, depth - 1)
                tokens.append(SQLToken(kind: .symbol, text: ")", depth: depth, start: start))
                index += 1
            } else if scalar == ":", peek(1) == ":" {
                index += 2
                tokens.append(SQLToken(kind: .symbol, text: "::", depth: depth))
            } else {
                index += 1
                tokens.append(SQLToken(kind: .symbol, text: String(scalar), depth: depth))
            }
        }
        return tokens
    }

    private static func endOfQuoted(
        _ scalars: [Unicode.Scalar], from start: Int, delimiter: Unicode.Scalar, backslashes: Bool
    ) -> Int {
        var index = start
        while index < scalars.count {
            let scalar = scalars[index]
            if backslashes, scalar == "\\" {
                index += 2
            } else if scalar == delimiter {
                if index + 1 < scalars.count, scalars[index + 1] == delimiter {
                    index += 2
                } else {
                    return index + 1
                }
            } else {
                index += 1
            }
        }
        return scalars.count
    }

    /// The end of a `$tag$ ... $tag$` starting at `start`, or nil when the `$` opens none.
    private static func endOfDollarQuote(_ scalars: [Unicode.Scalar], at start: Int) -> Int? {
        var tagEnd = start + 1
        if tagEnd < scalars.count, scalars[tagEnd].isWordStart {
            tagEnd += 1
            while tagEnd < scalars.count, scalars[tagEnd].isWordContinuation, scalars[tagEnd] != "$" { tagEnd += 1 }
        }
        guard tagEnd < scalars.count, scalars[tagEnd] == "$" else { return nil }
        let tag = Array(scalars[start...tagEnd])
        var index = tagEnd + 1
        while index + tag.count <= scalars.count {
            if scalars[index] == "$", Array(scalars[index..<(index + tag.count)]) == tag { return index + tag.count }
            index += 1
        }
        return scalars.count
    }
}

extension Unicode.Scalar {
    fileprivate var isWordStart: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || self == "_" || value >= 0x80
    }

    fileprivate var isWordContinuation: Bool {
        isWordStart || ("0"..."9").contains(self) || self == "$"
    }
}
