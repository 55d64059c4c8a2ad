import GodwitPostgres
import GodwitQueue

/// The worker's reads and writes of a batched job's progress row (`<schema>.job_progress`),
/// over its own connections. The checkpoint itself (cursor and counts) is written by
/// `<schema>.batch_checkpoint`, in each batch's own transaction.
struct BatchProgress: Sendable {
    let schema: QueueSchema

    /// `<schema>.job_progress`.
    var table: String { schema.qualified("job_progress") }

    /// Where an attempt starts: the progress row as the last committed batch left it.
    struct Checkpoint: Sendable {
        /// The last key done; nil before the first batch (or a shard's lower bound).
        var cursor: String?
        var rowsDone: Int64
        var rowsChanged: Int64
        var batchesDone: Int64
        /// The size the governor last chose; nil before any.
        var batchSize: Int?
        var rowsTotal: Int64?
    }

    /// The job's checkpoint, making its progress row first when it has none: a job enqueued by
    /// a plain INSERT has no progress row yet.
    func start(job: Int64, payload: BatchedJob.Payload, on connection: Connection) async throws -> Checkpoint {
        try await connection.query(
            """
            INSERT INTO \(table) (job_id, batch_size, rows_total, cursor)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING
            """,
            [job, payload.batchSize, payload.rowsTotal, payload.lower])
        let row = try await connection.query(
            """
            SELECT cursor, rows_done, rows_changed, batches_done, batch_size, rows_total
            FROM \(table) WHERE job_id = $1
            """, [job]
        ).first!
        return Checkpoint(
            cursor: row["cursor"], rowsDone: try row.int64("rows_done"), rowsChanged: try row.int64("rows_changed"),
            batchesDone: try row.int64("batches_done"), batchSize: row["batch_size"].flatMap { Int($0) },
            rowsTotal: row["rows_total"].flatMap { Int64($0) })
    }

    /// Why the next batch has its size, in words (`size_reason`).
    func setSizeReason(_ text: String, job: Int64, on connection: Connection) async throws {
        try await connection.query("UPDATE \(table) SET size_reason = $2 WHERE job_id = $1", [job, text])
    }

    /// Why the job holds (`hold_reason`), or nil when it goes on.
    func setHoldReason(_ reason: String?, job: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(table) SET hold_reason = $2, updated_at = now() WHERE job_id = $1", [job, reason])
    }
}
