import GodwitPostgres

/// A table (or index) name as a statement writes it.
struct RelationName: Sendable, Equatable, Hashable {
    /// Exactly as written (`public."Media"`), for `to_regclass`.
    var written: String
    /// Folded the way PostgreSQL folds it, without a leading `public.`, for comparing names
    /// when no catalog is at hand.
    var key: String
}

/// What a statement is, read from its tokens: the command, the table it names, and for
/// `ALTER TABLE` each action. Lexical only, so it is a description of the text, not of what
/// the server will do; the trace supplies that.
struct StatementShape: Sendable {
    enum ConstraintKind: Sendable, Equatable { case check, foreignKey, unique, primaryKey, exclude }

    enum Action: Sendable, Equatable {
        /// `notNull`: declared NOT NULL or PRIMARY KEY.
        case addColumn(name: String, defaultTokens: [SQLToken]?, serialOrIdentity: Bool, notNull: Bool)
        /// `name`: as written after CONSTRAINT, nil when PostgreSQL picks it.
        case addConstraint(
            kind: ConstraintKind, notValid: Bool, usingIndex: Bool, notNullCheckColumn: String?, name: String?)
        /// `using`: the change's USING expression (`StatementShape.text`), which may change
        /// every value; nil without one.
        case alterType(column: String, type: String, using: String?)
        case setNotNull(column: String)
        case dropColumn(String)
        /// The column renamed, and its new name (nil when the statement does not say it plainly).
        case renameColumn(String, to: String?)
        case renameTable
        case validateConstraint(name: String?)
        case other
    }

    enum Command: Sendable, Equatable {
        case createTable
        case createIndex(concurrently: Bool)
        case dropIndex(concurrently: Bool)
        case reindex(concurrently: Bool)
        case alterTable([Action])
        case update(hasWhere: Bool)
        case delete(hasWhere: Bool)
        /// INSERT, SELECT, MERGE, COPY and WITH: statements that read or write rows.
        case otherDML
        case vacuum(full: Bool)
        case cluster
        case dropTable([RelationName])
        case lockTable
        case truncate
        case other
    }

    var command: Command
    /// The table the statement works on, when it names one.
    var table: RelationName?
    var tokens: [SQLToken]
    /// For an UPDATE: where, in Unicode scalars of the text, a `WHERE` restricting it to a
    /// batch goes (before its `RETURNING`, or before the `)` closing its `WITH` query); nil
    /// for the end of the text.
    var batchWhereOffset: Int?
    /// What the statement does outside the database, which no rollback undoes.
    var outsideEffects: [OutsideEffect]
    /// For `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints and the like: which it is.
    var transactionControl: TransactionControl?

    init(_ text: String) {
        let tokens = SQLTokenizer.tokens(text)
        self.tokens = tokens
        (command, table) = Self.classify(tokens)
        transactionControl = TransactionControl(tokens)
        outsideEffects = OutsideEffect.find(in: tokens)
        if case .update = command {
            let withPart = tokens.first?.isKeyword("WITH") == true ? Self.modifyingPart(ofWith: tokens) : nil
            let (body, end) = withPart ?? (tokens, nil)
            batchWhereOffset = body.first { $0.depth == 0 && $0.isKeyword("RETURNING") }?.start ?? end
        }
    }

    /// Whether the statement cannot run inside a transaction block.
    var needsNoTransaction: Bool {
        switch command {
        case .createIndex(concurrently: true), .dropIndex(concurrently: true), .reindex(concurrently: true), .vacuum:
            true
        case .reindex:
            tokens.count > 1
                && ["SCHEMA", "DATABASE", "SYSTEM"].contains { word in tokens.contains { $0.isKeyword(word) } }
        default:
            tokens.count > 1 && tokens[0].isKeyword("ALTER") && tokens[1].isKeyword("SYSTEM")
        }
    }

    /// The statement without its `CONCURRENTLY` (outside parentheses), for the trace: it has
    /// the same effect on the schema and, unlike the original, runs inside a transaction.
    /// Nil when there is no such word to take out.
    func withoutConcurrently(_ text: String) -> String? {
        guard let word = tokens.first(where: { $0.depth == 0 && $0.isKeyword("CONCURRENTLY") }) else { return nil }
        var scalars = Array(text.unicodeScalars)
        guard word.start + word.text.unicodeScalars.count <= scalars.count else { return nil }
        scalars.removeSubrange(word.start..<(word.start + word.text.unicodeScalars.count))
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Whether the statement reads or writes rows.
    var isDML: Bool {
        switch command {
        case .update, .delete, .otherDML: true
        default: false
        }
    }

    var alterActions: [Action] {
        if case .alterTable(let actions) = command { return actions }
        return []
    }

    /// A `CHECK (col IS NOT NULL)` this statement adds validated (without NOT VALID), by column.
    var notNullCheckColumns: [String] {
        alterActions.compactMap {
            if case .addConstraint(.check, false, _, let column?, _) = $0 { return column }
            return nil
        }
    }

    /// A `CHECK (col IS NOT NULL) NOT VALID` this statement adds, with its name (PostgreSQL's
    /// `<table>_<column>_check` when none is written), for a later VALIDATE CONSTRAINT.
    var notValidNotNullChecks: [(name: String, column: String)] {
        alterActions.compactMap {
            guard case .addConstraint(.check, true, _, let column?, let name) = $0 else { return nil }
            let tableName = table.map { String($0.key.split(separator: ".").last ?? "") } ?? ""
            return (name ?? "\(tableName)_\(column)_check", column)
        }
    }

    /// The constraints this statement validates (`VALIDATE CONSTRAINT name`).
    var validatedConstraints: [String] {
        alterActions.compactMap {
            if case .validateConstraint(let name?) = $0 { return name }
            return nil
        }
    }

    // MARK: - Classification

    private static func classify(_ t: [SQLToken]) -> (Command, RelationName?) {
        let words = t.prefix(8).map { $0.keyword ?? "" }
        func has(_ word: String, from: Int = 0) -> Bool {
            t.dropFirst(from).contains { $0.depth == 0 && $0.isKeyword(word) }
        }
        func index(of word: String, from: Int = 0) -> Int? {
            t.indices.dropFirst(from).first { t[$0].depth == 0 && t[$0].isKeyword(word) }
        }
        guard let first = words.first else { return (.other, nil) }
        switch first {
        case "CREATE":
            var i = 1
            if words.count > 2, words[1] == "OR", words[2] == "REPLACE" { i = 3 }
            while i < words.count, ["TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE"].contains(words[i]) {
                i += 1
            }
            guard i < words.count else { return (.other, nil) }
            if words[i] == "TABLE" {
                var j = i + 1
                if t.count > j + 2, t[j].isKeyword("IF"), t[j + 1].isKeyword("NOT"), t[j + 2].isKeyword("EXISTS") {
                    j += 3
                }
                return (.createTable, name(t, at: j)?.name)
            }
            if words[i] == "INDEX" {
                let concurrently = t.count > i + 1 && t[i + 1].isKeyword("CONCURRENTLY")
                guard var on = index(of: "ON", from: i) else { return (.createIndex(concurrently: concurrently), nil) }
                on += 1
                if on < t.count, t[on].isKeyword("ONLY") { on += 1 }
                return (.createIndex(concurrently: concurrently), name(t, at: on)?.name)
            }
            return (.other, nil)
        case "DROP":
            if words.count > 1, words[1] == "INDEX" {
                return (.dropIndex(concurrently: words.count > 2 && words[2] == "CONCURRENTLY"), nil)
            }
            if words.count > 1, words[1] == "TABLE" {
                var j = 2
                if t.count > j + 1, t[j].isKeyword("IF"), t[j + 1].isKeyword("EXISTS") { j += 2 }
                var names: [RelationName] = []
                while let (relation, next) = name(t, at: j) {
                    names.append(relation)
                    guard next < t.count, t[next].isSymbol(",") else { break }
                    j = next + 1
                }
                return (.dropTable(names), names.first)
            }
            return (.other, nil)
        case "REINDEX":
            let concurrently = t.contains { $0.isKeyword("CONCURRENTLY") }
            var j = 1
            if j < t.count, t[j].isSymbol("(") {
                while j < t.count, !(t[j].isSymbol(")") && t[j].depth == 0) { j += 1 }
                j += 1
            }
            j += 1  // INDEX, TABLE, SCHEMA, ...
            if j < t.count, t[j].isKeyword("CONCURRENTLY") { j += 1 }
            return (.reindex(concurrently: concurrently), name(t, at: j)?.name)
        case "ALTER":
            guard words.count > 1, words[1] == "TABLE" else { return (.other, nil) }
            var j = 2
            if t.count > j + 1, t[j].isKeyword("IF"), t[j + 1].isKeyword("EXISTS") { j += 2 }
            if j < t.count, t[j].isKeyword("ONLY") { j += 1 }
            guard let (table, next) = name(t, at: j) else { return (.other, nil) }
            var k = next
            if k < t.count, t[k].isSymbol("*") { k += 1 }
            return (.alterTable(actions(Array(t[min(k, t.count)...]))), table)
        case "UPDATE":
            var j = 1
            if j < t.count, t[j].isKeyword("ONLY") { j += 1 }
            return (.update(hasWhere: has("WHERE")), name(t, at: j)?.name)
        case "DELETE":
            var j = 2
            if j < t.count, t[j].isKeyword("ONLY") { j += 1 }
            return (.delete(hasWhere: has("WHERE")), name(t, at: j)?.name)
        case "INSERT", "MERGE":
            var j = 2
            if j < t.count, t[j].isKeyword("ONLY") { j += 1 }
            return (.otherDML, name(t, at: j)?.name)
        case "WITH":
            guard let part = modifyingPart(ofWith: t) else { return (.otherDML, nil) }
            return classify(part.tokens)
        case "SELECT", "COPY", "VALUES":
            return (.otherDML, nil)
        case "VACUUM":
            let full = t.contains { $0.isKeyword("FULL") }
            var j = 1
            if j < t.count, t[j].isSymbol("(") {
                while j < t.count, !(t[j].isSymbol(")") && t[j].depth == 0) { j += 1 }
                j += 1
            }
            while j < t.count, ["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"].contains(t[j].keyword ?? "") {
                j += 1
            }
            return (.vacuum(full: full), name(t, at: j)?.name)
        case "CLUSTER":
            var j = 1
            if j < t.count, t[j].isKeyword("VERBOSE") { j += 1 }
            return (.cluster, name(t, at: j)?.name)
        case "LOCK":
            var j = 1
            if j < t.count, t[j].isKeyword("TABLE") { j += 1 }
            if j < t.count, t[j].isKeyword("ONLY") { j += 1 }
            return (.lockTable, name(t, at: j)?.name)
        case "TRUNCATE":
            return (.truncate, nil)
        default:
            return (.other, nil)
        }
    }

    /// The UPDATE or DELETE a `WITH` statement runs, in a query of the WITH list or as its main
    /// statement, as tokens of its own (depths counted from it), and the offset of the `)` that
    /// closes its query (nil for the main statement). One without WHERE comes first.
    static func modifyingPart(ofWith t: [SQLToken]) -> (tokens: [SQLToken], end: Int?)? {
        var parts: [(tokens: [SQLToken], end: Int?)] = []
        var i = 1
        while i < t.count {
            let token = t[i]
            if token.depth == 0, token.isSymbol("("), t[i - 1].isKeyword("AS") || t[i - 1].isKeyword("MATERIALIZED") {
                // A query of the WITH list: everything to the `)` back at depth 0.
                var j = i + 1
                var body: [SQLToken] = []
                while j < t.count, !(t[j].depth == 0 && t[j].isSymbol(")")) {
                    var inner = t[j]
                    inner.depth -= 1
                    body.append(inner)
                    j += 1
                }
                parts.append((body, j < t.count ? t[j].start : nil))
                i = j + 1
            } else if token.depth == 0, token.kind == .word, !token.isKeyword("AS"), t[i - 1].isSymbol(")"),
                t[i - 1].depth == 0
            {
                parts.append((Array(t[i...]), nil))  // the main statement
                break
            } else {
                i += 1
            }
        }
        let modifying = parts.filter {
            $0.tokens.first?.isKeyword("UPDATE") == true || $0.tokens.first?.isKeyword("DELETE") == true
        }
        return modifying.first { part in !part.tokens.contains { $0.depth == 0 && $0.isKeyword("WHERE") } }
            ?? modifying.first
    }

    /// A possibly schema-qualified name starting at `index`, and the index after it.
    static func name(_ t: [SQLToken], at index: Int) -> (name: RelationName, next: Int)? {
        var parts: [(written: String, folded: String)] = []
        var i = index
        while i < t.count, let folded = t[i].identifier {
            parts.append((t[i].text, folded))
            i += 1
            guard i + 1 < t.count, t[i].isSymbol("."), t[i + 1].identifier != nil else { break }
            i += 1
        }
        guard !parts.isEmpty else { return nil }
        var key = parts.map(\.folded).joined(separator: ".")
        if key.hasPrefix("public.") { key.removeFirst("public.".count) }
        return (RelationName(written: parts.map(\.written).joined(separator: "."), key: key), i)
    }

    // MARK: - ALTER TABLE actions

    private static func actions(_ t: [SQLToken]) -> [Action] {
        var pieces: [[SQLToken]] = [[]]
        for token in t {
            if token.depth == 0, token.isSymbol(",") {
                pieces.append([])
            } else {
                pieces[pieces.count - 1].append(token)
            }
        }
        return pieces.filter { !$0.isEmpty }.map(action)
    }

    private static let constraintStarts: Set<String> = [
        "CONSTRAINT", "CHECK", "FOREIGN", "UNIQUE", "PRIMARY", "EXCLUDE",
    ]
    private static let columnConstraintWords: Set<String> = [
        "NOT", "NULL", "CONSTRAINT", "CHECK", "REFERENCES", "PRIMARY", "UNIQUE", "GENERATED", "COLLATE", "DEFAULT",
    ]
    static let serialTypes: Set<String> = ["SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"]

    private static func action(_ a: [SQLToken]) -> Action {
        func word(_ i: Int) -> String { i < a.count ? a[i].keyword ?? "" : "" }
        switch word(0) {
        case "ADD":
            if constraintStarts.contains(word(1)) { return addConstraint(Array(a.dropFirst())) }
            var i = 1
            if word(i) == "COLUMN" { i += 1 }
            if word(i) == "IF", word(i + 1) == "NOT", word(i + 2) == "EXISTS" { i += 3 }
            guard i < a.count, let column = a[i].identifier else { return .other }
            let rest = Array(a[(i + 1)...])
            let typeWord = rest.first?.keyword ?? ""
            let generated = rest.contains { $0.depth == 0 && $0.isKeyword("GENERATED") }
            let identity = generated && rest.contains { $0.isKeyword("IDENTITY") }
            let notNull = rest.indices.contains { i in
                rest[i].depth == 0 && i + 1 < rest.count
                    && (rest[i].isKeyword("NOT") && rest[i + 1].isKeyword("NULL")
                        || rest[i].isKeyword("PRIMARY") && rest[i + 1].isKeyword("KEY"))
            }
            var defaultTokens: [SQLToken]?
            if let d = rest.firstIndex(where: { $0.depth == 0 && $0.isKeyword("DEFAULT") }) {
                let after = rest[(d + 1)...]
                let end =
                    after.firstIndex { $0.depth == 0 && columnConstraintWords.contains($0.keyword ?? "") }
                    ?? rest.endIndex
                defaultTokens = Array(rest[(d + 1)..<end])
            }
            return .addColumn(
                name: column, defaultTokens: defaultTokens,
                serialOrIdentity: serialTypes.contains(typeWord) || identity,
                // A generated column computes its value, so it needs no default.
                notNull: notNull && !(generated && !identity))
        case "ALTER":
            var i = 1
            if word(i) == "COLUMN" { i += 1 }
            guard i < a.count, let column = a[i].identifier else { return .other }
            i += 1
            if word(i) == "SET", word(i + 1) == "NOT", word(i + 2) == "NULL" { return .setNotNull(column: column) }
            if word(i) == "SET", word(i + 1) == "DATA" { i += 2 }
            if word(i) == "TYPE" {
                let typeTokens = a[(i + 1)...].prefix {
                    !($0.depth == 0 && ($0.isKeyword("USING") || $0.isKeyword("COLLATE")))
                }
                let using = a[(i + 1)...].firstIndex { $0.depth == 0 && $0.isKeyword("USING") }.map {
                    text(of: a[($0 + 1)...])
                }
                return .alterType(column: column, type: typeTokens.map(\.text).joined(separator: " "), using: using)
            }
            return .other
        case "DROP":
            if word(1) == "CONSTRAINT" { return .other }
            var i = 1
            if word(i) == "COLUMN" { i += 1 }
            if word(i) == "IF", word(i + 1) == "EXISTS" { i += 2 }
            guard i < a.count, let column = a[i].identifier else { return .other }
            return .dropColumn(column)
        case "VALIDATE":
            return .validateConstraint(name: word(1) == "CONSTRAINT" && a.count > 2 ? a[2].identifier : nil)
        case "RENAME":
            if word(1) == "TO" { return .renameTable }
            if word(1) == "CONSTRAINT" { return .other }
            let i = word(1) == "COLUMN" ? 2 : 1
            guard i < a.count, let column = a[i].identifier else { return .other }
            let target = i + 2 < a.count && a[i + 1].isKeyword("TO") ? a[i + 2].identifier : nil
            return .renameColumn(column, to: target)
        default:
            return .other
        }
    }

    /// Tokens as SQL text, one space between them but none inside `f(x)`, `a.b`, `x::t`, an
    /// operator, or before a comma: how an expression or a type from a statement is written into
    /// a change file (comments and line breaks gone).
    static func text(of tokens: some Collection<SQLToken>) -> String {
        var result = ""
        var previous: SQLToken?
        for token in tokens {
            if let previous {
                let tight =
                    token.isSymbol(")") || token.isSymbol(",") || token.isSymbol(".") || token.isSymbol("::")
                    || token.isSymbol(":") || previous.isSymbol("(") || previous.isSymbol(".")
                    || previous.isSymbol("::") || previous.isSymbol(":")
                    || (token.isSymbol("(") && (previous.kind == .word || previous.kind == .quotedIdentifier))
                    // The lexer splits an operator into its characters (`>=` is `>` and `=`).
                    || (isOperator(previous) && isOperator(token))
                if !tight { result += " " }
            }
            result += token.text
            previous = token
        }
        return result
    }

    /// A one-character piece of an operator: a symbol other than brackets, commas and dots.
    private static func isOperator(_ token: SQLToken) -> Bool {
        token.kind == .symbol && !["(", ")", ",", ".", "::", "[", "]", ";"].contains(token.text)
    }

    private static func addConstraint(_ c: [SQLToken]) -> Action {
        var i = 0
        if c.first?.isKeyword("CONSTRAINT") == true { i = 2 }
        let kind: ConstraintKind
        switch i < c.count ? c[i].keyword ?? "" : "" {
        case "CHECK": kind = .check
        case "FOREIGN": kind = .foreignKey
        case "UNIQUE": kind = .unique
        case "PRIMARY": kind = .primaryKey
        case "EXCLUDE": kind = .exclude
        default: return .other
        }
        var notValid = false
        var usingIndex = false
        for j in c.indices where c[j].depth == 0 {
            if c[j].isKeyword("NOT"), j + 1 < c.count, c[j + 1].isKeyword("VALID") { notValid = true }
            if c[j].isKeyword("USING"), j + 1 < c.count, c[j + 1].isKeyword("INDEX"),
                !(j + 2 < c.count && c[j + 2].isKeyword("TABLESPACE"))
            {
                usingIndex = true
            }
        }
        var notNullColumn: String?
        if kind == .check, i + 1 < c.count, c[i + 1].isSymbol("(") {
            // CHECK (col IS NOT NULL), with or without extra parentheses inside.
            let closing = c[(i + 2)...].firstIndex { $0.depth == 0 && $0.isSymbol(")") } ?? c.endIndex
            let body = c[(i + 2)..<closing].filter { !$0.isSymbol("(") && !$0.isSymbol(")") }
            if body.count == 4, let column = body[0].identifier, body[1].isKeyword("IS"), body[2].isKeyword("NOT"),
                body[3].isKeyword("NULL")
            {
                notNullColumn = column
            }
        }
        let name = i == 2 && c.count > 1 ? c[1].identifier : nil
        return .addConstraint(
            kind: kind, notValid: notValid, usingIndex: usingIndex, notNullCheckColumn: notNullColumn, name: name)
    }
}
