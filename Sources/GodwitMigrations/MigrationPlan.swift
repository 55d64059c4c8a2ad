import GodwitPostgres

/// What `run --dry-run` or `revert --dry-run` would send for one migration, in order, without
/// sending any of it.
///
/// A migration in a transaction is sent as its file, in one message, between `BEGIN`, the
/// `SET LOCAL lock_timeout` and the ledger write; a `-- no-transaction` file is sent statement
/// by statement, split exactly as `Migrator` splits it when it runs, after the session's
/// `lock_timeout` is set. Ledger writes show their parameters inline.
public struct MigrationPlan: Sendable, Equatable {
    /// One message sent to the server.
    public struct Statement: Sendable, Equatable {
        public var sql: String
        /// For a statement of the file: its 1-based line there.
        public var line: Int?
    }

    public var migration: Migration
    /// Whether the statements run outside a transaction, one by one.
    public var noTransaction: Bool
    /// The `lock_timeout` that applies to the migration's statements (nil: none, as sqlx).
    public var lockTimeout: Duration?
    /// Tries after a lock timeout before giving up.
    public var retries: Int
    public var statements: [Statement]

    init(_ migration: Migration, ledger: Ledger, policy: LockTimeoutPolicy) {
        self.migration = migration
        noTransaction = migration.noTransaction
        lockTimeout = policy.lockTimeout
        retries = policy.lockTimeout == nil ? 0 : policy.retries
        let setting = policy.lockTimeoutSetting
        func insert(success: Bool) -> Statement {
            Statement(
                sql: """
                    INSERT INTO \(ledger.table) (version, description, success, checksum, execution_time) \
                    VALUES (\(migration.version), \(Self.literal(migration.description)), \(success ? "TRUE" : "FALSE"), \
                    '\\x\(migration.checksumHex)', -1)
                    """)
        }
        let ledgerWrite =
            migration.kind == .down
            ? Statement(sql: "DELETE FROM \(ledger.table) WHERE version = \(migration.version)") : insert(success: true)
        var statements: [Statement] = []
        if migration.noTransaction {
            // An up is recorded as started (success = false) before its first statement and
            // marked done after its last: see `Migrator.apply`.
            if migration.kind != .down { statements.append(insert(success: false)) }
            if let setting {
                statements.append(Statement(sql: "SELECT pg_catalog.set_config('lock_timeout', '\(setting)', false)"))
            }
            for statement in SQLSplitter.split(migration.sql) {
                statements.append(Statement(sql: statement.text, line: statement.startLine))
            }
            if migration.kind == .down {
                statements.append(ledgerWrite)
            } else {
                statements.append(
                    Statement(
                        sql:
                            "UPDATE \(ledger.table) SET success = TRUE, execution_time = <elapsed nanoseconds> WHERE version = \(migration.version)"
                    ))
            }
        } else {
            statements.append(Statement(sql: "BEGIN"))
            if let setting { statements.append(Statement(sql: "SET LOCAL lock_timeout = '\(setting)'")) }
            statements.append(Statement(sql: migration.sql, line: 1))
            statements.append(ledgerWrite)
            statements.append(Statement(sql: "COMMIT"))
        }
        if migration.kind != .down, !migration.noTransaction {
            statements.append(
                Statement(
                    sql:
                        "UPDATE \(ledger.table) SET execution_time = <elapsed nanoseconds> WHERE version = \(migration.version)"
                ))
        }
        self.statements = statements
    }

    /// The plan as a person reads it: a header comment saying how it runs and under which
    /// lock timeout, then each statement as sent, each file statement preceded by its line.
    public var text: String {
        let file = migration.path
        let timeout: String
        if let lockTimeout {
            timeout =
                "lock_timeout \(lockTimeout.roundedDescription), "
                + (noTransaction ? "a statement that times out is" : "the transaction is")
                + " rolled back and tried again up to \(retries) times"
        } else {
            timeout = "no lock_timeout (--lock-timeout 0)"
        }
        var lines: [String] = []
        if noTransaction {
            let count = statements.filter { $0.line != nil }.count
            lines.append(
                "-- \(file): -- no-transaction: \(count) statement\(count == 1 ? "" : "s"), each sent on its own outside a transaction; \(timeout)"
            )
        } else {
            lines.append("-- \(file): one transaction, the file sent as one message; \(timeout)")
        }
        for statement in statements {
            if let line = statement.line {
                lines.append(noTransaction ? "-- line \(line):" : "-- the file:")
            }
            var sql = statement.sql
            while sql.last?.isWhitespace == true { sql.removeLast() }
            if noTransaction || statement.line == nil { sql += ";" }
            lines.append(sql)
        }
        return lines.joined(separator: "\n")
    }

    private static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
