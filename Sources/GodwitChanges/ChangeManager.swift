import Foundation
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// `godwit change plan`, `start` and `abort`: a change file resolved against the live schema
/// (`ChangePlan`), its SQL (`ChangeSQL`), and the one transaction of start and of abort, each
/// under `lock_timeout` with retries (`LockTimeoutPolicy.runTransaction`, the machinery
/// `migrate run` uses).
public struct ChangeManager: Sendable {
    /// The schema with the queue, the jobs and `change_records`.
    public var schema: QueueSchema
    public var lockPolicy: LockTimeoutPolicy

    public init(schemaName: String = "godwit", lockPolicy: LockTimeoutPolicy = .default) {
        self.schema = QueueSchema.withChanges(name: schemaName)
        self.lockPolicy = lockPolicy
    }

    /// The job kind of a change's finish job (verify, build indexes, validate, ready).
    public static let finishKind = JobKind.change

    // MARK: Plan

    /// The change resolved and its phases as the SQL each would send. Runs nothing: the
    /// resolution reads the catalog and parses in a read-only transaction that is rolled back.
    public func plan(text: String, file: String, on connection: Connection) async throws -> String {
        let definition = try ChangeDefinition.parse(text, file: file)
        let plan: ChangePlan
        do {
            plan = try await connection.withTransaction { conn in
                try await conn.execute("SET TRANSACTION READ ONLY")
                // Parsing takes ACCESS SHARE on the tables: never queue behind a long lock.
                if let timeout = lockPolicy.lockTimeout {
                    try await conn.query(
                        "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
                        ["\(max(1, Int64(timeout.milliseconds.rounded(.up))))ms"])
                }
                // Everything the resolution parsed goes with the transaction; nothing was written.
                return try await ChangePlan.resolve(definition, file: file, schema: schema, on: conn)
            }
        } catch let error as PostgresError where error.sqlState == .lockNotAvailable {
            throw ChangeError(
                .lockTimeout, file: file, line: definition.tableLine,
                "plan could not read \(definition.table) within \(lockPolicy.lockTimeout?.roundedDescription ?? "its lock timeout"): another session holds a lock on it; try again"
            )
        } catch let error as PostgresError where ChangeRights.isRefusal(error) {
            throw ChangeError(
                .notPermitted, file: file, line: definition.tableLine,
                await ChangeRights.missing(error, action: "plan changes", schema: schema, on: connection))
        }
        return Self.describe(plan, lockPolicy: lockPolicy)
    }

    /// The phases of `plan` as SQL, with a comment line before each.
    static func describe(_ plan: ChangePlan, lockPolicy: LockTimeoutPolicy) -> String {
        let sql = ChangeSQL(plan)
        let statements = sql.statements
        let lock =
            lockPolicy.lockTimeout.map { "lock_timeout \($0.roundedDescription), \(lockPolicy.retries) retries" }
            ?? "no lock_timeout"
        var text = """
            -- change \(plan.definition.name) on \(plan.qualifiedTable), key \(quoteIdentifier(plan.key)): checked against the live schema; nothing was run.

            -- start: one transaction (\(lock))

            """
        text += sql.start.map { $0 + ";\n" }.joined()
        text += "-- start also records the change and enqueues the finish job"
        if plan.syncs {
            text +=
                sql.writesThroughTrigger
                ? " and the backfill, a batched job whose no-op write the sync trigger completes:\n\(sql.backfill);\n"
                : " and the backfill, a batched job that fills the new side itself; its statement sets \(ChangeSQL.backfillSetting) for its transaction, so the sync trigger skips its writes:\n\(sql.backfill);\n"
            text += "\n-- verify, after the backfill: rows whose two sides disagree (ready only at zero)\n"
            text += "SELECT count(*) FROM \(statements.table) WHERE \(statements.disagrees);\n"
        } else {
            text += " (nothing to backfill).\n"
        }
        if !statements.indexes.isEmpty || !statements.uniques.isEmpty {
            text += "\n-- indexes, built concurrently by the worker\n"
            text += statements.indexes.map { $0.create + ";\n" }.joined()
            text += statements.uniques.map { $0.create + ";\n" + $0.attach + ";\n" }.joined()
        }
        if !statements.validate.isEmpty {
            text += "\n-- validation, by the worker\n" + statements.validate.map { $0 + ";\n" }.joined()
        }
        text += "\n-- complete: one transaction (\(lock)), once no reader of a dropped column remains\n"
        text += statements.complete.map { $0 + ";\n" }.joined()
        text += "\n-- abort: one transaction (\(lock))\n"
        text += statements.abort.map { $0 + ";\n" }.joined()
        return text
    }

    // MARK: Start

    /// What `start` made.
    public struct Started: Sendable, Equatable {
        public var name: String
        public var phase: ChangePhase
        /// The backfill's batched job (nil when nothing syncs) and the finish job.
        public var backfillJob: Int64?
        public var finishJob: Int64
    }

    /// Expands: in one transaction under `lock_timeout` with retries, adds the new columns,
    /// the sync function and trigger and the NOT VALID constraints, enqueues the backfill (a
    /// batched job, from this session, so it runs as this login) and the finish job, and
    /// records the change. The schema is installed first. `retrying` hears of each retry;
    /// `warn` of what the backfill's enqueue accepts but finds worth a look.
    public func start(
        text: String, file: String, on connection: Connection,
        retrying: (String) -> Void = { _ in }, warn: (String) -> Void = { _ in }
    ) async throws -> Started {
        let definition = try ChangeDefinition.parse(text, file: file)
        do {
            try await installIfNeeded(on: connection, file: file, line: definition.tableLine)
            return try await lockPolicy.runTransaction(on: connection, retrying: retrying) { conn in
                let plan = try await ChangePlan.resolve(definition, file: file, schema: schema, on: conn)
                let sql = ChangeSQL(plan)
                for statement in sql.start {
                    do {
                        try await conn.execute(statement)
                    } catch let error as PostgresError where error.sqlState != .lockNotAvailable {
                        throw ChangeError(
                            .refused, file: file, line: definition.tableLine,
                            "start failed, nothing was applied: \(error.message)")
                    }
                }
                var backfillJob: Int64?
                if plan.syncs {
                    let job = try backfillDefinition(plan, sql: sql, file: file)
                    do {
                        backfillJob = try await job.enqueue(file: file, schema: schema, on: conn, warn: warn)
                    } catch let error as BatchedJobError {
                        throw ChangeError(
                            .refused, file: file, line: definition.tableLine,
                            "the backfill cannot be enqueued: \(error.message)")
                    }
                }
                let finishJob = try await conn.query(
                    """
                    SELECT \(schema.qualified("enqueue"))($1, $2, $3::jsonb, 0,
                        CASE WHEN $4::boolean THEN 'infinity'::timestamptz ELSE now() END) AS id
                    """,
                    [Self.finishKind.rawValue, definition.name, try Self.json(["change": definition.name]), plan.syncs]
                ).first!.int64("id")
                let phase: ChangePhase = plan.syncs ? .backfilling : .verifying
                try await conn.query(
                    """
                    INSERT INTO \(schema.qualified("change_records"))
                        (name, table_name, table_oid, key_column, phase, file, source, definition, statements,
                         backfill_job_id, finish_job_id)
                    VALUES ($1, $2, $3::oid, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11)
                    """,
                    [
                        definition.name, plan.qualifiedTable, plan.tableOID, plan.key, phase.rawValue, file,
                        text, try Self.json(StoredDefinition(plan), snakeCase: true), try Self.json(sql.statements),
                        backfillJob, finishJob,
                    ])
                return Started(name: definition.name, phase: phase, backfillJob: backfillJob, finishJob: finishJob)
            }
        } catch let exhausted as LockTimeoutPolicy.Exhausted {
            throw ChangeError(
                .lockTimeout, file: file, line: definition.tableLine,
                "start of change \(definition.name) \(exhausted.message); nothing was applied")
        } catch let error as PostgresError where ChangeRights.isRefusal(error) {
            // The table's own rights are the start statements' (refused above, naming them);
            // this is Godwit's schema refusing the role: its records, its jobs.
            throw ChangeError(
                .notPermitted, file: file, line: definition.tableLine,
                await ChangeRights.missing(error, action: "start changes", schema: schema, on: connection)
                    + "; nothing was applied")
        }
    }

    /// The backfill as a batched job: the change's table and key, its statement, and the
    /// change file's batched directives, read by the batched job's own parser (its errors name
    /// the change file's line).
    func backfillDefinition(_ plan: ChangePlan, sql: ChangeSQL, file: String) throws -> BatchedJobDefinition {
        var lines = [
            BatchedJobDefinition.marker, "-- name: \(plan.definition.name)", "-- table: \(plan.qualifiedTable)",
            "-- key: \(plan.key)",
        ]
        var origin: [Int: Int] = [:]
        for (name, setting) in plan.definition.backfill.sorted(by: { $0.value.line < $1.value.line }) {
            lines.append("-- \(name): \(setting.value)")
            origin[lines.count] = setting.line
        }
        lines.append(sql.backfill)
        do {
            return try BatchedJobDefinition.parse(lines.joined(separator: "\n"), file: file)
        } catch let error as BatchedJobError {
            throw ChangeError(
                .refused, file: file, line: error.line.flatMap { origin[$0] } ?? plan.definition.tableLine,
                error.message)
        }
    }

    // MARK: Abort

    /// Cancels the change's jobs and runs its `abort` statements (trigger, function,
    /// constraints, indexes, new columns, all `IF EXISTS`) in one transaction under
    /// `lock_timeout` with retries; the change ends `aborted`. Refused once complete has begun.
    public func abort(name: String, on connection: Connection, retrying: (String) -> Void = { _ in }) async throws {
        let records = schema.qualified("change_records")
        do {
            try await installIfNeeded(on: connection)
            try await ChangeRights.checkStarter(of: name, command: "abort", schema: schema, on: connection)
            try await lockPolicy.runTransaction(on: connection, retrying: retrying) { conn in
                try await conn.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
                guard
                    let row = try await conn.query(
                        """
                        SELECT phase, backfill_job_id, finish_job_id, statements->'abort' AS abort
                        FROM \(records) WHERE name = $1 FOR UPDATE
                        """, [name]
                    ).first
                else { throw ChangeError(.notFound, "there is no change named \(name)") }
                let phase = ChangePhase(rawValue: try row.string("phase"))
                switch phase {
                case .completing, .completed:
                    throw ChangeError(
                        .wrongPhase,
                        "change \(name) is \(phase!.rawValue): abort undoes a change before complete, not after")
                case .aborted:
                    throw ChangeError(.wrongPhase, "change \(name) is already aborted")
                default: break
                }
                // The change's own jobs only: grant_change gives no cancel of any job.
                if row["backfill_job_id"] != nil || row["finish_job_id"] != nil {
                    try await conn.query("SELECT \(schema.qualified("change_cancel_jobs"))($1)", [name])
                }
                let statements = try JSONDecoder().decode([String].self, from: Data(try row.string("abort").utf8))
                for statement in statements { try await conn.execute(statement) }
                try await conn.query(
                    """
                    UPDATE \(records) SET phase = 'aborted', aborted_at = now(), updated_at = now(), error = NULL
                    WHERE name = $1
                    """, [name])
            }
        } catch let exhausted as LockTimeoutPolicy.Exhausted {
            throw ChangeError(.lockTimeout, "abort of change \(name) \(exhausted.message); nothing was changed")
        } catch let error as PostgresError where ChangeRights.isRefusal(error) {
            throw ChangeError(
                .notPermitted,
                "change \(name): "
                    + (await ChangeRights.missing(error, action: "abort changes", schema: schema, on: connection))
                    + "; nothing was changed")
        }
    }

    /// Installs (or upgrades) the schema with `change_records` unless it is current, so that a
    /// role without CREATE on the database (one granted `grant_change`) can start a change once
    /// the schema is there. When it is missing or older and this role may not install it, one
    /// line says who can. A role that may not read the schema at all (no grant) gets the
    /// server's refusal, which the command names the grant for.
    private func installIfNeeded(on connection: Connection, file: String? = nil, line: Int? = nil) async throws {
        if try await schema.isCurrent(on: connection) { return }
        do {
            try await schema.install(on: connection)
        } catch let error as PostgresError where ChangeRights.isRefusal(error) {
            var role = "this role"
            if let row = try? await connection.query("SELECT current_user::text AS r").first, let name = row["r"] {
                role = "role \(name)"
            }
            throw ChangeError(
                .notPermitted, file: file, line: line,
                "schema \(schema.quoted) is not installed or is older than this godwit, and \(role) may not install or upgrade it: start `godwit worker` once against this database (it installs and upgrades the schema), or run this as the schema's owner; nothing was applied; the server said: \(error.message)"
            )
        }
    }

    /// `value` as JSON text, keys sorted; with `snakeCase`, its property names in snake case.
    static func json<T: Encodable>(_ value: T, snakeCase: Bool = false) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        if snakeCase { encoder.keyEncodingStrategy = .convertToSnakeCase }
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// `change_records.definition`: the directives as parsed, and the columns the change writes and
/// reads (what the overlap check of a later change compares).
struct StoredDefinition: Encodable {
    struct Added: Encodable {
        var name: String
        var type: String
        var expression: String
    }
    struct Dropped: Encodable {
        var name: String
        var expression: String?
    }
    struct ForeignKey: Encodable {
        var column: String
        var references: String
        var referencedColumn: String
    }
    struct Check: Encodable {
        var name: String
        var expression: String
    }

    var table: String
    var key: String
    var added: [Added]
    var dropped: [Dropped]
    var notNull: [String]
    var checks: [Check]
    var foreignKeys: [ForeignKey]
    var uniques: [[String]]
    var indexes: [[String]]
    var oldSide: [String]
    var writes: [String]
    var reads: [String]
    var backfill: [String: String]

    init(_ plan: ChangePlan) {
        let d = plan.definition
        table = plan.qualifiedTable
        key = plan.key
        added = d.addedColumns.map { Added(name: $0.name, type: $0.type, expression: $0.expression) }
        dropped = d.droppedColumns.map { Dropped(name: $0.name, expression: $0.expression) }
        notNull = d.notNull.map { $0.names[0] }
        checks = d.checks.map { Check(name: $0.name, expression: $0.expression) }
        foreignKeys = plan.foreignKeys.map {
            ForeignKey(column: $0.column, references: $0.referencedTable, referencedColumn: $0.referencedColumn)
        }
        uniques = d.uniques.map(\.names)
        indexes = d.indexes.map(\.names)
        oldSide = plan.oldSide
        writes = plan.writes
        reads = plan.reads
        backfill = d.backfill.mapValues(\.value)
    }
}
