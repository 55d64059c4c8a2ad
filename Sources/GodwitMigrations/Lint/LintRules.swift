import GodwitPostgres

/// The rules, applied to one statement at a time. With a trace, rewrites, validations, locks
/// and drops are what PostgreSQL did; without one, they are read from the statement's shape.
enum LintRules {
    /// Functions whose result differs row by row, so that a DEFAULT calling them makes
    /// `ADD COLUMN` rewrite the table (static mode only; the trace sees the rewrite itself).
    static let volatileFunctions: Set<String> = [
        "random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "clock_timestamp",
        "timeofday", "nextval", "setseed", "uuidv7", "uuidv4",
    ]

    static func evaluate(_ facts: StatementFacts) -> [LintFinding] {
        let shape = facts.shape
        let trace = facts.trace
        let table = facts.tableName
        var findings: [LintFinding] = []

        func add(
            _ rule: LintRule, _ what: String, lock staticLock: LockMode?, rewrite: Bool = false, on name: String? = nil
        ) {
            let name = name ?? table
            var lock = staticLock
            if let trace, let oid = trace.tableOID, let seen = trace.acquired[oid], name == table { lock = seen }
            var message = what
            if let lock { message += "; \(lock.rawValue)\(name.map { " on \($0)" } ?? ""): blocks \(lock.blocks)" }
            var finding = LintFinding(
                rule: rule, file: facts.path, line: facts.statement.startLine, statement: facts.firstLine, table: name,
                lock: lock, rewrite: rewrite, message: message)
            if rule == .wholeTableUpdate {
                finding.batchKey = facts.batchKey
                finding.sql = facts.statement.text
                finding.batchWhereOffset = shape.batchWhereOffset
            }
            if let trace, let oid = trace.names.first(where: { $0.value == name })?.key {
                finding.sizeName = trace.qualifiedNames[oid]
            } else {
                finding.sizeName = name == table ? facts.sizeName ?? name : name
            }
            findings.append(finding)
        }

        // One finding a rule: a statement that calls dblink twice is one remote connection.
        var outside: Set<LintRule> = []
        for effect in shape.outsideEffects where outside.insert(effect.rule).inserted {
            add(effect.rule, "\(effect.what); nothing rolls that back, and migrate lint does not run it", lock: nil)
        }

        let existing = facts.tablePreExisting
        let rewritten = trace.map { t in t.tableOID.map { t.rewritten.contains($0) } ?? false }

        switch shape.command {
        case .createIndex(concurrently: false) where existing:
            add(
                .nonConcurrentIndex, "CREATE INDEX without CONCURRENTLY holds its lock for the whole build",
                lock: .share)
        case .reindex(concurrently: false) where existing || trace?.tableOID == nil:
            add(
                .nonConcurrentReindex,
                "REINDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on each index it rebuilds, which also stalls queries planned on the table",
                lock: .share, rewrite: true)
        case .vacuum(full: true):
            add(.vacuumFull, "VACUUM FULL rewrites the table", lock: .accessExclusive, rewrite: true)
        case .cluster:
            add(.cluster, "CLUSTER rewrites the table in index order", lock: .accessExclusive, rewrite: true)
        case .update(hasWhere: false) where existing:
            add(
                .wholeTableUpdate, "UPDATE without WHERE changes every row of an existing table in one transaction",
                lock: .rowExclusive)
        case .delete(hasWhere: false) where existing:
            add(
                .wholeTableDelete, "DELETE without WHERE removes every row of an existing table in one transaction",
                lock: .rowExclusive)
        case .dropTable:
            let gone: [String] =
                if let trace { trace.dropped.compactMap { trace.names[$0] } } else { facts.droppedPreExisting }
            for name in gone {
                add(.dropTable, "DROP TABLE of a table the running application uses", lock: .accessExclusive, on: name)
            }
        default:
            break
        }

        if (shape.needsNoTransaction || facts.failsInTransaction) && facts.inTransaction {
            add(
                .needsNoTransaction,
                "this statement cannot run inside a transaction block, and the file has no -- no-transaction line: migrate run would fail here",
                lock: nil)
        }

        var sawRewriteRule = false
        if existing {
            let alterLock: LockMode = staticAlterLock(shape)
            // Which actions the rewrite is blamed on: those that by their text would rewrite;
            // with a trace that saw a rewrite none of them explains (a user function as a
            // default), every action that can rewrite. Without a rewrite, none.
            // A type change the catalog judged (catalog mode) is blamed as judged.
            let likely = shape.alterActions.filter { action in
                if case .alterType(let column, _, _) = action, let judged = facts.typeChangeRewrites[column] {
                    return judged
                }
                return likelyRewrites(action)
            }
            let blamed: [StatementShape.Action] =
                switch rewritten {
                case nil: likely
                case false?: []
                case true?: likely.isEmpty ? shape.alterActions.filter(canRewrite) : likely
                }
            for action in shape.alterActions {
                switch action {
                case .addColumn(let column, _, let serial, _) where blamed.contains(action):
                    if serial {
                        add(
                            .serialColumn, "adding serial or identity column \(column) rewrites the table to fill it",
                            lock: .accessExclusive, rewrite: true)
                    } else {
                        add(
                            .volatileDefault,
                            "the default of column \(column) is volatile, so adding it rewrites the table",
                            lock: .accessExclusive, rewrite: true)
                    }
                    sawRewriteRule = true
                case .addColumn(let column, nil, false, true):
                    add(
                        .notNullWithoutDefault,
                        "column \(column) is added NOT NULL without a DEFAULT: that fails on a table with rows, though an empty database (as in CI) lets it pass",
                        lock: .accessExclusive)
                case .alterType(let column, let type, _) where blamed.contains(action):
                    add(
                        .columnTypeRewrite, "changing the type of column \(column) to \(type) rewrites the table",
                        lock: .accessExclusive, rewrite: true)
                    if case .alterType(_, _, let using) = action {
                        findings[findings.count - 1].columnChange = .typeChange(
                            column: column, type: StatementShape.text(of: SQLTokenizer.tokens(type)), using: using)
                    }
                    sawRewriteRule = true
                case .addConstraint(let kind, let notValid, let usingIndex, _, _) where trace == nil:
                    switch kind {
                    case .check, .foreignKey:
                        guard !notValid else { break }
                        add(
                            .constraintWithoutNotValid,
                            "\(kind == .check ? "CHECK" : "FOREIGN KEY") without NOT VALID checks every row under the lock",
                            lock: kind == .foreignKey ? .shareRowExclusive : .accessExclusive)
                    case .unique, .primaryKey, .exclude:
                        guard !usingIndex else { break }
                        add(
                            .uniqueWithoutIndex, "the constraint builds its index under the lock",
                            lock: .accessExclusive)
                    }
                case .setNotNull(let column) where !facts.notNullProven:
                    add(
                        .setNotNull, "SET NOT NULL on \(column) scans the whole table under the lock",
                        lock: .accessExclusive)
                    findings[findings.count - 1].columnChange = .setNotNull(column: column)
                case .dropColumn(let column) where !facts.newColumns.contains(column):
                    add(
                        .dropColumn, "dropping column \(column) breaks the application version still running",
                        lock: alterLock)
                    findings[findings.count - 1].columnChange = .drop(column: column)
                case .renameColumn(let column, let target):
                    add(
                        .renameColumn, "renaming column \(column) breaks the application version still running",
                        lock: alterLock)
                    if let target { findings[findings.count - 1].columnChange = .rename(column: column, to: target) }
                case .renameTable:
                    add(
                        .renameTable, "renaming the table breaks the application version still running", lock: alterLock
                    )
                default:
                    break
                }
            }
        }

        if let trace {
            for constraint in trace.newConstraints {
                let name = trace.names[constraint.table]
                let lock = trace.acquired[constraint.table]
                switch constraint.type {
                case "c", "f":
                    guard constraint.validated else { break }
                    add(
                        .constraintWithoutNotValid,
                        "\(constraint.type == "c" ? "CHECK" : "FOREIGN KEY") added without NOT VALID is checked against every row under the lock",
                        lock: lock ?? (constraint.type == "f" ? .shareRowExclusive : .accessExclusive), on: name)
                case "u", "p", "x":
                    guard constraint.builtIndex else { break }
                    add(
                        .uniqueWithoutIndex, "the constraint builds its index under the lock",
                        lock: lock ?? .accessExclusive, on: name)
                default:
                    break
                }
            }
            let excluded: Bool
            switch shape.command {
            case .vacuum, .cluster, .truncate, .reindex: excluded = true
            default: excluded = false
            }
            if !sawRewriteRule, !excluded {
                for oid in trace.rewritten {
                    add(
                        .tableRewrite, "the statement rewrites the table",
                        lock: trace.acquired[oid] ?? .accessExclusive, rewrite: true, on: trace.names[oid])
                }
            }
        }

        if let held = facts.exclusiveHeldOn, shape.isDML || !findings.isEmpty {
            add(
                .workUnderExclusiveLock,
                "this statement runs while ACCESS EXCLUSIVE on \(held), taken earlier in the transaction, is still held",
                lock: .accessExclusive, on: held)
        }
        return findings
    }

    /// The finding for a file's own `COMMIT` or `ROLLBACK` that ends the migration's
    /// transaction (in a file without `-- no-transaction`), when it matters: statements follow
    /// it, which then run outside that transaction, or it is a `ROLLBACK`, which undoes what
    /// came before while the migration is still recorded as applied. Nil otherwise: a file
    /// wrapped whole in its own `BEGIN; ... COMMIT;` runs as it would without them.
    static func endedTransaction(
        _ control: TransactionControl, path: String, statement: SQLStatement, following: Int
    ) -> LintFinding? {
        let rollback: Bool
        switch control {
        case .rollback: rollback = true
        case .commit, .twoPhase: rollback = false
        case .begin, .savepoint: return nil
        }
        guard following > 0 || rollback else { return nil }
        let word = rollback ? "ROLLBACK" : "COMMIT"
        let after =
            following == 1 ? "the statement after it runs" : "the \(following) statements after it run"
        var message: String
        if rollback {
            message =
                "the file's own ROLLBACK undoes everything before it in the transaction migrate run and sqlx run the migration in, yet the migration is then recorded as applied"
            if following > 0 { message += "; \(after) outside that transaction" }
        } else {
            message =
                "the file's own COMMIT ends the transaction migrate run and sqlx run the migration in, so \(after) outside it: if one fails, what came before the COMMIT stays committed with no row in the ledger, and the next run repeats it"
        }
        let first = String(
            statement.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? "")
        return LintFinding(
            rule: .fileEndsTransaction, file: path, line: statement.startLine,
            statement: first.isEmpty ? word : first, message: message)
    }

    /// An action that can rewrite the table: a column added with a default or as serial or
    /// identity, or a type change.
    static func canRewrite(_ action: StatementShape.Action) -> Bool {
        switch action {
        case .addColumn(_, let defaultTokens, let serial, _): serial || defaultTokens != nil
        case .alterType: true
        default: false
        }
    }

    /// An action that by its text rewrites: a serial or identity column, a default calling a
    /// known volatile function, a type change to anything but `text` or `varchar` or with a
    /// USING expression.
    static func likelyRewrites(_ action: StatementShape.Action) -> Bool {
        switch action {
        case .addColumn(_, let defaultTokens, let serial, _): serial || defaultTokens.map(isVolatile) == true
        case .alterType(_, let type, let using): using != nil || !isCheapTypeChange(type)
        default: false
        }
    }

    /// Catalog mode: whether changing a column of type `old` (as `format_type` writes it) to
    /// `new` (as the statement writes it) rewrites the table, for the string types, where the
    /// text alone cannot tell widening from narrowing; nil for any other pair (the static
    /// guess stands). `varchar(n)` to `varchar(m)` with m >= n, and `varchar` or `text` to
    /// `text` or unbounded `varchar`, keep every value as it is and rewrite nothing; a length
    /// that shrinks, or appears, makes PostgreSQL check and rewrite every row.
    static func stringTypeChangeRewrites(from old: String, to new: String) -> Bool? {
        guard let from = StringType(old), let to = StringType(new) else { return nil }
        switch (from.length, to.length) {
        case (_, nil): return false
        case (let before?, let after?): return after < before
        case (nil, _?): return true
        }
    }

    /// `text`, `varchar`, `varchar(n)`, `character varying(n)`, folded; nil for other types.
    struct StringType {
        var length: Int?

        init?(_ written: String) {
            let folded = written.lowercased().filter { !$0.isWhitespace }
            for prefix in ["charactervarying", "varchar", "text"] where folded.hasPrefix(prefix) {
                let rest = folded.dropFirst(prefix.count)
                if rest.isEmpty {
                    length = nil
                    return
                }
                guard prefix != "text", rest.first == "(", rest.last == ")", let n = Int(rest.dropFirst().dropLast())
                else { return nil }
                length = n
                return
            }
            return nil
        }
    }

    /// The lock ALTER TABLE takes by PostgreSQL's documentation, for static mode: SHARE
    /// UPDATE EXCLUSIVE for VALIDATE CONSTRAINT, SHARE ROW EXCLUSIVE for adding a foreign
    /// key, the strongest of its actions' locks, and ACCESS EXCLUSIVE for everything else.
    static func staticAlterLock(_ shape: StatementShape) -> LockMode {
        let locks = shape.alterActions.map { action -> LockMode in
            switch action {
            case .validateConstraint: .shareUpdateExclusive
            case .addConstraint(.foreignKey, _, _, _, _): .shareRowExclusive
            default: .accessExclusive
            }
        }
        return locks.max() ?? .accessExclusive
    }

    /// A default that calls a volatile function (static mode's guess).
    static func isVolatile(_ tokens: [SQLToken]) -> Bool {
        for (index, token) in tokens.enumerated() where token.kind == .word {
            guard index + 1 < tokens.count, tokens[index + 1].isSymbol("(") else { continue }
            if volatileFunctions.contains(token.text.lowercased()) { return true }
        }
        return false
    }

    /// Static mode's guess at a type change that needs no rewrite: to `text`, or to an
    /// unbounded or (presumably) wider `varchar`. The trace decides by the relfilenode.
    static func isCheapTypeChange(_ type: String) -> Bool {
        let folded = type.lowercased().replacingOccurrences(of: " ", with: "")
        return folded == "text" || folded.hasPrefix("varchar") || folded.hasPrefix("charactervarying")
    }

    /// Whether a statement, by its text, takes ACCESS EXCLUSIVE on its table and keeps it to
    /// the end of the transaction (static and catalog modes).
    static func takesAccessExclusive(_ shape: StatementShape) -> Bool {
        switch shape.command {
        case .alterTable: staticAlterLock(shape) == .accessExclusive
        case .lockTable:
            !shape.tokens.contains { $0.isKeyword("IN") }
                || shape.tokens.contains { $0.isKeyword("ACCESS") }
                    && shape.tokens.contains { $0.isKeyword("EXCLUSIVE") }
        case .truncate, .vacuum(full: true), .cluster: true
        default: false
        }
    }
}
