/// A check `godwit migrate lint` makes, with a stable kebab-case id.
///
/// The id is what `-- godwit:allow RULE reason` names and what the JSON output carries, so ids
/// never change meaning. Every rule is about a statement that holds a lock that blocks the
/// application for longer than a moment (a rewrite, a scan, a validation, an index build, work
/// done under the lock), breaks the application version that is still running, or acts outside
/// the database, where no rollback undoes it (a program or file on the server, the server's
/// configuration, another database, other sessions). A brief ACCESS EXCLUSIVE lock by itself is
/// not a finding: every ALTER TABLE takes one, and the lock-timeout executor handles waiting
/// for it.
public enum LintRule: String, Sendable, CaseIterable, Codable {
    case nonConcurrentIndex = "non-concurrent-index"
    case nonConcurrentReindex = "non-concurrent-reindex"
    case volatileDefault = "volatile-default"
    case serialColumn = "serial-column"
    case notNullWithoutDefault = "not-null-without-default"
    case columnTypeRewrite = "column-type-rewrite"
    case tableRewrite = "table-rewrite"
    case constraintWithoutNotValid = "constraint-without-not-valid"
    case uniqueWithoutIndex = "unique-without-index"
    case setNotNull = "set-not-null"
    case vacuumFull = "vacuum-full"
    case cluster = "cluster"
    case wholeTableUpdate = "whole-table-update"
    case wholeTableDelete = "whole-table-delete"
    case workUnderExclusiveLock = "work-under-exclusive-lock"
    case needsNoTransaction = "needs-no-transaction"
    case dropColumn = "drop-column"
    case renameColumn = "rename-column"
    case renameTable = "rename-table"
    case dropTable = "drop-table"
    case copyProgram = "copy-program"
    case serverFile = "server-file"
    case alterSystem = "alter-system"
    case remoteConnection = "remote-connection"
    case signalBackend = "signal-backend"
    case fileEndsTransaction = "file-ends-transaction"

    /// The id as written in allow comments and JSON.
    public var id: String { rawValue }

    /// What the rule catches, in one line (the rules table of docs/lint.md says the same).
    public var summary: String {
        switch self {
        case .nonConcurrentIndex: "CREATE INDEX without CONCURRENTLY on an existing table"
        case .nonConcurrentReindex: "REINDEX without CONCURRENTLY"
        case .volatileDefault: "ADD COLUMN with a volatile default, which rewrites the table"
        case .serialColumn: "a serial or identity column added to an existing table, which rewrites it"
        case .notNullWithoutDefault:
            "ADD COLUMN ... NOT NULL without a DEFAULT on an existing table, which fails once the table has rows"
        case .columnTypeRewrite: "ALTER COLUMN ... TYPE that rewrites the table"
        case .tableRewrite: "another statement that rewrites an existing table"
        case .constraintWithoutNotValid: "a FOREIGN KEY or CHECK added to an existing table without NOT VALID"
        case .uniqueWithoutIndex: "a UNIQUE or PRIMARY KEY constraint that builds its index under the lock"
        case .setNotNull: "SET NOT NULL that scans the table (no validated CHECK (col IS NOT NULL) first)"
        case .vacuumFull: "VACUUM FULL, which rewrites the table under ACCESS EXCLUSIVE"
        case .cluster: "CLUSTER, which rewrites the table under ACCESS EXCLUSIVE"
        case .wholeTableUpdate: "an UPDATE without WHERE of an existing table in a schema migration"
        case .wholeTableDelete: "a DELETE without WHERE of an existing table in a schema migration"
        case .workUnderExclusiveLock:
            "work done while an ACCESS EXCLUSIVE lock taken earlier in the transaction is held"
        case .needsNoTransaction: "CONCURRENTLY, VACUUM or ALTER SYSTEM in a file that runs inside a transaction"
        case .dropColumn: "DROP COLUMN, which breaks the application version still running"
        case .renameColumn: "RENAME COLUMN, which breaks the application version still running"
        case .renameTable: "ALTER TABLE ... RENAME TO, which breaks the application version still running"
        case .dropTable: "DROP TABLE of an existing table, which breaks the application version still running"
        case .copyProgram: "COPY ... TO PROGRAM or FROM PROGRAM, which runs a command on the database server"
        case .serverFile:
            "COPY to or from a file, lo_import, lo_export, pg_read_file: a file on the database server"
        case .alterSystem: "ALTER SYSTEM or pg_reload_conf(), which change the whole server's configuration"
        case .remoteConnection:
            "dblink calls, CREATE EXTENSION dblink or postgres_fdw: connections from the server to other databases"
        case .signalBackend: "pg_terminate_backend or pg_cancel_backend, which end or interrupt other sessions"
        case .fileEndsTransaction:
            "a COMMIT or ROLLBACK of the file's own that ends the transaction the migration runs in before its end"
        }
    }

    /// The safe way to make the same change.
    public var recipe: String {
        switch self {
        case .nonConcurrentIndex:
            "build it with CREATE INDEX CONCURRENTLY in a migration of its own that starts with -- no-transaction"
        case .nonConcurrentReindex:
            "use REINDEX ... CONCURRENTLY in a migration of its own that starts with -- no-transaction"
        case .volatileDefault:
            "add the column without a default (or with a constant one), set the default for new rows with ALTER COLUMN ... SET DEFAULT, and fill existing rows with a batched job (jobs/*.sql)"
        case .serialColumn:
            "add a nullable bigint column, attach a sequence with ALTER COLUMN ... SET DEFAULT nextval(...), fill existing rows with a batched job, then add the constraints"
        case .notNullWithoutDefault:
            "give it a constant DEFAULT (stored in the catalog, no rewrite), or add it nullable, fill it with a batched job, then SET NOT NULL after a validated CHECK (col IS NOT NULL)"
        case .columnTypeRewrite:
            "a zero-downtime change with godwit change: a changes/*.sql file adds a column of the new type computed from the old one and drops the old one computed back (add-column NEW TYPE = EXPR, drop-column OLD = NEW); godwit change start keeps both in step with a trigger and backfills, godwit change complete drops the old column once no reader is left (godwit migrate lint --write-changes DIR writes the file)"
        case .tableRewrite:
            "avoid the rewrite, or do it on a copy of the table (expand/contract) while the old one serves traffic"
        case .constraintWithoutNotValid:
            "add it with NOT VALID (a brief lock), then VALIDATE CONSTRAINT in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on)"
        case .uniqueWithoutIndex:
            "CREATE UNIQUE INDEX CONCURRENTLY in a -- no-transaction migration, then ADD CONSTRAINT ... UNIQUE USING INDEX (or PRIMARY KEY USING INDEX)"
        case .setNotNull:
            "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later migration, then SET NOT NULL (no scan) and drop the check; godwit change does these steps from a changes/*.sql file with not-null: COLUMN (godwit migrate lint --write-changes DIR writes it)"
        case .vacuumFull:
            "use plain VACUUM (no exclusive lock), or pg_repack/pg_squeeze to compact online"
        case .cluster:
            "leave physical ordering to pg_repack --order-by, which works online"
        case .wholeTableUpdate:
            "move the UPDATE out of the schema migration into a batched job (godwit migrate lint --write-jobs DIR writes one)"
        case .wholeTableDelete:
            "delete in batches from a job (keyset batches of a few thousand rows, each committed), not in the schema migration"
        case .workUnderExclusiveLock:
            "put the statement that takes ACCESS EXCLUSIVE last in its transaction, or in a migration of its own, so the lock is released at once"
        case .needsNoTransaction:
            "move the statement into a migration whose first line is -- no-transaction"
        case .dropColumn:
            "deploy an application that no longer uses the column, then drop it with godwit change (a changes/*.sql file with drop-column: COLUMN), whose complete waits until no statement has named the column for a quiet window (godwit migrate lint --write-changes DIR writes the file)"
        case .renameColumn:
            "a zero-downtime rename with godwit change: a changes/*.sql file with add-column NEW TYPE = OLD and drop-column OLD = NEW; godwit change start keeps both in step with a trigger and backfills, the application moves to NEW once godwit change status says ready, godwit change complete drops OLD once no reader is left (godwit migrate lint --write-changes DIR writes the file)"
        case .renameTable:
            "expand/contract: create the new table (or a view under the new name), move the application over, then drop the old name"
        case .dropTable:
            "deploy an application that no longer uses the table first, then drop it in a later migration"
        case .copyProgram:
            "move data from a client or a job with COPY ... FROM STDIN / TO STDOUT (psql's \\copy), never through a program on the database server"
        case .serverFile:
            "move data through a client (psql's \\copy, the client library's lo_import) or a job; a migration has no business with the server's files"
        case .alterSystem:
            "set server parameters where the server's configuration is managed, or per database or role (ALTER DATABASE ... SET, ALTER ROLE ... SET), not in a migration"
        case .remoteConnection:
            "do cross-database work from the application or a job, one connection per database; an extension that is needed is installed by an administrator, not by a migration"
        case .signalBackend:
            "do not end sessions from a migration: a lock timeout (migrate run retries it) gets past blockers, and the deploy procedure stops clients when it must"
        case .fileEndsTransaction:
            "remove the file's own BEGIN and COMMIT (migrate run and sqlx already run the whole file in one transaction), or move what follows the COMMIT into a migration of its own"
        }
    }

    /// The rule a string names, or nil.
    public init?(id: String) {
        self.init(rawValue: id)
    }
}
