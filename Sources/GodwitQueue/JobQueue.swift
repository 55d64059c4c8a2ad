import GodwitPostgres

/// The queue's one store: the only reader and writer, in Swift, of its tables (`jobs`,
/// `job_errors`, `workers`) and views (`progress`, `job_details`). Here: enqueue, claim, finish,
/// heartbeat and rescue, and the controls; the workers' rows in `JobQueue+Workers.swift`; what
/// `godwit job`, the dashboard and the metrics read in `JobQueue+Reads.swift`, every job as a
/// `JobRecord`.
///
/// Every write a worker makes for a claimed job is fenced by `state = 'running' AND
/// lease_token = $token`, so a worker that was presumed dead and comes back changes nothing.
public struct JobQueue: Sendable {
    public let schema: QueueSchema

    public init(schema: QueueSchema = QueueSchema()) {
        self.schema = schema
    }

    // MARK: Enqueue and control

    /// Adds a job and returns its id. The insert trigger wakes the workers.
    @discardableResult
    public func enqueue(
        kind: JobKind, name: String, payload: String = "{}", priority: Int = 0, maxAttempts: Int = 10,
        runAfter delay: Duration = .zero, on connection: Connection
    ) async throws -> Int64 {
        let row = try await connection.query(
            """
            INSERT INTO \(schema.jobs) (kind, name, payload, priority, max_attempts, run_at)
            VALUES ($1, $2, $3::jsonb, $4, $5, now() + make_interval(secs => $6))
            RETURNING id
            """, [kind, name, payload, priority, maxAttempts, delay.seconds])
        return try row.first!.int64("id")
    }

    /// Calls `<schema>.pause|resume|cancel|retry(id)`; true when it changed something.
    public func control(_ action: JobAction, job id: Int64, on connection: Connection) async throws -> Bool {
        try await connection.query("SELECT \(schema.qualified(action.rawValue))($1) AS changed", [id])
            .first?.bool("changed") ?? false
    }

    /// A job's state and the pause or cancel requested of it while it runs; nil when there is no
    /// such job.
    public func controlState(of id: Int64, on connection: Connection) async throws -> (
        state: JobState, control: JobControl?
    )? {
        guard
            let row = try await connection.query(
                "SELECT state::text AS state, control FROM \(schema.jobs) WHERE id = $1", [id]
            ).first
        else { return nil }
        return (try JobState(text: try row.string("state"), job: id), try JobControl(column: row["control"], job: id))
    }

    // MARK: The worker's side

    /// Claims up to `limit` due jobs, highest priority first, skipping rows other workers
    /// have locked. Each claim counts an attempt and takes a new lease token.
    public func claim(limit: Int, workerID: String, on connection: Connection) async throws -> [ClaimedJob] {
        let result = try await connection.query(
            """
            WITH next AS (
                SELECT id FROM \(schema.jobs)
                WHERE state = 'queued' AND run_at <= now()
                ORDER BY priority DESC, run_at, id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE \(schema.jobs) j
            SET state = 'running', attempts = j.attempts + 1, worker_id = $2, lease_token = j.lease_token + 1,
                heartbeat_at = now(), started_at = coalesce(j.started_at, now()), control = NULL
            FROM next WHERE j.id = next.id
            RETURNING j.id, j.kind, j.name, j.payload::text AS payload, j.attempts, j.max_attempts, j.lease_token,
                j.enqueued_by::text AS enqueued_by, greatest(0, extract(epoch FROM now() - j.run_at))::float8 AS waited
            """, [limit, workerID])
        return try result.rows.map { row in
            ClaimedJob(
                id: try row.int64("id"), kind: JobKind(try row.string("kind")), name: try row.string("name"),
                payload: try row.string("payload"), attempt: try row.int("attempts"),
                maxAttempts: try row.int("max_attempts"), leaseToken: try row.int64("lease_token"),
                enqueuedBy: try row.string("enqueued_by"), waitedSeconds: (try? row.double("waited")) ?? 0)
        }.sorted { $0.id < $1.id }
    }

    /// Records how an attempt ended. Returns false when the lease was lost meanwhile (the job
    /// was rescued and perhaps claimed elsewhere): then nothing was written.
    @discardableResult
    public func finish(_ job: ClaimedJob, _ outcome: JobOutcome, on connection: Connection) async throws -> Bool {
        let fence = "WHERE id = $1 AND state = 'running' AND lease_token = $2"
        let changed: QueryResult
        switch outcome {
        case .recorded:
            return true
        case .succeeded(let result):
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = 'succeeded', result = $3::jsonb, finished_at = now(), heartbeat_at = NULL,
                    control = NULL \(fence)
                """, [job.id, job.leaseToken, result])
        case .failed(let error, let result, let detail):
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = 'failed', last_error = $3, result = coalesce($4::jsonb, result),
                    last_error_detail = $5, finished_at = now(), heartbeat_at = NULL, control = NULL \(fence)
                """, [job.id, job.leaseToken, error, result, detail])
        case .retry(let error, let delay, let detail):
            // A pause or cancel requested since the last heartbeat is honoured, not dropped.
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = CASE control WHEN 'pause' THEN 'paused' WHEN 'cancel' THEN 'cancelled'
                        ELSE 'queued' END::\(schema.jobStateType),
                    finished_at = CASE WHEN control = 'cancel' THEN now() END,
                    last_error = $3, last_error_detail = $5, run_at = now() + make_interval(secs => $4),
                    worker_id = NULL, heartbeat_at = NULL, control = NULL \(fence)
                """, [job.id, job.leaseToken, error, delay.seconds, detail])
        case .paused:
            // A pause is no failed attempt: the claim's count is given back, as for a hand-back.
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = 'paused', attempts = greatest(attempts - 1, 0), worker_id = NULL,
                    heartbeat_at = NULL, control = NULL \(fence)
                """, [job.id, job.leaseToken])
        case .cancelled:
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = 'cancelled', finished_at = now(), worker_id = NULL, heartbeat_at = NULL,
                    control = NULL \(fence)
                """, [job.id, job.leaseToken])
        case .handBack:
            changed = try await connection.query(
                """
                UPDATE \(schema.jobs) SET state = CASE control WHEN 'pause' THEN 'paused' WHEN 'cancel' THEN 'cancelled'
                        ELSE 'queued' END::\(schema.jobStateType),
                    finished_at = CASE WHEN control = 'cancel' THEN now() END,
                    attempts = greatest(attempts - 1, 0), worker_id = NULL, heartbeat_at = NULL, control = NULL,
                    run_at = now() \(fence)
                """, [job.id, job.leaseToken])
        }
        return changed.affectedRows == 1
    }

    /// Records many successes in one statement (fenced per job like `finish`). Returns the ids
    /// recorded; a job missing from the answer had lost its lease.
    public func finishSucceeded(
        _ entries: [(job: ClaimedJob, result: String?)], on connection: Connection
    ) async throws -> Set<Int64> {
        guard !entries.isEmpty else { return [] }
        let result = try await connection.query(
            """
            UPDATE \(schema.jobs) j SET state = 'succeeded', result = r.result::jsonb, finished_at = now(),
                heartbeat_at = NULL, control = NULL
            FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS r(id, token, result)
            WHERE j.id = r.id AND j.lease_token = r.token AND j.state = 'running'
            RETURNING j.id
            """,
            [
                PostgresArray.literal(entries.map { String($0.job.id) }),
                PostgresArray.literal(entries.map { String($0.job.leaseToken) }),
                PostgresArray.literal(entries.map(\.result)),
            ])
        return Set(try result.rows.map { try $0.int64("id") })
    }

    /// Records in the job's `result` what a running attempt has done so far, for `job show`
    /// meanwhile and for a later attempt to carry on from (a migrate job's applied
    /// migrations). Fenced like `finish`: false, and nothing written, once the lease is lost.
    @discardableResult
    public func recordPartialResult(_ job: ClaimedJob, _ result: String, on connection: Connection) async throws
        -> Bool
    {
        let changed = try await connection.query(
            "UPDATE \(schema.jobs) SET result = $3::jsonb WHERE id = $1 AND state = 'running' AND lease_token = $2",
            [job.id, job.leaseToken, result])
        return changed.affectedRows == 1
    }

    /// The `result` that earlier attempts of `job` left (`recordPartialResult`, a failure's),
    /// read under its lease: nil when there is none, or the lease was lost.
    public func recordedResult(of job: ClaimedJob, on connection: Connection) async throws -> String? {
        try await connection.query(
            "SELECT result::text AS r FROM \(schema.jobs) WHERE id = $1 AND state = 'running' AND lease_token = $2",
            [job.id, job.leaseToken]
        ).first?["r"]
    }

    /// What a heartbeat found for one lease.
    public enum LeaseStatus: Sendable, Equatable {
        /// Renewed; with the pause or cancel requested for the job, if any.
        case renewed(control: JobControl?)
        /// Held, but the row is locked right now (a control function is updating it): nothing
        /// to do this time.
        case busy
        /// No longer ours: the job was rescued, finished or changed hands.
        case lost
    }

    /// Renews the leases of running jobs, never waiting on a lock.
    ///
    /// A batch in flight holds its job's row `FOR KEY SHARE`, which a heartbeat's
    /// `FOR NO KEY UPDATE` does not conflict with, so a long batch's lease stays fresh. Rows that
    /// are locked more strongly (a control function's update) are skipped this time.
    public func heartbeat(
        _ leases: [(id: Int64, token: Int64)], on connection: Connection
    ) async throws -> [Int64: LeaseStatus] {
        guard !leases.isEmpty else { return [:] }
        let result = try await connection.query(
            """
            WITH lease AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)),
            held AS (
                SELECT j.id FROM \(schema.jobs) j JOIN lease ON j.id = lease.id AND j.lease_token = lease.token
                WHERE j.state = 'running'
            ),
            lockable AS (
                SELECT j.id FROM \(schema.jobs) j JOIN held ON j.id = held.id
                FOR NO KEY UPDATE OF j SKIP LOCKED
            ),
            beat AS (
                UPDATE \(schema.jobs) j SET heartbeat_at = now() FROM lockable WHERE j.id = lockable.id
                RETURNING j.id, j.control
            )
            SELECT lease.id, beat.id IS NOT NULL AS renewed, beat.control, held.id IS NOT NULL AS held
            FROM lease LEFT JOIN beat ON beat.id = lease.id LEFT JOIN held ON held.id = lease.id
            """,
            [
                PostgresArray.literal(leases.map { String($0.id) }),
                PostgresArray.literal(leases.map { String($0.token) }),
            ])
        var answer: [Int64: LeaseStatus] = [:]
        for row in result.rows {
            let id = try row.int64("id")
            if try row.bool("renewed") {
                answer[id] = .renewed(control: try JobControl(column: row["control"], job: id))
            } else {
                answer[id] = try row.bool("held") ? .busy : .lost
            }
        }
        return answer
    }

    /// Requeues running jobs whose heartbeat is older than `leaseTimeout`: their worker died
    /// or lost the database. A pause or cancel requested meanwhile is honoured, and a job with
    /// no attempts left fails. Returns the ids rescued.
    ///
    /// Never waits on a lock: rows locked by anyone (a batch in flight holds its job's row
    /// `FOR KEY SHARE`, a control function updates it) are skipped, and come up again at the
    /// next rescue. A live worker's batch therefore always commits before its job can be
    /// rescued; a stopped worker's transaction is ended by the server's
    /// `idle_in_transaction_session_timeout`, which releases the row.
    public func rescueExpired(leaseTimeout: Duration, on connection: Connection) async throws -> [Int64] {
        let result = try await connection.query(
            """
            WITH expired AS (
                SELECT id FROM \(schema.jobs)
                WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE \(schema.jobs) j SET
                state = CASE
                    WHEN control = 'cancel' THEN 'cancelled'
                    WHEN control = 'pause' THEN 'paused'
                    WHEN attempts >= max_attempts THEN 'failed'
                    ELSE 'queued' END::\(schema.jobStateType),
                finished_at = CASE WHEN control = 'cancel' OR (control IS NULL AND attempts >= max_attempts)
                    THEN now() END,
                last_error = format('lease expired: worker %s stopped heartbeating at %s', worker_id, heartbeat_at),
                last_error_detail = NULL,
                worker_id = NULL, heartbeat_at = NULL, control = NULL, run_at = now()
            FROM expired WHERE j.id = expired.id
            RETURNING j.id
            """, [leaseTimeout.seconds])
        return try result.rows.map { try $0.int64("id") }
    }

    /// Whether some running job's heartbeat is older than `leaseTimeout`: a job a rescue is
    /// about to requeue.
    public func hasExpiredLeases(leaseTimeout: Duration, on connection: Connection) async throws -> Bool {
        return try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM \(schema.jobs)
                WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)) AS expired
            """, [leaseTimeout.seconds]
        ).first?.bool("expired") ?? false
    }

    /// Seconds until the next queued job is due (0 when one is due now), or nil when none is queued.
    public func secondsUntilNextDue(on connection: Connection) async throws -> Double? {
        let row = try await connection.query(
            """
            SELECT greatest(0, extract(epoch FROM next - now()))::float8 AS wait
            FROM (SELECT min(run_at) AS next FROM \(schema.jobs) WHERE state = 'queued') AS queued
            WHERE next IS NOT NULL
            """
        ).first
        return row?["wait"].flatMap(Double.init)
    }

    /// Deletes jobs that finished (succeeded or cancelled) more than `age` ago, in small
    /// batches so as not to hold locks long, skipping rows someone has locked (a `retry` under
    /// way). Failed jobs are kept for a person to look at. The shards of a parallel job go with
    /// their parent (`ON DELETE CASCADE`), never before it, so its progress stays whole.
    @discardableResult
    public func deleteFinished(olderThan age: Duration, on connection: Connection) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await deleteFinished(olderThan: age, limit: 1000, on: connection)
            total += deleted
            if deleted < 1000 { return total }
        }
    }

    /// Deletes at most `limit` succeeded or cancelled jobs finished more than `age` ago (never a
    /// shard: its parent takes it along), skipping rows someone has locked; returns how many.
    public func deleteFinished(olderThan age: Duration, limit: Int, on connection: Connection) async throws -> Int {
        let result = try await connection.query(
            """
            DELETE FROM \(schema.jobs) WHERE id IN (
                SELECT id FROM \(schema.jobs)
                WHERE finished_at < now() - make_interval(secs => $1) AND state IN ('succeeded', 'cancelled')
                    AND parent_id IS NULL
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            """, [age.seconds.rounded(.down), limit])
        return result.affectedRows ?? 0
    }
}
