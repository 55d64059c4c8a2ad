import GodwitPostgres

/// Tells, from a statement's text as `pg_stat_statements` or `pg_stat_activity` shows it, which
/// of the columns a change drops it reads: the evidence `godwit change complete` is gated on.
///
/// A statement reads a column when its tokens (GodwitPostgres's lexer: never a word inside a
/// string, a comment or a dollar-quoted body) name the change's table and the column as
/// identifiers, quoted or not, folded as PostgreSQL folds them. A same-named column of another
/// table does not count unless the statement names the change's table too; then it counts (an
/// alias cannot be resolved from text), which errs on the side of waiting.
///
/// Godwit's own statements never count, told by their shape rather than by who ran them,
/// because the backfill and the verification run in the enqueuer's sessions, often logged in
/// as the application's own role:
/// - DDL (`ALTER`, `DROP`, `CREATE INDEX`, `VALIDATE`, ...), which reads no row, save a
///   `CREATE ... AS SELECT`, which does;
/// - the backfill's statement, as start stored it (compared whole, its constants as
///   `pg_stat_statements` normalises them), and the no-op write of a backfill the trigger
///   completes, an `UPDATE` whose every assignment is `column = column`;
/// - the verification, which embeds the change's `disagrees` expression (compared with its
///   constants as `pg_stat_statements` normalises them, `$n`);
/// - the sync trigger's row evaluation, `... FROM (SELECT NEW.*)`.
public struct ColumnReadMatcher: Sendable {
    /// The table's schema and name, as stored (unquoted).
    public var schema: String
    public var table: String
    /// The columns the change drops, as stored.
    public var columns: [String]
    /// The verification's condition, normalised; empty when it is too plain to tell apart.
    let verification: [Shape]
    /// The backfill's statement, normalised; empty when the change stored none.
    let backfill: [Shape]

    /// `qualifiedTable` is `change_records.table_name` (`"public"."media"`); `disagrees` is the
    /// change's `statements.disagrees`, `backfill` its `statements.backfill`.
    public init(qualifiedTable: String, columns: [String], disagrees: String?, backfill: String? = nil) {
        let names = SQLTokenizer.tokens(qualifiedTable).compactMap(\.identifier)
        self.schema = names.count > 1 ? names[names.count - 2] : ""
        self.table = names.last ?? ""
        self.columns = columns
        let pattern = disagrees.map { Self.shapes(SQLTokenizer.tokens($0)) } ?? []
        // "false" (nothing syncs) or a bare constant would match any statement's constant.
        let named = pattern.contains { if case .name = $0 { true } else { false } }
        self.verification = named && pattern.count >= 3 ? pattern : []
        self.backfill = backfill.map { Self.shapes(SQLTokenizer.tokens($0)) } ?? []
    }

    /// The dropped columns that `text` reads, in `columns`' order; empty when it reads none or
    /// is one of Godwit's own statements.
    public func columnsRead(by text: String) -> [String] {
        let tokens = SQLTokenizer.tokens(text)
        guard touchesTable(tokens), !isGodwits(tokens) else { return [] }
        let named = namedColumns(tokens)
        return columns.filter { named.contains($0) }
    }

    // MARK: Naming

    /// Whether the table is named: its name as an identifier, qualified by nothing or by its
    /// own schema.
    func touchesTable(_ tokens: [SQLToken]) -> Bool {
        for (index, token) in tokens.enumerated() where token.identifier == table {
            guard index >= 2, tokens[index - 1].isSymbol(".") else { return true }
            if schema.isEmpty || tokens[index - 2].identifier == schema { return true }
        }
        return false
    }

    /// The identifiers named as columns could be: not a function's name (followed by `(`).
    private func namedColumns(_ tokens: [SQLToken]) -> Set<String> {
        var names: Set<String> = []
        for (index, token) in tokens.enumerated() {
            guard let name = token.identifier else { continue }
            if index + 1 < tokens.count, tokens[index + 1].isSymbol("("), token.kind == .word { continue }
            names.insert(name)
        }
        return names
    }

    // MARK: Godwit's own statements

    /// Whether the statement is Godwit's own (DDL, the backfill, the verification, the trigger).
    func isGodwits(_ tokens: [SQLToken]) -> Bool {
        isDDL(tokens) || isNoOpUpdate(tokens) || isBackfill(tokens) || isTriggerEvaluation(tokens)
            || containsVerification(tokens)
    }

    /// The change's own backfill statement, whole (a trailing `;` aside).
    private func isBackfill(_ tokens: [SQLToken]) -> Bool {
        guard !backfill.isEmpty else { return false }
        var shapes = Self.shapes(tokens)
        if shapes.last == .symbol(";") { shapes.removeLast() }
        return shapes == backfill
    }

    /// The utility statements that read no row; `CREATE ... AS SELECT` (a table, a
    /// materialized view) reads, and counts.
    static let ddlKeywords: Set<String> = [
        "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "VACUUM", "ANALYZE", "ANALYSE", "REINDEX", "CLUSTER",
        "SECURITY", "LOCK", "TRUNCATE", "CREATE",
    ]

    private func isDDL(_ tokens: [SQLToken]) -> Bool {
        guard let first = tokens.first?.keyword, Self.ddlKeywords.contains(first) else { return false }
        guard first == "CREATE" else { return true }
        for (index, token) in tokens.enumerated() where token.depth == 0 && token.isKeyword("AS") {
            guard index + 1 < tokens.count else { continue }
            let next = tokens[index + 1]
            if next.isSymbol("(") || ["SELECT", "WITH", "TABLE", "VALUES"].contains(next.keyword ?? "") {
                return false
            }
        }
        return true
    }

    /// `UPDATE t SET a = a, b = b WHERE ...`: the backfill's write, which changes nothing and
    /// lets the sync trigger complete the row. An application's save assigns values (`$1`).
    private func isNoOpUpdate(_ tokens: [SQLToken]) -> Bool {
        guard tokens.first?.isKeyword("UPDATE") == true,
            let set = tokens.firstIndex(where: { $0.depth == 0 && $0.isKeyword("SET") })
        else { return false }
        var index = set + 1
        var assignments = 0
        while index + 2 < tokens.count {
            let target = tokens[index]
            let source = tokens[index + 2]
            guard let name = target.identifier, tokens[index + 1].isSymbol("="), source.identifier == name else {
                return false
            }
            assignments += 1
            index += 3
            guard index < tokens.count, tokens[index].isSymbol(",") else { break }
            index += 1
        }
        guard assignments > 0 else { return false }
        return index == tokens.count || ["WHERE", "FROM", "RETURNING"].contains(tokens[index].keyword ?? "")
            || tokens[index].isSymbol(";")
    }

    /// The sync trigger evaluates an expression over the row as `... FROM (SELECT NEW.*) AS r`.
    private func isTriggerEvaluation(_ tokens: [SQLToken]) -> Bool {
        guard tokens.count >= 6 else { return false }
        for index in 0...(tokens.count - 6) {
            let row = tokens[index + 2].keyword
            if tokens[index].isSymbol("("), tokens[index + 1].isKeyword("SELECT"), row == "NEW" || row == "OLD",
                tokens[index + 3].isSymbol("."), tokens[index + 4].isSymbol("*"), tokens[index + 5].isSymbol(")")
            {
                return true
            }
        }
        return false
    }

    private func containsVerification(_ tokens: [SQLToken]) -> Bool {
        guard !verification.isEmpty else { return false }
        let shapes = Self.shapes(tokens)
        guard shapes.count >= verification.count else { return false }
        for start in 0...(shapes.count - verification.count)
        where shapes[start..<(start + verification.count)].elementsEqual(verification) {
            return true
        }
        return false
    }

    // MARK: Shapes

    /// A token as `pg_stat_statements` leaves it comparable: a name folded, a keyword in upper
    /// case, every constant (and parameter) alike.
    enum Shape: Equatable {
        case name(String)
        case constant
        case symbol(String)
    }

    /// The tokens' shapes, a signed number one constant (as `pg_stat_statements` replaces
    /// `-5` by `$1`) where the sign cannot be a binary operator.
    static func shapes(_ tokens: [SQLToken]) -> [Shape] {
        var shapes: [Shape] = []
        var index = 0
        while index < tokens.count {
            let token = tokens[index]
            let previousIsOperand: Bool = {
                guard let last = shapes.last else { return false }
                switch last {
                case .name, .constant: return true
                case .symbol(let text): return text == ")" || text == "]"
                }
            }()
            if token.isSymbol("-") || token.isSymbol("+"), !previousIsOperand, index + 1 < tokens.count,
                tokens[index + 1].kind == .number
            {
                shapes.append(.constant)
                index += 2
                continue
            }
            switch token.kind {
            case .number, .string, .parameter:
                shapes.append(.constant)
            case .word where ["TRUE", "FALSE", "NULL"].contains(token.text.uppercased()):
                shapes.append(.constant)
            case .word, .quotedIdentifier:
                shapes.append(.name(token.identifier ?? token.text))
            case .symbol:
                shapes.append(.symbol(token.text))
            }
            index += 1
        }
        return shapes
    }
}
