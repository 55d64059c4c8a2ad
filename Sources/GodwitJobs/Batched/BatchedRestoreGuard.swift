import GodwitBackups
import GodwitPostgres
import GodwitQueue

/// The restore guard of batched jobs: a batched job keeps its checkpoint in Godwit's schema,
/// which a backup leaves out, so a restore rewinds its table but not where it would resume.
///
/// A job that goes on by itself (running, or queued with a checkpoint) makes a restore refuse,
/// or is paused first; every job with a checkpoint on the replaced schemas is named afterwards,
/// to be rerun from the start. The CLI hands this to `BackupManager`.
public struct BatchedRestoreGuard: RestoreGuard {
    public let schema: QueueSchema

    public init(schema: QueueSchema = QueueSchema()) {
        self.schema = schema
    }

    /// Every batched job running or with a checkpoint on the replaced schemas; empty when the
    /// queue's and the batched jobs' tables are not installed.
    public func checkpoints(on connection: Connection) async throws -> [BatchedCheckpoint] {
        guard try await isInstalled(on: connection) else { return [] }
        return try await connection.query(Self.query(godwitSchema: schema.name, schemaName: "$1"), [schema.name])
            .rows.map { row in
                BatchedCheckpoint(
                    id: try row.int64("id"), name: try row.string("name"), state: try row.string("state"),
                    table: try row.string("table_name"), batchesDone: try row.int64("batches_done"),
                    rowsDone: try row.int64("rows_done"), cursor: row["cursor"],
                    parent: try row["parent_id"].map {
                        BatchedCheckpoint.Parent(
                            id: Int64($0) ?? 0, name: try row.string("parent_name"),
                            state: try row.string("parent_state"))
                    })
            }
    }

    /// `<schema>.pause(id)`, the control a person would use.
    public func pause(job id: Int64, on connection: Connection) async throws {
        _ = try await connection.query("SELECT \(schema.quoted).pause($1) AS paused", [id])
    }

    /// The check of `checkpoints`, made again inside the restore's transaction; nil when the
    /// tables are not installed (no job can have started then).
    public func guardStatement(on connection: Connection) async throws -> String? {
        guard try await isInstalled(on: connection) else { return nil }
        return Self.guardStatement(godwitSchema: schema.name)
    }

    /// Whether the jobs and their progress are installed.
    private func isInstalled(on connection: Connection) async throws -> Bool {
        try await connection.query(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS present",
            ["\(schema.quoted).jobs", "\(schema.quoted).job_progress"]
        ).first?.bool("present") == true
    }

    /// The query behind `checkpoints(on:)`: every batched job that is running or has a
    /// checkpoint, whose table's schema is one a restore replaces (all but the system's and
    /// Godwit's own; a table named without a schema counts too). `schemaName` is the SQL for
    /// Godwit's schema name as a string (`$1`, or a literal where no parameter can be passed).
    /// Written without `:` so that psql runs it as it is.
    ///
    /// The payload's `table` is `format('%I.%I', ...)`: the schema is the part before the
    /// first dot outside double quotes, unquoted.
    static func query(godwitSchema: String, schemaName: String) -> String {
        let q = quoteIdentifier(godwitSchema)
        return """
            SELECT j.id, j.name, CAST(j.state AS text) AS state, coalesce(j.payload->>'table', '') AS table_name,
                coalesce(p.batches_done, 0) AS batches_done, coalesce(p.rows_done, 0) AS rows_done, p.cursor,
                j.parent_id, par.name AS parent_name, CAST(par.state AS text) AS parent_state
            FROM \(q).jobs j LEFT JOIN \(q).job_progress p ON p.job_id = j.id
            LEFT JOIN \(q).jobs par ON par.id = j.parent_id
            CROSS JOIN LATERAL (
                SELECT substring(j.payload->>'table' FROM '^("([^"]|"")+"|[^."]+)\\.') AS part) s
            CROSS JOIN LATERAL (
                SELECT CASE WHEN s.part LIKE '"%' THEN replace(substr(s.part, 2, length(s.part) - 2), '""', '"')
                    ELSE s.part END AS nsp) n
            WHERE j.kind = 'batched'
              AND (j.state = 'running' OR coalesce(p.batches_done, 0) > 0 OR p.cursor IS NOT NULL)
              AND (n.nsp IS NULL OR (n.nsp NOT IN ('pg_catalog', 'information_schema', \(schemaName))
                   AND n.nsp NOT LIKE 'pg\\_toast%' AND n.nsp NOT LIKE 'pg\\_temp\\_%'))
            ORDER BY j.id
            """
    }

    /// A statement for the restore's own transaction, run after the schemas are dropped: it
    /// fails, and so rolls the whole restore back, if a job started going on by itself since
    /// the check made before the restore. Once the schemas are dropped the restore holds an
    /// ACCESS EXCLUSIVE lock on every table in them until it commits, so no batch can commit a
    /// checkpoint on them after this statement and before the restored data is in place.
    static func guardStatement(godwitSchema: String) -> String {
        let checkpoints = query(godwitSchema: godwitSchema, schemaName: quoteLiteral(godwitSchema))
        return """
            DO $godwit_guard$ DECLARE blocking text; BEGIN
            SELECT string_agg(format('job %s (%s, %s)', c.id, c.name, c.state), ', ') INTO blocking
            FROM (\(checkpoints)) c
            WHERE c.state = 'running' OR (c.state = 'queued' AND (c.batches_done > 0 OR c.cursor IS NOT NULL));
            IF blocking IS NOT NULL THEN
                RAISE EXCEPTION 'restore refused: batched % started on the replaced schemas during the restore; pause or cancel them and run it again', blocking;
            END IF;
            END $godwit_guard$;
            """
    }
}
