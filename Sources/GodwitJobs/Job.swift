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

    public init(
        id: Int64, kind: String, name: String, payload: String, attempt: Int, maxAttempts: Int, leaseToken: Int64
    ) {
        self.id = id
        self.kind = kind
        self.name = name
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseToken = leaseToken
    }
}

/// One row of `godwit job list` / `show`.
public struct JobRecord: Sendable, Codable {
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
    public var percent: String?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    public var payload: String
    public var result: String?

    init(row: PostgresRow) throws {
        id = try row.int64("id")
        kind = try row.string("kind")
        name = try row.string("name")
        state = JobState(rawValue: try row.string("state")) ?? .failed
        priority = try row.int("priority")
        attempts = try row.int("attempts")
        maxAttempts = try row.int("max_attempts")
        runAt = try row.string("run_at")
        lastError = row["last_error"]
        workerID = row["worker_id"]
        heartbeatAt = row["heartbeat_at"]
        percent = row["percent"]
        createdAt = try row.string("created_at")
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        payload = try row.string("payload")
        result = row["result"]
    }
}
