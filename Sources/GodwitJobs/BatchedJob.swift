import Foundation
import GodwitPostgres
import Logging

/// When a batched job holds back: thresholds set on the worker.
public struct BatchThrottle: Sendable {
    /// Hold while any standby's replication lag is above this.
    public var maxReplicationLag: Duration = .seconds(10)
    /// Hold while an autovacuum worker is processing the job's table.
    public var holdDuringAutovacuum = true
    /// How many batches of each job to keep in `godwit.batches`.
    public var batchHistory = 1000
    /// How often the worker logs a progress line for each running batched job.
    public var progressLogInterval: Duration = .seconds(5)

    public init() {}
}

/// Runs batched data migrations (kind `batched`): keyset batches, each committed together with
/// its checkpoint, sized toward a target duration, throttled, resumable exactly where they
/// stopped.
public struct BatchedJob: JobHandler {
    public let kind = "batched"
    public var throttle: BatchThrottle
    public var schema: QueueSchema

    public init(throttle: BatchThrottle = BatchThrottle(), schema: QueueSchema = QueueSchema()) {
        self.throttle = throttle
        self.schema = schema
    }

    struct Payload: Decodable {
        var table: String
        var key: String
        var keyType: String
        var statement: String
        var batchSize: Int
        var targetBatchMs: Int
        var pauseMs: Int
        var minBatchSize: Int
        var maxBatchSize: Int
        var lockTimeoutMs: Int
        var statementTimeoutMs: Int
        var maxAttempts: Int

        enum CodingKeys: String, CodingKey {
            case table, key, statement
            case keyType = "key_type"
            case batchSize = "batch_size"
            case targetBatchMs = "target_batch_ms"
            case pauseMs = "pause_ms"
            case minBatchSize = "min_batch_size"
            case maxBatchSize = "max_batch_size"
            case lockTimeoutMs = "lock_timeout_ms"
            case statementTimeoutMs = "statement_timeout_ms"
            case maxAttempts = "max_attempts"
        }
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        let connection = try await Connection.connect(context.databaseURL, applicationName: "godwit worker (batched)")
        defer { Task { await connection.close() } }
        var runner = try await BatchRunner(
            payload: payload, context: context, connection: connection, throttle: throttle, schema: schema)
        return try await runner.run()
    }
}

/// One attempt of one batched job, on the job's own connection.
struct BatchRunner {
    let payload: BatchedJob.Payload
    let context: JobContext
    let connection: Connection
    let throttle: BatchThrottle
    let schema: QueueSchema
    let clock = ContinuousClock()

    var controller: BatchSizeController
    /// The last key done, from the checkpoint; nil before the first batch.
    var cursor: String?
    var rowsDone: Int64
    var rowsChanged: Int64
    var batchesDone: Int64
    let rowsTotal: Int64?
    /// Recent batches (rows, wall seconds including pauses), for the rate.
    var recent: [(rows: Int, seconds: Double)] = []
    var holding: String?

    init(
        payload: BatchedJob.Payload, context: JobContext, connection: Connection, throttle: BatchThrottle,
        schema: QueueSchema
    ) async throws {
        self.payload = payload
        self.context = context
        self.connection = connection
        self.throttle = throttle
        self.schema = schema
        // A job enqueued by a plain INSERT has no progress row yet.
        try await connection.query(
            "INSERT INTO \(schema.qualified("job_progress")) (job_id, batch_size) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [context.job.id, payload.batchSize])
        let row = try await connection.query(
            """
            SELECT cursor, rows_done, rows_changed, batches_done, batch_size, rows_total
            FROM \(schema.qualified("job_progress")) WHERE job_id = $1
            """, [context.job.id]
        ).first!
        cursor = row["cursor"]
        rowsDone = try row.int64("rows_done")
        rowsChanged = try row.int64("rows_changed")
        batchesDone = try row.int64("batches_done")
        rowsTotal = row["rows_total"].flatMap { Int64($0) }
        controller = BatchSizeController(
            initial: row["batch_size"].flatMap { Int($0) } ?? payload.batchSize,
            target: .milliseconds(payload.targetBatchMs), minimum: payload.minBatchSize,
            maximum: payload.maxBatchSize)
    }

    private var table: String { payload.table }
    private var key: String { quoteIdentifier(payload.key) }
    private var progressTable: String { schema.qualified("job_progress") }

    enum BatchResult {
        case done
        case committed(rows: Int, changed: Int, first: String, last: String, duration: Duration)
    }

    struct BatchFailure: Error {
        var error: PostgresError
        var first: String?
        var last: String?
        var retryable: Bool
    }

    mutating func run() async throws -> String? {
        let started = clock.now
        var lastLog = clock.now
        if let cursor {
            context.logger.info(
                "resuming batched job from its checkpoint",
                metadata: ["job": "\(context.job.id)", "cursor": "\(cursor)", "rows_done": "\(rowsDone)"])
        }
        while true {
            try context.checkpoint()
            if try await holdIfNeeded() { continue }
            let batchStarted = clock.now
            var attempt = 1
            let result: BatchResult
            while true {
                do {
                    result = try await runBatch(attempt: attempt)
                    break
                } catch let failure as BatchFailure {
                    try await recordFailedBatch(failure, attempt: attempt)
                    let bounds = "keys \(failure.first ?? "?")..\(failure.last ?? "?")"
                    guard failure.retryable, attempt < payload.maxAttempts else {
                        throw JobFailure(
                            "batch \(batchesDone + 1) (\(bounds)) failed\(attempt > 1 ? " \(attempt) times" : ""): \(failure.error)"
                                + "; retry the job to resume from key \(cursor ?? "(start)")")
                    }
                    controller.shrinkAfterTimeout()
                    let delay = Backoff(base: .milliseconds(100), max: .seconds(5)).delay(afterAttempt: attempt)
                    context.logger.warning(
                        "batch failed; retrying smaller",
                        metadata: [
                            "job": "\(context.job.id)", "batch": "\(batchesDone + 1)", "keys": "\(bounds)",
                            "attempt": "\(attempt)", "next_size": "\(controller.size)", "error": "\(failure.error)",
                        ])
                    try await sleepCheckingInterruptions(delay)
                    attempt += 1
                }
            }
            guard case .committed(let rows, _, let first, let last, let duration) = result else { break }
            if payload.pauseMs > 0 { try await sleepCheckingInterruptions(.milliseconds(payload.pauseMs)) }
            let wall = clock.now - batchStarted
            recent.append((rows, wall.seconds))
            if recent.count > 20 { recent.removeFirst() }
            if batchesDone % 100 == 0 { try await trimHistory() }
            if clock.now - lastLog >= throttle.progressLogInterval {
                lastLog = clock.now
                logProgress(first: first, last: last, rows: rows, duration: duration)
            }
        }
        let elapsed = (clock.now - started).seconds
        context.logger.info(
            "batched job finished",
            metadata: [
                "job": "\(context.job.id)", "rows_done": "\(rowsDone)", "rows_changed": "\(rowsChanged)",
                "batches": "\(batchesDone)",
            ])
        return
            #"{"rows_done": \#(rowsDone), "rows_changed": \#(rowsChanged), "batches": \#(batchesDone), "seconds": \#((elapsed * 1000).rounded() / 1000)}"#
    }

    /// One batch: fence, bounds, statement, checkpoint, all in one transaction.
    private mutating func runBatch(attempt: Int) async throws -> BatchResult {
        let started = clock.now
        var first: String?
        var last: String?
        try await connection.execute("BEGIN")
        do {
            // The fence: only the current lease holder may commit a batch. The row lock it takes
            // makes a rescue wait for this commit, so a new holder always reads the latest
            // checkpoint; and the heartbeat it writes keeps the lease fresh through long batches.
            let fence = try await connection.query(
                """
                UPDATE \(schema.qualified("jobs")) SET heartbeat_at = now()
                WHERE id = $1 AND lease_token = $2 AND state = 'running'
                RETURNING control
                """, [context.job.id, context.job.leaseToken])
            guard let control = fence.first else { throw JobInterruption.leaseLost }
            if control["control"] == "pause" { throw JobInterruption.paused }
            if control["control"] == "cancel" { throw JobInterruption.cancelled }
            try await connection.execute(
                "SET LOCAL lock_timeout = \(payload.lockTimeoutMs); SET LOCAL statement_timeout = \(payload.statementTimeoutMs)")
            let after = cursor.map { _ in "WHERE \(key) > $2::\(payload.keyType)" } ?? ""
            var parameters: [any PostgresParameter] = [controller.size]
            if let cursor { parameters.append(cursor) }
            // Ordered by the key's own type (b.k), never by its text form: "10" sorts before "9".
            let bounds = try await connection.query(
                """
                WITH batch AS (SELECT \(key) AS k FROM \(table) \(after) ORDER BY \(key) LIMIT $1)
                SELECT (SELECT b.k::text FROM batch b ORDER BY b.k LIMIT 1) AS first,
                    (SELECT b.k::text FROM batch b ORDER BY b.k DESC LIMIT 1) AS last, (SELECT count(*) FROM batch) AS n
                """, parameters
            ).first!
            let rows = try bounds.int("n")
            guard rows > 0 else {
                try await connection.execute("COMMIT")
                return .done
            }
            first = bounds["first"]
            last = bounds["last"]
            let changed: Int
            do {
                changed = try await connection.query(payload.statement, [first, last]).affectedRows ?? 0
            } catch let error as PostgresError {
                throw BatchFailure(
                    error: error, first: first, last: last,
                    retryable: ["55P03", "57014", "40001", "40P01"].contains(error.sqlState ?? ""))
            }
            let duration = clock.now - started
            let size = controller.size
            var next = controller
            next.record(rows: rows, duration: duration)
            try await connection.query(
                """
                WITH p AS (
                    UPDATE \(progressTable) SET cursor = $2, rows_done = rows_done + $3, rows_changed = rows_changed + $4,
                        batches_done = batches_done + 1, batch_size = $5, rows_per_second = $6, hold_reason = NULL,
                        updated_at = now()
                    WHERE job_id = $1
                    RETURNING batches_done
                )
                INSERT INTO \(schema.qualified("batches"))
                    (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms)
                SELECT $1, p.batches_done, $7, $8, $2, $3, $4, $9, $10 FROM p
                """,
                [
                    context.job.id, last, rows, changed, next.size, rate(adding: rows, duration.seconds), attempt, first,
                    size, duration.milliseconds,
                ])
            try await connection.execute("COMMIT")
            controller = next
            cursor = last
            rowsDone += Int64(rows)
            rowsChanged += Int64(changed)
            batchesDone += 1
            return .committed(rows: rows, changed: changed, first: first ?? "", last: last ?? "", duration: duration)
        } catch {
            if await connection.isOpen { _ = try? await connection.execute("ROLLBACK") }
            if let postgres = error as? PostgresError, !(error is BatchFailure), postgres.code == .server {
                // A failure outside the statement (the bounds query timing out on a lock, say).
                throw BatchFailure(
                    error: postgres, first: first, last: last,
                    retryable: ["55P03", "57014", "40001", "40P01"].contains(postgres.sqlState ?? ""))
            }
            throw error
        }
    }

    /// Rows a second over the recent batches, with this one.
    private func rate(adding rows: Int, _ seconds: Double) -> Double {
        let all = recent + [(rows, seconds)]
        let time = all.map(\.seconds).reduce(0, +)
        return time > 0 ? Double(all.map(\.rows).reduce(0, +)) / time : 0
    }

    private func recordFailedBatch(_ failure: BatchFailure, attempt: Int) async throws {
        try await connection.query(
            """
            INSERT INTO \(schema.qualified("batches"))
                (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms, error)
            VALUES ($1, $2, $3, $4, $5, 0, 0, $6, 0, $7)
            """,
            [context.job.id, batchesDone + 1, attempt, failure.first, failure.last, controller.size, failure.error.description])
    }

    /// Holds (state stays running) while a standby lags or autovacuum works on the table,
    /// showing why in `godwit.progress`. Returns true when it held.
    private mutating func holdIfNeeded() async throws -> Bool {
        let row = try await connection.query(
            """
            SELECT
                (SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)
                 FROM pg_stat_replication)::float8 AS lag,
                EXISTS (SELECT 1 FROM pg_stat_progress_vacuum v JOIN pg_stat_activity a ON a.pid = v.pid
                        WHERE v.relid = $1::regclass AND a.backend_type = 'autovacuum worker') AS vacuuming
            """, [payload.table]
        ).first!
        let lag = try row.double("lag")
        var reason: String?
        if lag > throttle.maxReplicationLag.seconds {
            reason = String(format: "replication lag %.1f s is above %.1f s", lag, throttle.maxReplicationLag.seconds)
        } else if throttle.holdDuringAutovacuum, try row.bool("vacuuming") {
            reason = "autovacuum is working on \(payload.table)"
        }
        if reason != holding {
            try await connection.query(
                "UPDATE \(progressTable) SET hold_reason = $2, updated_at = now() WHERE job_id = $1",
                [context.job.id, reason])
            if let reason {
                context.logger.notice("batched job holding", metadata: ["job": "\(context.job.id)", "reason": "\(reason)"])
            }
            holding = reason
        }
        guard reason != nil else { return false }
        try await sleepCheckingInterruptions(.seconds(1))
        return true
    }

    private func sleepCheckingInterruptions(_ duration: Duration) async throws {
        let deadline = clock.now + duration
        while clock.now < deadline {
            try context.checkpoint()
            try await Task.sleep(for: min(.milliseconds(50), deadline - clock.now))
        }
    }

    private func trimHistory() async throws {
        try await connection.query(
            "DELETE FROM \(schema.qualified("batches")) WHERE job_id = $1 AND seq <= $2",
            [context.job.id, batchesDone - Int64(throttle.batchHistory)])
    }

    private func logProgress(first: String, last: String, rows: Int, duration: Duration) {
        let rowsPerSecond = recent.isEmpty ? 0 : Double(recent.map(\.rows).reduce(0, +)) / recent.map(\.seconds).reduce(0, +)
        var metadata: Logger.Metadata = [
            "job": "\(context.job.id)", "batch": "\(batchesDone)", "keys": "\(first)..\(last)", "rows": "\(rows)",
            "rows_per_second": "\(Int(rowsPerSecond))", "batch_size": "\(controller.size)",
            "batch_ms": "\(Int(duration.milliseconds))",
        ]
        if let rowsTotal, rowsTotal > 0 {
            metadata["percent"] = "\(String(format: "%.1f", min(100, 100 * Double(rowsDone) / Double(rowsTotal))))"
            if rowsPerSecond > 0, rowsTotal > rowsDone {
                metadata["eta_seconds"] = "\(Int(Double(rowsTotal - rowsDone) / rowsPerSecond))"
            }
        }
        context.logger.info("batched job progress", metadata: metadata)
    }
}
