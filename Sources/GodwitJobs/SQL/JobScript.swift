/// What the worker reads in a job's SQL text before running it: which statements must run at
/// the top level, which would end the job's transaction, and how to quote a body as a literal.
public enum JobScript {
    /// Statements that must run at the top level, outside any function or transaction block.
    public static let topLevelOnly: [[String]] = [
        ["VACUUM"], ["ANALYZE"], ["ANALYSE"], ["CLUSTER"], ["REINDEX"],
        ["CREATE", "INDEX", "CONCURRENTLY"], ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"],
        ["DROP", "INDEX", "CONCURRENTLY"], ["REFRESH", "MATERIALIZED", "VIEW"],
    ]

    /// Statements that end or start a transaction: an sql job's script runs in the transaction
    /// that records its success, so it may not end it.
    static let transactionControl: [[String]] = [
        ["BEGIN"], ["START"], ["COMMIT"], ["END"], ["ABORT"], ["ROLLBACK"], ["PREPARE", "TRANSACTION"],
    ]

    /// Whether `statement` (one statement) starts with the words of a top-level-only command.
    public static func mustRunAtTopLevel(_ statement: String) -> Bool {
        startsWithAny(statement, topLevelOnly)
    }

    /// Whether `statement` would end the transaction it runs in (`ROLLBACK TO SAVEPOINT` does
    /// not, and is allowed).
    public static func endsTransaction(_ statement: String) -> Bool {
        let words = leadingWords(statement, count: 2)
        if words.first == "ROLLBACK", words.count > 1, words[1] == "TO" { return false }
        if words.first == "COMMIT", words.count > 1, words[1] == "PREPARED" { return true }
        return startsWithAny(statement, transactionControl)
    }

    private static func startsWithAny(_ statement: String, _ prefixes: [[String]]) -> Bool {
        let words = leadingWords(statement, count: 4)
        return prefixes.contains { prefix in words.count >= prefix.count && Array(words.prefix(prefix.count)) == prefix
        }
    }

    /// The first `count` words of a statement, upper-cased, after comments and whitespace.
    public static func leadingWords(_ statement: String, count: Int) -> [String] {
        var text = Substring(statement)
        var words: [String] = []
        while words.count < count {
            text = text.drop { $0.isWhitespace }
            if text.hasPrefix("--") {
                text = text.drop { $0 != "\n" }
                continue
            }
            if text.hasPrefix("/*") {
                guard let end = text.range(of: "*/") else { break }
                text = text[end.upperBound...]
                continue
            }
            let word = text.prefix { $0.isLetter || $0 == "_" }
            guard !word.isEmpty else { break }
            words.append(word.uppercased())
            text = text.dropFirst(word.count)
        }
        return words
    }
}
