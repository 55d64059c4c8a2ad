import GodwitPostgres

/// The SQL of `<schema>.workers`: a worker's own row (written at start, with every heartbeat and
/// at an orderly exit) and the listing `godwit workers` shows.
///
/// A worker that dies says nothing: its row keeps the last heartbeat and no `stopped_at`, which
/// is how `progress.stale` and `godwit workers` tell it from a live one.
public struct WorkerRegistry: Sendable {
    public let schema: QueueSchema

    public init(schema: QueueSchema = QueueSchema()) {
        self.schema = schema
    }

    /// What a worker says about itself at start.
    public struct Registration: Sendable {
        public var id: String
        public var host: String?
        public var pid: Int?
        public var version: String?
        public var concurrency: Int

        public init(id: String, host: String?, pid: Int?, version: String?, concurrency: Int) {
            self.id = id
            self.host = host
            self.pid = pid
            self.version = version
            self.concurrency = concurrency
        }
    }

    /// Inserts the worker's row, or starts it afresh when a worker of the same id ran before.
    public func register(_ worker: Registration, on connection: Connection) async throws {
        try await connection.query(
            """
            INSERT INTO \(schema.workers) (id, host, pid, version, concurrency) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (id) DO UPDATE SET login = session_user, host = EXCLUDED.host, pid = EXCLUDED.pid,
                version = EXCLUDED.version, concurrency = EXCLUDED.concurrency, started_at = now(),
                heartbeat_at = now(), stopped_at = NULL
            """, [worker.id, worker.host, worker.pid, worker.version, worker.concurrency])
    }

    /// One heartbeat. The row is written again when it is missing (housekeeping removed it after
    /// the worker lost the database for a day), so a live worker is always listed.
    public func beat(_ worker: Registration, on connection: Connection) async throws {
        let updated = try await connection.query(
            "UPDATE \(schema.workers) SET heartbeat_at = now(), stopped_at = NULL WHERE id = $1", [worker.id])
        if updated.affectedRows == 0 { try await register(worker, on: connection) }
    }

    /// Marks the worker stopped: an orderly exit.
    public func stopped(_ id: String, on connection: Connection) async throws {
        try await connection.query("UPDATE \(schema.workers) SET stopped_at = now() WHERE id = $1", [id])
    }

    /// Deletes the rows of workers stopped, or not seen, for `age` or more; returns how many.
    @discardableResult
    public func deleteGone(olderThan age: Duration, on connection: Connection) async throws -> Int {
        try await connection.query(
            """
            DELETE FROM \(schema.workers)
            WHERE heartbeat_at < now() - make_interval(secs => $1) OR stopped_at < now() - make_interval(secs => $1)
            """, [age.seconds]
        ).affectedRows ?? 0
    }

    /// Every worker with a row: running ones first, then the newest.
    public func list(on connection: Connection) async throws -> [WorkerRecord] {
        try await connection.query(
            """
            SELECT w.id, w.login::text AS login, w.host, w.pid, w.version, w.concurrency,
                to_json(w.started_at)#>>'{}' AS started_at, to_json(w.heartbeat_at)#>>'{}' AS heartbeat_at,
                to_json(w.stopped_at)#>>'{}' AS stopped_at,
                greatest(0, extract(epoch FROM now() - w.heartbeat_at))::float8 AS unseen_seconds,
                CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                    WHEN w.heartbeat_at < now() - \(schema.staleAfter)() THEN 'stale'
                    ELSE 'running' END AS state,
                (SELECT count(*) FROM \(schema.jobs) j
                 WHERE j.worker_id = w.id AND j.state = 'running') AS running_jobs
            FROM \(schema.workers) w
            ORDER BY w.stopped_at IS NOT NULL, w.started_at DESC, w.id
            """
        ).rows.map(WorkerRecord.init)
    }
}

/// One row of `godwit workers`.
public struct WorkerRecord: Sendable, Codable, Equatable {
    public var id: String
    public var login: String
    public var host: String?
    public var pid: Int?
    public var version: String?
    public var concurrency: Int?
    public var startedAt: String
    public var heartbeatAt: String
    public var stoppedAt: String?
    /// Seconds since the last heartbeat.
    public var unseenSeconds: Double
    /// `running`, `stopped` (an orderly exit) or `stale` (not seen for `stale_after()`: dead,
    /// stopped with SIGSTOP, or cut off from the database).
    public var state: String
    /// Jobs that name this worker and are running.
    public var runningJobs: Int

    enum CodingKeys: String, CodingKey {
        case id, login, host, pid, version, concurrency, state
        case startedAt = "started_at"
        case heartbeatAt = "heartbeat_at"
        case stoppedAt = "stopped_at"
        case unseenSeconds = "unseen_seconds"
        case runningJobs = "running_jobs"
    }

    init(row: PostgresRow) throws {
        id = try row.string("id")
        login = try row.string("login")
        host = row["host"]
        pid = row["pid"].flatMap { Int($0) }
        version = row["version"]
        concurrency = row["concurrency"].flatMap { Int($0) }
        startedAt = try row.string("started_at")
        heartbeatAt = try row.string("heartbeat_at")
        stoppedAt = row["stopped_at"]
        unseenSeconds = try row.double("unseen_seconds")
        state = try row.string("state")
        runningJobs = try row.int("running_jobs")
    }
}
