import GodwitPostgres

/// A batched job that has a checkpoint (or is running) on a table in a schema a restore
/// replaces.
///
/// Godwit's schema is not in a backup, so a restore rewinds the table but not the job's
/// checkpoint: resuming or retrying the job afterwards continues after keys the restore brought
/// back unprocessed, and it "succeeds" with those rows untouched. A job that goes on by itself
/// (running, or queued with a checkpoint) makes a restore refuse; every other one is reported
/// after the restore, to be rerun from the start.
public struct BatchedCheckpoint: Sendable, Equatable, CustomStringConvertible {
    public var id: Int64
    public var name: String
    /// The job's state: `running`, `queued`, `paused`, `failed`, `cancelled` or `succeeded`.
    public var state: String
    /// The job's table as its payload names it (schema-qualified, quoted as needed).
    public var table: String
    public var batchesDone: Int64
    public var rowsDone: Int64
    /// The last key of the last committed batch, where the job would resume.
    public var cursor: String?
    /// For a shard of a parallel job: the parallel job's id, name and state, which is what a
    /// person cancels and enqueues again.
    public var parent: Parent?

    public struct Parent: Sendable, Equatable, Hashable {
        public var id: Int64
        public var name: String
        public var state: String
    }

    public init(
        id: Int64, name: String, state: String, table: String, batchesDone: Int64, rowsDone: Int64, cursor: String?,
        parent: Parent? = nil
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.table = table
        self.batchesDone = batchesDone
        self.rowsDone = rowsDone
        self.cursor = cursor
        self.parent = parent
    }

    /// Whether the job goes on without anyone asking: it is running, or queued with a
    /// checkpoint (a worker claims it and resumes there). A restore refuses while one exists.
    public var continuesByItself: Bool { state == "running" || (state == "queued" && hasCheckpoint) }

    var hasCheckpoint: Bool { batchesDone > 0 || cursor != nil }

    /// `job 12 (backfill_titles, running)`.
    public var label: String { "job \(id) (\(name), \(state))" }

    /// `job 12 (backfill_titles, paused) on public.items: 40 batches, 4000 rows done, checkpoint at key 4000`.
    public var description: String {
        "\(label) on \(table): \(batchesDone) batches, \(rowsDone) rows done"
            + (cursor.map { ", checkpoint at key \($0)" } ?? "")
    }

    /// The query behind `BackupManager.batchedCheckpoints(on:)`: every batched job that is
    /// running or has a checkpoint, whose table's schema is one a restore replaces (all but
    /// the system's and Godwit's own; a table named without a schema counts too). `schemaName`
    /// is the SQL for Godwit's schema name as a string (`$1`, or a literal where no parameter
    /// can be passed). Written without `:` so that psql runs it as it is.
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

/// What a restore did to the job queue.
public struct RestoreOutcome: Sendable, Equatable {
    /// The batched jobs the restore paused before it began (`pauseJobs`), as they were after.
    public var paused: [BatchedCheckpoint]
    /// Every batched job on the replaced schemas with a checkpoint, whatever its state: the
    /// checkpoint describes the data as it was before the restore, so resuming or retrying the
    /// job would skip rows. Each is to be rerun from the start.
    public var staleCheckpoints: [BatchedCheckpoint]
}
