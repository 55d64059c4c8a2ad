import GodwitPostgres

/// A job this worker has claimed: what the handler needs, and the lease that fences its writes.
public struct ClaimedJob: Sendable {
    public var id: Int64
    public var kind: JobKind
    public var name: String
    /// The payload as JSON text.
    public var payload: String
    /// This attempt's number, from 1.
    public var attempt: Int
    public var maxAttempts: Int
    /// The token of this claim. Every write for the job requires it to be current.
    public var leaseToken: Int64
    /// The role that enqueued the job: the job runs with its rights.
    public var enqueuedBy: String
    /// Seconds from when the job was due (enqueued, or its retry became due) to this claim.
    public var waitedSeconds: Double

    public init(
        id: Int64, kind: JobKind, name: String, payload: String, attempt: Int, maxAttempts: Int, leaseToken: Int64,
        enqueuedBy: String, waitedSeconds: Double = 0
    ) {
        self.enqueuedBy = enqueuedBy
        self.waitedSeconds = waitedSeconds
        self.id = id
        self.kind = kind
        self.name = name
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseToken = leaseToken
    }
}

/// One row of `godwit job list` / `show`. As JSON, `payload` and `result` are JSON values,
/// `percent` a number and timestamps ISO 8601.
///
/// `payload`, `result` and `lastErrorDetail` are nil for a reader that is neither the job's
/// enqueuer (or a member of its role), a controller nor the queue's owner: they may hold secrets
/// (an sql script, migration files, backup paths, row values in an error's DETAIL).
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
    public var percent: Double?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    public var payload: JSONValue?
    public var result: JSONValue?
    public var lastErrorDetail: String?
    public var enqueuedBy: String
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
    /// A batched job's latest batch size (a parallel job's: its running shards', summed), and
    /// why the governor chose it, in the worker's words (`progress.size_reason`); nil before
    /// the first batch and for other kinds.
    public var batchSize: Int?
    public var sizeReason: String?

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
        percent = row["percent"].flatMap(Double.init)
        createdAt = try row.string("created_at")
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        payload = row["payload"].map(JSONValue.init(parsingOrKeeping:))
        result = row["result"].map(JSONValue.init(parsingOrKeeping:))
        lastErrorDetail = row["last_error_detail"]
        enqueuedBy = try row.string("enqueued_by")
        stale = (try? row.bool("stale")) ?? false
        workerSeenAt = row["worker_seen_at"]
        batchSize = row["batch_size"].flatMap { Int($0) }
        sizeReason = row["size_reason"]
        staleMarker =
            stale
            ? JobRecord.staleMarker(worker: row["stale_worker"], unseenSeconds: row["unseen_seconds"].flatMap(Double.init))
            : nil
    }

    /// `stale: worker W not seen for 42 s`: what `job list`, `job show` and `job watch` say of a
    /// running job whose worker has gone quiet.
    public static func staleMarker(worker: String?, unseenSeconds: Double?) -> String {
        let seconds = unseenSeconds.map { " for \(Int($0.rounded())) s" } ?? ""
        return "stale: worker \(worker ?? "(unknown)") not seen\(seconds)"
    }

    /// The SQL columns `init(row:)` reads for the stale marker, given the job as `j` and its
    /// row of `<schema>.progress` as `p`: which running worker of the job was seen longest ago,
    /// and how long ago.
    static func staleColumns(schema: QueueSchema) -> (columns: String, join: String) {
        (
            "p.stale, to_json(p.worker_seen_at)#>>'{}' AS worker_seen_at, sw.stale_worker, "
                + "greatest(0, extract(epoch FROM now() - p.worker_seen_at))::float8 AS unseen_seconds",
            """
            LEFT JOIN LATERAL (
                SELECT r.worker_id AS stale_worker FROM \(schema.jobs) r
                LEFT JOIN \(schema.workers) w ON w.id = r.worker_id
                WHERE p.stale AND r.state = 'running' AND (r.id = j.id OR r.parent_id = j.id)
                ORDER BY CASE WHEN w.stopped_at IS NULL THEN greatest(w.heartbeat_at, r.heartbeat_at)
                    ELSE r.heartbeat_at END NULLS FIRST
                LIMIT 1
            ) sw ON true
            """
        )
    }
}

/// One attempt's error, from `<schema>.job_errors`. The server's DETAIL is left out: it may
/// quote row values, and readers of the queue may not see it (`last_error_detail`).
public struct JobErrorRecord: Sendable, Encodable, Equatable {
    public var attempt: Int
    public var workerID: String?
    public var error: String
    public var at: String

    enum CodingKeys: String, CodingKey {
        case attempt, error, at
        case workerID = "worker_id"
    }

    init(row: PostgresRow) throws {
        attempt = try row.int("attempt")
        workerID = row["worker_id"]
        error = try row.string("error")
        at = try row.string("at")
    }
}

/// One reading of `<schema>.progress`, as `godwit job watch` shows it.
public struct JobProgress: Sendable {
    public var name: String
    /// Nil for a state this build does not know (a newer godwit's): shown as `?`.
    public var state: JobState?
    public var percent: Double
    public var rowsDone: Int64?
    public var rowsTotal: Int64?
    public var rowsPerSecond: Double?
    public var etaSeconds: Double?
    public var batchSize: Int?
    /// Why the governor chose `batchSize`, in the worker's words; nil before the first batch.
    public var sizeReason: String?
    public var holdReason: String?
    public var lastError: String?
    /// `stale: worker W not seen for 42 s` while the job's worker has gone quiet.
    public var staleMarker: String?

    init(row: PostgresRow) {
        name = row["name"] ?? ""
        state = row["state"].flatMap(JobState.init(rawValue:))
        percent = row["percent"].flatMap(Double.init) ?? 0
        rowsDone = row["rows_done"].flatMap { Int64($0) }
        rowsTotal = row["rows_total"].flatMap { Int64($0) }
        rowsPerSecond = row["rate"].flatMap(Double.init)
        etaSeconds = row["eta"].flatMap(Double.init)
        batchSize = row["batch_size"].flatMap { Int($0) }
        sizeReason = row["size_reason"]
        holdReason = row["hold_reason"]
        lastError = row["last_error"]
        staleMarker =
            row["stale"] == "t"
            ? JobRecord.staleMarker(worker: row["stale_worker"], unseenSeconds: row["unseen_seconds"].flatMap(Double.init))
            : nil
    }

    public var finished: Bool { state?.isFinished ?? false }
}
