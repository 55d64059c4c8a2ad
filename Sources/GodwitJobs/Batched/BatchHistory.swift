import GodwitPostgres
import GodwitQueue

/// Batched jobs' batch history (`<schema>.batches`, the jobs part's table): the only reader and
/// writer of it outside the batch's own transaction, where `<schema>.batch_checkpoint` adds
/// each committed batch. The worker records failed attempts and trims the history; the
/// dashboard and `/metrics` read it (`grant_read` is enough).
public struct BatchHistory: Sendable {
    public let schema: QueueSchema

    public init(schema: QueueSchema) {
        self.schema = schema
    }

    /// `<schema>.batches`.
    var table: String { schema.qualified("batches") }

    /// The newest `limit` batches of a job, oldest first.
    public func newest(of job: Int64, limit: Int = 300, on connection: Connection) async throws -> [BatchRecord] {
        try await connection.query(
            """
            SELECT * FROM (
                SELECT id, seq, rows, rows_changed, batch_size, duration_ms, error, lock_waiters,
                    lock_wait_ms::float8 AS lock_wait_ms
                FROM \(table)
                WHERE job_id = $1 ORDER BY id DESC LIMIT $2
            ) b ORDER BY seq, id
            """, [job, limit]
        ).rows.map {
            BatchRecord(
                seq: try $0.int64("seq"), rows: try $0.int("rows"), batchSize: try $0.int("batch_size"),
                durationMS: try $0.double("duration_ms"), error: $0["error"],
                rowsChanged: try $0.int64("rows_changed"), lockWaiters: try $0.int("lock_waiters"),
                lockWaitMS: try $0.double("lock_wait_ms"))
        }
    }

    /// The durations of the newest `perJob` batches of each of `jobs`, in milliseconds.
    public func durations(of jobs: [Int64], perJob: Int = 1000, on connection: Connection) async throws
        -> [(job: Int64, milliseconds: Double)]
    {
        guard !jobs.isEmpty else { return [] }
        return try await connection.query(
            """
            SELECT job_id, duration_ms FROM (
                SELECT job_id, duration_ms, row_number() OVER (PARTITION BY job_id ORDER BY id DESC) AS n
                FROM \(table) WHERE job_id = ANY($1::bigint[])
            ) b WHERE n <= $2
            """, [PostgresArray.literal(jobs.map(String.init)), perJob]
        ).rows.map { (job: try $0.int64("job_id"), milliseconds: try $0.double("duration_ms")) }
    }

    /// Records a failed attempt at batch `seq`: its keys when known, the size it tried, how long
    /// it took and the server's error, with no rows.
    func recordFailure(
        job: Int64, seq: Int64, attempt: Int, first: String?, last: String?, size: Int, duration: Duration,
        error: String, on connection: Connection
    ) async throws {
        let parameters: [any PostgresParameter] = [job, seq, attempt, first, last, size, duration.milliseconds, error]
        try await connection.query(
            """
            INSERT INTO \(table)
                (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms, error)
            VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $7, $8)
            """, parameters)
    }

    /// Deletes the job's batches up to and including `seq`.
    func trim(job: Int64, through seq: Int64, on connection: Connection) async throws {
        try await connection.query("DELETE FROM \(table) WHERE job_id = $1 AND seq <= $2", [job, seq])
    }
}
