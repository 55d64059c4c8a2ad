import GodwitPostgres

/// The `COLLATE` clauses of a statement and what each applies to, read lexically (comments and
/// strings never count).
///
/// A batched job's bounds are found in the order of its key's own collation; a statement that
/// compares the key (or `$1`, `$2`) under another collation sees other rows between the same
/// bounds, so that batches overlap and rows are skipped. `KeyCollation` refuses those.
public struct CollateClause: Sendable, Equatable {
    /// What the clause applies to: a column name as PostgreSQL folds it (the last part of a
    /// qualified name), `$1`, `$2`, or nil for anything else (a function call, a literal).
    public var operand: String?
    /// The collation named, folded, without its schema.
    public var collation: String
    /// The 1-based line of the `COLLATE`.
    public var line: Int

    public static func all(in text: String) -> [CollateClause] {
        let tokens = SQLTokenizer.tokens(text)
        let scalars = Array(text.unicodeScalars)
        var clauses: [CollateClause] = []
        for (index, token) in tokens.enumerated() where token.isKeyword("COLLATE") {
            // The collation: a possibly qualified name; its last part names it.
            var next = index + 1
            var collation: String?
            while next < tokens.count, let part = tokens[next].identifier {
                collation = part
                guard next + 2 < tokens.count, tokens[next + 1].isSymbol(".") else { break }
                next += 2
            }
            guard let collation else { continue }
            let line = 1 + scalars.prefix(token.start).filter { $0 == "\n" }.count
            clauses.append(CollateClause(operand: operand(before: index, in: tokens), collation: collation, line: line))
        }
        return clauses
    }

    /// The column or parameter that the expression ending just before `index` is, through
    /// casts (`k::text`) and parentheses around it alone (`(k)`).
    private static func operand(before index: Int, in tokens: [SQLToken]) -> String? {
        var end = index - 1
        // Step back over `::type` casts, a type being words and a parenthesised modifier.
        while end >= 0 {
            var j = end
            if tokens[j].isSymbol(")"), let open = opening(of: j, in: tokens), open > 0, tokens[open - 1].kind == .word
            {
                j = open - 1
            }
            // A type of several words: `character varying`, `timestamp with time zone`.
            while j > 0, tokens[j].kind == .word, tokens[j - 1].kind == .word,
                typeContinuations.contains(tokens[j].keyword ?? "")
            {
                j -= 1
            }
            guard j > 0, tokens[j].kind == .word, tokens[j - 1].isSymbol("::") else { break }
            end = j - 2
        }
        guard end >= 0 else { return nil }
        let last = tokens[end]
        if last.isSymbol(")"), let open = opening(of: end, in: tokens) {
            // `(k)` alone, not a function call's arguments.
            guard
                open == 0 || tokens[open - 1].kind != .word || tokens[open - 1].isKeyword("AND")
                    || tokens[open - 1].isKeyword("OR") || tokens[open - 1].isKeyword("NOT")
                    || tokens[open - 1].isKeyword("WHERE")
            else { return nil }
            guard end - open == 2 else { return nil }
            return name(of: tokens[open + 1])
        }
        return name(of: last)
    }

    private static let typeContinuations: Set<String> = ["VARYING", "PRECISION", "WITH", "WITHOUT", "TIME", "ZONE"]

    private static func name(of token: SQLToken) -> String? {
        if token.kind == .parameter { return token.text }
        return token.identifier
    }

    private static func opening(of close: Int, in tokens: [SQLToken]) -> Int? {
        let depth = tokens[close].depth
        var i = close - 1
        while i >= 0 {
            if tokens[i].isSymbol("("), tokens[i].depth == depth { return i }
            i -= 1
        }
        return nil
    }
}
