import Foundation
import GodwitPostgres
import Logging

/// Runs migrations in a scratch database that has the target's schema and no data, and
/// records what each statement did there: the locks it took, the tables it rewrote, the
/// constraints it added validated, the tables it dropped.
///
/// The scratch database is created beside the target (from `template0` with the target's
/// encoding and locale, as `migrate verify` does), filled with `pg_dump --schema-only` of the
/// target piped into `psql`, and dropped afterwards, also on failure. The target sees only
/// catalog reads and the schema-only dump.
///
/// The migrations do not run with the caller's rights: they run in a session that logged in
/// as a role made for the lint, which owns the scratch database and its objects and nothing
/// else (``TraceRole``), so that a migration from an untrusted branch cannot reach the server's
/// programs, files or configuration, other databases or other sessions. The caller needs
/// CREATEDB and CREATEROLE (or to be a superuser) for the database and the role; without them
/// the lint refuses with one line, before creating anything, rather than run the migrations
/// with the caller's own rights or quietly fall back to the static rules (a person who gave a
/// database expects the trace, and would not see what only the trace finds).
///
/// All the migrations run inside one transaction that is rolled back at the end, each
/// statement under a savepoint, so that a later pending migration finds what an earlier one
/// created and nothing outlives the lint. Statements that cannot run in a transaction run
/// without their `CONCURRENTLY` (the same schema change); those that still cannot (SQLSTATE
/// 25001, `CREATE DATABASE`) are not run, and neither are `VACUUM` and `CLUSTER`: they are
/// judged by their text. So is a statement the restricted role may not run (SQLSTATE 42501, a
/// `CREATE ROLE`, an untrusted extension), with a note, and a migration with a statement that
/// acts outside the database (``OutsideEffect``) is not run at all.
struct MigrationTrace {
    struct Relation: Sendable {
        var node: Int64
        var kind: String
        var name: String
        var qualified: String
    }

    let connection: Connection
    /// Relations of the target, by oid in the scratch database.
    let preExisting: [Int64: Relation]

    /// Creates the scratch database, copies the schema, hands it to a new restricted role, runs
    /// `body` with a session logged in as that role, and drops the database and the role
    /// whatever happens. Both are named after the process (so that one a killed run left can
    /// be traced) and a random number, and that name is logged at debug level before either is
    /// created. The role's session searches `searchPath` (nil: the target's, as `target` has it),
    /// after making `createSchemas` as sqlx.toml's `create-schemas` would.
    static func withScratch<T>(
        targetURL: String, target: Connection, searchPath: String? = nil, createSchemas: [String] = [],
        logger: Logger, _ body: (MigrationTrace) async throws -> T
    ) async throws -> T {
        try await requirePrivileges(on: target)
        let scratch = "godwit_lint_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        logger.debug("scratch database and role", metadata: ["name": "\(scratch)"])
        do {
            try await MigrationVerifier.createScratch(scratch, likeCurrentDatabaseOf: target)
        } catch let error as MigrationError {
            throw MigrationError(
                error.code,
                error.message.replacingOccurrences(of: "migrate verify", with: "migrate lint")
                    .replacingOccurrences(of: "run verify", with: "run lint"),
                underlying: error.underlying)
        }
        let role = TraceRole(name: scratch)
        var roleCreated = false
        do {
            let scratchURL = try MigrationVerifier.url(targetURL, database: scratch)
            try await copySchema(from: targetURL, to: scratchURL)
            try await role.create(on: target)
            roleCreated = true
            try await role.takeOver(database: scratch, scratchURL: scratchURL, target: target)
            // The search_path the migrations will run under: the caller's, or the target's as
            // the caller's session has it (role and database settings included), which the
            // role's own session would not.
            var searchPath = searchPath
            if searchPath == nil {
                searchPath = try await target.query("SELECT current_setting('search_path') AS path").first?["path"]
            }
            let value = try await role.withSession(targetURL: targetURL, database: scratch) { connection in
                for schema in createSchemas {
                    try await connection.execute("CREATE SCHEMA IF NOT EXISTS \(quoteIdentifier(schema))")
                }
                if let searchPath {
                    try await connection.query("SELECT set_config('search_path', $1, false)", [searchPath])
                }
                let trace = MigrationTrace(connection: connection, preExisting: try await relations(on: connection))
                return try await body(trace)
            }
            try await target.execute("DROP DATABASE \(quoteIdentifier(scratch)) WITH (FORCE)")
            try await target.execute("DROP ROLE \(role.quoted)")
            return value
        } catch {
            // Sent even from a cancelled task; the role goes after the database it owns.
            await target.cleanup("DROP DATABASE IF EXISTS \(quoteIdentifier(scratch)) WITH (FORCE)")
            if roleCreated { await role.drop(on: target) }
            throw error
        }
    }

    /// Refuses, in one line and before anything is created, a caller that can make neither the
    /// scratch database (CREATEDB) nor the role (CREATEROLE), unless it is a superuser.
    private static func requirePrivileges(on target: Connection) async throws {
        guard
            let row = try await target.query(
                "SELECT current_user::text AS role, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).first, try !row.bool("rolsuper")
        else { return }
        var missing: [String] = []
        if try !row.bool("rolcreatedb") { missing.append("CREATEDB") }
        if try !row.bool("rolcreaterole") { missing.append("CREATEROLE") }
        guard !missing.isEmpty else { return }
        let role = quoteIdentifier(try row.string("role"))
        let what =
            missing.count == 2
            ? "may create neither" : "may not create the \(missing[0] == "CREATEDB" ? "database" : "role")"
        throw MigrationError(
            .execution,
            "migrate lint needs a scratch database beside the one given and a role of its own to run the migrations as there, and role \(role) \(what): it needs \(missing.joined(separator: " and ")) (ALTER ROLE \(role) \(missing.joined(separator: " "))), or a superuser; or lint without a database for the static rules only"
        )
    }

    /// `pg_dump --schema-only TARGET | psql SCRATCH`, in one transaction, stopping at the first error.
    private static func copySchema(from targetURL: String, to scratchURL: String) async throws {
        let (source, sourceEnvironment) = try ClientProgram.connectionArguments(for: targetURL)
        let (destination, destinationEnvironment) = try ClientProgram.connectionArguments(for: scratchURL)
        let (dump, load) = try await ClientProgram.pipeline(
            ClientProgram.Invocation(
                "pg_dump", ["--schema-only", "--no-owner", "--no-privileges", "--dbname=\(source)"],
                environment: sourceEnvironment),
            into: ClientProgram.Invocation(
                "psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname=\(destination)"],
                environment: destinationEnvironment))
        guard dump.succeeded else {
            throw MigrationError(
                .execution, "migrate lint: pg_dump --schema-only of the target failed: \(dump.firstErrorLine)")
        }
        guard load.succeeded else {
            throw MigrationError(
                .execution,
                "migrate lint: loading the target's schema into the scratch database failed: \(load.firstErrorLine)")
        }
    }

    private static let relationsSQL = """
        SELECT c.oid::int8 AS oid, c.relfilenode::int8 AS node, c.relkind::text AS kind,
               CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END AS name,
               format('%I.%I', n.nspname, c.relname) AS qualified
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'm', 'i', 'I') AND n.nspname NOT LIKE 'pg\\_%'
        """

    static func relations(on connection: Connection) async throws -> [Int64: Relation] {
        var relations: [Int64: Relation] = [:]
        for row in try await connection.query(relationsSQL).rows {
            relations[try row.int64("oid")] = Relation(
                node: try row.int64("node"), kind: try row.string("kind"), name: try row.string("name"),
                qualified: try row.string("qualified"))
        }
        return relations
    }

    /// The relation locks this backend holds, the strongest mode per relation.
    func locks() async throws -> [Int64: LockMode] {
        let result = try await connection.query(
            """
            SELECT relation::int8 AS oid, mode FROM pg_locks
            WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted AND relation >= 16384
            """)
        var locks: [Int64: LockMode] = [:]
        for row in result.rows {
            guard let mode = LockMode(pgLocksMode: try row.string("mode")) else { continue }
            let oid = try row.int64("oid")
            locks[oid] = max(locks[oid] ?? mode, mode)
        }
        return locks
    }

    private struct ConstraintRow {
        var table: Int64
        var type: String
        var validated: Bool
        var index: Int64
        var name: String
    }

    private func constraints() async throws -> [Int64: ConstraintRow] {
        var rows: [Int64: ConstraintRow] = [:]
        for row in try await connection.query(
            "SELECT oid::int8 AS oid, conrelid::int8 AS rel, contype::text AS type, convalidated, conindid::int8 AS idx, conname::text AS name FROM pg_constraint WHERE conrelid <> 0"
        ).rows {
            rows[try row.int64("oid")] = ConstraintRow(
                table: try row.int64("rel"), type: try row.string("type"), validated: try row.bool("convalidated"),
                index: try row.int64("idx"), name: try row.string("name"))
        }
        return rows
    }

    /// For a statement judged by its text alone (not run): which table it names, and its name.
    func resolveOnly(_ shape: StatementShape) async throws -> TraceObservation {
        var observation = TraceObservation()
        observation.executed = false
        guard let table = shape.table else { return observation }
        let row = try await connection.query("SELECT to_regclass($1)::int8 AS oid", [table.written]).first
        observation.tableOID = row?["oid"].flatMap { Int64($0) }
        if let oid = observation.tableOID, let relation = try await Self.relations(on: connection)[oid] {
            observation.names[oid] = relation.name
            observation.qualifiedNames[oid] = relation.qualified
        }
        return observation
    }

    /// Runs one statement (`sql`: its text, or the text without CONCURRENTLY) and says what it
    /// did. `baseline`: the locks held when the statement's migration began, for a migration
    /// that runs in one transaction; nil for a `-- no-transaction` one, whose statements each
    /// commit on their own and so never run under an earlier statement's lock.
    func observe(
        _ statement: SQLStatement, sql: String, shape: StatementShape, path: String, baseline: [Int64: LockMode]?
    ) async throws -> TraceObservation {
        var observation = TraceObservation()
        if let table = shape.table {
            let row = try await connection.query("SELECT to_regclass($1)::int8 AS oid", [table.written]).first
            observation.tableOID = row?["oid"].flatMap { Int64($0) }
        }
        let relationsBefore = try await Self.relations(on: connection)
        let locksBefore = try await locks()
        let constraintsBefore = try await constraints()
        let setNotNullColumns = shape.alterActions.compactMap { action -> String? in
            if case .setNotNull(let column) = action { return column }
            return nil
        }
        if let oid = observation.tableOID, !setNotNullColumns.isEmpty {
            observation.notNullProven = try await Self.hasValidatedNotNullChecks(
                table: String(oid), columns: setNotNullColumns, on: connection, byOID: true)
            try await connection.execute("SET client_min_messages = debug1")
            _ = await connection.takeNotices()
        }
        do {
            try await connection.execute(sql)
        } catch let error as PostgresError {
            let (line, column) = statement.location(
                ofCharacterPosition: sql == statement.text ? error.position ?? 1 : 1)
            throw MigrationError(
                .execution,
                "\(path):\(line):\(column): the statement failed in the scratch database of migrate lint: \(error.message)\(error.sqlState.map { " (SQLSTATE \($0))" } ?? "")",
                underlying: error)
        }
        if !setNotNullColumns.isEmpty {
            let notices = await connection.takeNotices()
            try await connection.execute("RESET client_min_messages")
            if notices.contains(where: { $0.message.contains("sufficient to prove that it does not contain nulls") }) {
                observation.notNullProven = true
            }
        }
        let relationsAfter = try await Self.relations(on: connection)
        let locksAfter = try await locks()
        for (oid, mode) in locksAfter where preExisting[oid] != nil {
            if let before = locksBefore[oid], before >= mode { continue }
            observation.acquired[oid] = mode
        }
        for (oid, mode) in locksBefore where mode == .accessExclusive {
            guard let baseline, baseline[oid] != .accessExclusive else { continue }
            if let relation = preExisting[oid], ["r", "p", "m"].contains(relation.kind) {
                observation.heldExclusive.append(oid)
            }
        }
        for (oid, relation) in preExisting where ["r", "p", "m"].contains(relation.kind) {
            guard let before = relationsBefore[oid] else { continue }
            if let after = relationsAfter[oid] {
                if after.node != before.node { observation.rewritten.append(oid) }
            } else if relation.kind != "m" {
                observation.dropped.append(oid)
            }
        }
        // A constraint is new when its table had none of that name: ALTER COLUMN ... TYPE drops
        // and re-creates the constraints on the column (new oids, same names), and re-creates
        // their indexes over the old storage when the change is binary compatible.
        let namesBefore = Set(constraintsBefore.values.map { "\($0.table).\($0.name)" })
        let nodesBefore = Set(relationsBefore.values.map(\.node))
        for (oid, row) in try await constraints()
        where constraintsBefore[oid] == nil && preExisting[row.table] != nil
            && !namesBefore.contains("\(row.table).\(row.name)")
        {
            let built =
                row.index != 0 && relationsBefore[row.index] == nil
                && !(relationsAfter[row.index].map { nodesBefore.contains($0.node) } ?? false)
            observation.newConstraints.append(
                TraceObservation.NewConstraint(
                    table: row.table, type: row.type, validated: row.validated, builtIndex: built))
        }
        for (oid, relation) in relationsBefore.merging(relationsAfter, uniquingKeysWith: { $1 }) {
            observation.names[oid] = relation.name
            observation.qualifiedNames[oid] = relation.qualified
        }
        if case .update(hasWhere: false) = shape.command, let oid = observation.tableOID {
            observation.batchKey = try await Self.singleColumnKey(of: String(oid), byOID: true, on: connection)
        }
        return observation
    }

    /// Whether every column has a validated `CHECK (col IS NOT NULL)` on the table: validated
    /// in the catalog, or NOT VALID there and named in `validatedNames` (validated by an
    /// earlier statement of the migrations being checked, which the catalog check does not run).
    static func hasValidatedNotNullChecks(
        table: String, columns: [String], on connection: Connection, byOID: Bool, validatedNames: [String] = []
    ) async throws -> Bool {
        let relation = byOID ? "$1::oid" : "to_regclass($1)"
        for column in columns {
            let row = try await connection.query(
                """
                SELECT EXISTS (
                    SELECT FROM pg_constraint
                    WHERE conrelid = \(relation) AND contype = 'c' AND (convalidated OR conname = ANY ($3::text[]))
                      AND pg_get_constraintdef(oid) IN (
                          format('CHECK ((%I IS NOT NULL))', $2::text), format('CHECK ((%I IS NOT NULL)) NOT VALID', $2::text))
                ) AS proven
                """, [table, column, PostgresArray.literal(validatedNames)]
            ).first
            guard try row?.bool("proven") == true else { return false }
        }
        return true
    }

    /// Whether the table (as `to_regclass` resolves the text) has the column.
    static func hasColumn(table: String, column: String, on connection: Connection) async throws -> Bool {
        try await connection.query(
            """
            SELECT EXISTS (
                SELECT FROM pg_catalog.pg_attribute
                WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
            ) AS present
            """, [table, column]
        ).first?.bool("present") ?? false
    }

    /// The table's primary key when it is one column, for a batched job.
    static func singleColumnKey(of table: String, byOID: Bool, on connection: Connection) async throws -> String? {
        let relation = byOID ? "$1::oid" : "to_regclass($1)"
        return try await connection.query(
            """
            SELECT a.attname::text AS key FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = \(relation) AND i.indisprimary AND i.indnatts = 1
            """, [table]
        ).first?["key"]
    }
}
