import GodwitPostgres

/// One job as every reader sees it: `godwit job list`, `show` and `watch`, the dashboard's
/// list and job page, and the metrics. There is one row type so that one `SELECT`
/// (`JobQueue.recordSelect`) says what a job is, and no reader copies another's fields.
///
/// As JSON (`job list --format json`, `job show`), `payload` and `result` are JSON values,
/// `percent` a number and timestamps ISO 8601; the fields that only the dashboard and the
/// watchers use (the ages, the lock waits, the cursor) stay out of it.
///
/// `payload`, `result` and `lastErrorDetail` are nil for a reader that is neither the job's
/// enqueuer (or a member of its role), a controller nor the queue's owner: they may hold secrets
/// (an sql script, migration files, backup paths, row values in an error's DETAIL). They are
/// also nil when the read left them out (`details: false`), as the dashboard's list and
/// `job watch` do: a payload can be large, and those readers refresh every second or two.
///
/// The batched part (rows, rate, ETA, batch size and why, hold, cursor, lock waits) comes
/// through the queue's `<schema>.progress` view, which reads the batched owner's
/// `job_progress` (a parallel job's: its shards', summed). It is carried here, optional, rather
/// than read by a second reader of the batched owner's, because the view already joins it to
/// the job's row: one read, and the list, the job page and the metrics see one consistent
/// reading. Nil (or zero) for other kinds and before the first batch. The history of batches
/// is not part of a job's row: the batched owner keeps it.
public struct JobRecord: Sendable, Encodable {
    public var id: Int64
    public var kind: JobKind
    public var name: String
    public var state: JobState
    public var priority: Int
    public var attempts: Int
    public var maxAttempts: Int
    public var runAt: String
    public var lastError: String?
    public var workerID: String?
    public var heartbeatAt: String?
    /// 100 once succeeded; for a batched job, rows done of rows expected; else 0.
    public var percent: Double
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    public var payload: JSONValue?
    public var result: JSONValue?
    public var lastErrorDetail: String?
    public var enqueuedBy: String
    /// The pause or cancel requested of the job while it runs.
    public var control: JobControl?
    /// The parallel job this one is a shard of.
    public var parentID: Int64?
    /// Whether the job runs but its worker (of some running shard, for a parallel job) has not
    /// been seen for `<schema>.stale_after()`: it is probably dead, and the job's numbers are
    /// frozen until its lease expires and a rescue requeues it.
    public var stale: Bool
    /// When the job's worker was last seen (its heartbeat), while the job runs.
    public var workerSeenAt: String?
    /// `stale: worker W not seen for 42 s`, when `stale`.
    public var staleMarker: String?
    /// Each attempt's error, oldest first (`<schema>.job_errors`); filled by `job show` only.
    public var errors: [JobErrorRecord]?

    // The batched part.

    /// A batched job's latest batch size (a parallel job's: its running shards', summed), and
    /// why the governor chose it, in the worker's words (`progress.size_reason`; a parallel
    /// job's: its running shards' reasons, distinct).
    public var batchSize: Int?
    public var sizeReason: String?
    public var rowsDone: Int64?
    public var rowsTotal: Int64?
    public var rowsPerSecond: Double?
    public var etaSeconds: Double?
    /// Why the job holds (replication lag, autovacuum, a health query...), while it does.
    public var holdReason: String?
    /// The batched job's checkpoint (the last key done), which readers may see.
    public var cursor: String?
    /// Sessions its batches made wait on their locks, and the longest wait (the governor's measure).
    public var lockWaits: Int64
    public var lockWaitMSMax: Double

    // Ages, from the database's `now()`, so that "3 min ago" does not depend on the reader's clock.

    public var createdAgo: Double
    public var startedAgo: Double?
    public var finishedAgo: Double?
    /// How long the job ran: to its finish, or until now while it runs.
    public var ranSeconds: Double?
    /// Seconds since the job's worker was last seen (running jobs only).
    public var workerSeenAgo: Double?

    enum CodingKeys: String, CodingKey {
        case id, kind, name, state, priority, attempts, percent, payload, result, stale, errors
        case workerSeenAt = "worker_seen_at"
        case staleMarker = "stale_marker"
        case maxAttempts = "max_attempts"
        case runAt = "run_at"
        case lastError = "last_error"
        case lastErrorDetail = "last_error_detail"
        case workerID = "worker_id"
        case heartbeatAt = "heartbeat_at"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case enqueuedBy = "enqueued_by"
        case batchSize = "batch_size"
        case sizeReason = "size_reason"
    }

    /// A row of `JobQueue.recordSelect`.
    init(row: PostgresRow) throws {
        id = try row.int64("id")
        kind = JobKind(try row.string("kind"))
        name = try row.string("name")
        state = try JobState(text: try row.string("state"), job: id)
        priority = try row.int("priority")
        attempts = try row.int("attempts")
        maxAttempts = try row.int("max_attempts")
        runAt = try row.string("run_at")
        lastError = row["last_error"]
        workerID = row["worker_id"]
        heartbeatAt = row["heartbeat_at"]
        percent = row["percent"].flatMap(Double.init) ?? 0
        createdAt = try row.string("created_at")
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        payload = row["payload"].map(JSONValue.init(parsingOrKeeping:))
        result = row["result"].map(JSONValue.init(parsingOrKeeping:))
        lastErrorDetail = row["last_error_detail"]
        enqueuedBy = try row.string("enqueued_by")
        control = try JobControl(column: row["control"], job: id)
        parentID = row["parent_id"].flatMap { Int64($0) }
        stale = (try? row.bool("stale")) ?? false
        workerSeenAt = row["worker_seen_at"]
        staleMarker =
            stale
            ? JobRecord.staleMarker(
                worker: row["stale_worker"], unseenSeconds: row["unseen_seconds"].flatMap(Double.init))
            : nil
        batchSize = row["batch_size"].flatMap { Int($0) }
        sizeReason = row["size_reason"]
        rowsDone = row["rows_done"].flatMap { Int64($0) }
        rowsTotal = row["rows_total"].flatMap { Int64($0) }
        rowsPerSecond = row["rows_per_second"].flatMap(Double.init)
        etaSeconds = row["eta"].flatMap(Double.init)
        holdReason = row["hold_reason"]
        cursor = row["cursor"]
        lockWaits = row["lock_waits"].flatMap { Int64($0) } ?? 0
        lockWaitMSMax = row["lock_wait_ms_max"].flatMap(Double.init) ?? 0
        createdAgo = row["created_ago"].flatMap(Double.init) ?? 0
        startedAgo = row["started_ago"].flatMap(Double.init)
        finishedAgo = row["finished_ago"].flatMap(Double.init)
        ranSeconds = row["ran_seconds"].flatMap(Double.init)
        workerSeenAgo = row["worker_seen_ago"].flatMap(Double.init)
    }

    /// Whether the job has ended (see `JobState.finished`).
    public var finished: Bool { state.isFinished }

    /// `stale: worker W not seen for 42 s`: what `job list`, `job show` and `job watch` say of a
    /// running job whose worker has gone quiet.
    public static func staleMarker(worker: String?, unseenSeconds: Double?) -> String {
        let seconds = unseenSeconds.map { " for \(Int($0.rounded())) s" } ?? ""
        return "stale: worker \(worker ?? "(unknown)") not seen\(seconds)"
    }
}
