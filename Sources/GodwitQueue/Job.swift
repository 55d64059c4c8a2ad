import GodwitPostgres

/// The states of a job, as in the `job_state` enum.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, paused, succeeded, failed, cancelled

    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A job this worker has claimed: what the handler needs, and the lease that fences its writes.
public struct ClaimedJob: Sendable {
    public var id: Int64
    public var kind: String
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
        id: Int64, kind: String, name: String, payload: String, attempt: Int, maxAttempts: Int, leaseToken: Int64,
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
    public var kind: String
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

    enum CodingKeys: String, CodingKey {
        case id, kind, name, state, priority, attempts, percent, payload, result
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
    }

    init(row: PostgresRow) throws {
        id = try row.int64("id")
        kind = try row.string("kind")
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
    }
}

extension JobState {
    /// A state read from the database; one this build does not know is an error naming the
    /// job, never silently another state.
    init(text: String, job id: Int64) throws {
        guard let state = JobState(rawValue: text) else {
            throw PostgresError(
                code: .client, message: "job \(id) is in state \"\(text)\", which this godwit does not know: upgrade godwit")
        }
        self = state
    }
}

/// One reading of `<schema>.progress`, as `godwit job watch` shows it.
public struct JobProgress: Sendable {
    public var name: String
    public var state: String
    public var percent: Double
    public var rowsDone: Int64?
    public var rowsTotal: Int64?
    public var rowsPerSecond: Double?
    public var etaSeconds: Double?
    public var batchSize: Int?
    public var holdReason: String?
    public var lastError: String?

    init(row: PostgresRow) {
        name = row["name"] ?? ""
        state = row["state"] ?? "?"
        percent = row["percent"].flatMap(Double.init) ?? 0
        rowsDone = row["rows_done"].flatMap { Int64($0) }
        rowsTotal = row["rows_total"].flatMap { Int64($0) }
        rowsPerSecond = row["rate"].flatMap(Double.init)
        etaSeconds = row["eta"].flatMap(Double.init)
        batchSize = row["batch_size"].flatMap { Int($0) }
        holdReason = row["hold_reason"]
        lastError = row["last_error"]
    }

    public var finished: Bool { ["succeeded", "failed", "cancelled"].contains(state) }
}
