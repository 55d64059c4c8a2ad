import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Logging

/// When a batched job holds back: thresholds set on the worker.
public struct BatchThrottle: Sendable {
    /// Hold while any standby's replication lag is above this.
    public var maxReplicationLag: Duration = .seconds(10)
    /// Hold while an autovacuum worker is processing the job's table.
    public var holdDuringAutovacuum = true
    /// Hold while WAL archiving is more than this many segments behind (when `archive_mode`
    /// is on); nil never holds for it.
    public var maxArchiveBacklog: Int? = 16
    /// A query of the operator's (`--health-query`), run as the worker: the job holds while it
    /// returns false or fails.
    public var healthQuery: String?
    /// How long a health query may run before it counts as failed.
    public var healthQueryTimeout: Duration = .seconds(5)
    /// How often holds are checked while a job is not holding.
    public var holdCheckInterval: Duration = .seconds(1)
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
        var statement: String
        /// The enqueuer's search_path when the job was checked; the statement runs under it.
        var searchPath: String?
        var rowsTotal: Int64?
        var batchSize: Int
        var targetBatchMs: Int
        var pauseMs: Int
        var minBatchSize: Int
        var maxBatchSize: Int
        var lockTimeoutMs: Int
        var statementTimeoutMs: Int
        var maxAttempts: Int
        /// The longest wait on a batch's locks the size is steered by; absent in payloads made
        /// before the governor (the default then).
        var maxLockWaitMs: Int?
        /// The enqueuer's health query (`health-query`): the job holds while it is false or fails.
        var healthQuery: String?
        /// A shard of a parallel job covers the keys after `lower` (its first checkpoint, made
        /// at enqueue) up to and including `upper`; nil is no bound. As text, cast to the key's
        /// type by the server.
        var lower: String?
        var upper: String?
        /// Which shard of how many, for messages.
        var shard: Int?
        var shards: Int?

        static let defaultMaxLockWaitMs = 10

        /// The wait the batch size is steered by; nil (0) steers by duration alone.
        var maxLockWait: Duration? {
            let ms = maxLockWaitMs ?? Self.defaultMaxLockWaitMs
            return ms > 0 ? .milliseconds(ms) : nil
        }

        enum CodingKeys: String, CodingKey {
            case table, key, statement
            case searchPath = "search_path"
            case rowsTotal = "rows_total"
            case batchSize = "batch_size"
            case targetBatchMs = "target_batch_ms"
            case pauseMs = "pause_ms"
            case minBatchSize = "min_batch_size"
            case maxBatchSize = "max_batch_size"
            case lockTimeoutMs = "lock_timeout_ms"
            case statementTimeoutMs = "statement_timeout_ms"
            case maxAttempts = "max_attempts"
            case maxLockWaitMs = "max_lock_wait_ms"
            case healthQuery = "health_query"
            case lower, upper, shard, shards
        }

        /// Checks what a hand-made payload could get wrong before anything of it reaches SQL.
        func check(job: Int64) throws {
            func fail(_ message: String) -> InvalidPayload { InvalidPayload("job \(job) (batched): \(message)") }
            guard batchSize >= 1, minBatchSize >= 1, maxBatchSize >= minBatchSize,
                (minBatchSize...maxBatchSize).contains(batchSize)
            else { throw fail("batch sizes must satisfy 1 <= min_batch_size <= batch_size <= max_batch_size") }
            guard targetBatchMs >= 1, pauseMs >= 0, lockTimeoutMs >= 0, statementTimeoutMs >= 0, maxAttempts >= 1,
                (maxLockWaitMs ?? 0) >= 0
            else {
                throw fail(
                    "target_batch_ms and max_attempts must be positive, and pauses, timeouts and max_lock_wait_ms not negative")
            }
            if let healthQuery, healthQuery.contains(";") {
                throw fail("the health query must be one query with no \";\" in it")
            }
        }
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        try payload.check(job: context.job.id)
        return try await context.withSession { connection in
            let sandbox = try await BatchSandbox.create(for: payload, job: context.job, schema: schema, on: connection)
            var runner = try await BatchRunner(
                payload: payload, sandbox: sandbox, context: context, connection: connection, throttle: throttle,
                schema: schema)
            return try await runner.run()
        }
    }
}

/// The batch statement, checked again and wrapped for running with the enqueuer's rights.
///
/// Before every attempt, as the enqueuer, the worker checks the payload against the catalog
/// (`<schema>.batched_target`: table, unique NOT NULL key of a supported type) and parses the
/// statement without running it (`Connection.describe`: exactly one statement, exactly `$1` and
/// `$2`). Then it creates `pg_temp.godwit_batch(after, size)`, a `SECURITY DEFINER` function
/// owned by the enqueuer (see `EnqueuerRole`), which finds the next batch's bounds in key order
/// and runs the statement over them. Names in it come from the catalog, quoted by the server;
/// the statement travels as a literal. Every batch checks that the function is still the one
/// made here (owner, body, settings), so SQL run by a batch cannot swap it for another.
///
/// The worker's own statements share the session with the enqueuer's SQL, which may leave
/// things in it: a `search_path` of its choosing, temporary tables, views and types (which
/// PostgreSQL looks up before pg_catalog's unless `pg_temp` is named last). So the worker's
/// statements run under `search_path = pg_catalog, pg_temp` (`resetSession`), set again
/// after anything of the enqueuer's has run, and name every other object with its schema.
struct BatchSandbox {
    let relation: String
    let keySQL: String
    let keyType: String
    /// A shard's upper bound (inclusive), as text.
    let upper: String?
    let enqueuer: String
    /// The function's oid, and a digest of what makes it safe to call.
    let oid: Int64
    let fingerprint: String
    /// `pg_temp.godwit_health()`, when the job has a health query.
    let health: (oid: Int64, fingerprint: String)?

    static func create(
        for payload: BatchedJob.Payload, job: ClaimedJob, schema: QueueSchema, on connection: Connection
    ) async throws -> BatchSandbox {
        func invalid(_ message: String) -> InvalidPayload { InvalidPayload("job \(job.id) (batched \"\(job.name)\"): \(message)") }
        let statements = SQLSplitter.split(payload.statement)
        guard statements.count == 1 else {
            throw invalid("the statement must be exactly one statement; it holds \(statements.count)")
        }
        // The enqueuer's search_path, for checking the statement and for the function (FROM
        // CURRENT). Until RESET ROLE below, everything here runs as the enqueuer outside any
        // sandbox, so nothing may call code of the enqueuer's: only schema-qualified functions
        // and types, catalog lookups, and a parse that executes nothing.
        if let searchPath = payload.searchPath {
            try await connection.query("SELECT pg_catalog.set_config('search_path', $1, false)", [searchPath])
        }
        let target: PostgresRow
        do {
            target = try await connection.query(
                "SELECT relation, key_sql, key_type FROM \(schema.qualified("batched_target"))($1, $2)",
                [payload.table, payload.key]
            ).first!
        } catch let error as PostgresError where error.code == .server {
            throw invalid(error.message)
        }
        let relation = try target.string("relation")
        let keySQL = try target.string("key_sql")
        let keyType = try target.string("key_type")
        let described: PreparedStatementDescription
        do {
            described = try await connection.describe(payload.statement)
        } catch let error as PostgresError where error.code == .server {
            throw invalid("the statement does not prepare: \(error.description)")
        }
        do {
            try await KeyCollation.check(statement: payload.statement, key: payload.key, relation: relation, on: connection)
        } catch let mismatch as KeyCollation.Mismatch {
            throw invalid(mismatch.message)
        }
        guard described.parameterTypes.count == 2 else {
            throw invalid(
                "the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; "
                    + "it uses \(described.parameterTypes.count)")
        }
        let types = try await connection.query(
            "SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL) AS a, pg_catalog.format_type($2::pg_catalog.oid, NULL) AS b",
            [Int64(described.parameterTypes[0]), Int64(described.parameterTypes[1])]
        ).first!
        let firstType = try types.string("a")
        let lastType = try types.string("b")
        // A shard's batches stop at its upper bound, in the bounds query itself, so no batch of
        // one shard reaches into the next. The bound travels as a dollar-quoted literal cast
        // by the server, like the statement.
        let upper = payload.upper.map { "\(keySQL) <= \(EnqueuerRole.dollarQuoted($0))::\(keyType)" }
        let bounds = { (after: String?) in
            let conditions = [after, upper].compactMap { $0 }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return """
                    WITH batch AS (SELECT \(keySQL) AS k FROM \(relation) \(filter) ORDER BY \(keySQL) LIMIT batch_size)
                    SELECT (SELECT b.k FROM batch b ORDER BY b.k LIMIT 1), (SELECT b.k FROM batch b ORDER BY b.k DESC LIMIT 1),
                        (SELECT count(*) FROM batch)
                    INTO lo, hi, n;
            """
        }
        let body = """
            DECLARE
                lo \(keyType);
                hi \(keyType);
                started timestamptz := clock_timestamp();
            BEGIN
                IF after_key IS NULL THEN
            \(bounds(nil))
                ELSE
            \(bounds("\(keySQL) > after_key::\(keyType)"))
                END IF;
                changed := 0;
                IF n > 0 THEN
                    EXECUTE \(EnqueuerRole.dollarQuoted(payload.statement)) USING lo::\(firstType), hi::\(lastType);
                    GET DIAGNOSTICS changed = ROW_COUNT;
                END IF;
                -- The sessions waiting on this batch's locks now, just before it commits: each
                -- has waited since it hit a lock the batch holds and waits until the COMMIT,
                -- so this reads every such wait at (almost) its full length.
                SELECT pg_catalog.count(*)::integer, coalesce(pg_catalog.max(w.ms), 0), coalesce(pg_catalog.sum(w.ms), 0)
                INTO waiters, longest_wait_ms, total_wait_ms
                FROM (SELECT l.pid, pg_catalog.max(extract(epoch FROM pg_catalog.clock_timestamp() - l.waitstart) * 1000) AS ms
                      FROM pg_catalog.pg_locks l
                      WHERE NOT l.granted AND l.waitstart IS NOT NULL
                        AND pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(l.pid))
                      GROUP BY l.pid) w;
                first_key := lo::text;
                last_key := hi::text;
                ms := extract(epoch FROM clock_timestamp() - started) * 1000;
            \(EnqueuerRole.commitGuard)
            END
            """
        try await connection.execute(
            """
            CREATE FUNCTION pg_temp.godwit_batch(after_key pg_catalog.text, batch_size integer,
                OUT first_key pg_catalog.text, OUT last_key pg_catalog.text, OUT n integer, OUT changed bigint,
                OUT ms double precision, OUT waiters integer, OUT longest_wait_ms double precision,
                OUT total_wait_ms double precision)
            LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS \(EnqueuerRole.dollarQuoted(body))
            """)
        if let health = payload.healthQuery {
            // The enqueuer's health query, run with the enqueuer's rights like the statement.
            let healthBody = """
                BEGIN
                    EXECUTE \(EnqueuerRole.dollarQuoted("SELECT (\(health))::boolean")) INTO healthy;
                \(EnqueuerRole.commitGuard)
                END
                """
            try await connection.execute(
                """
                CREATE FUNCTION pg_temp.godwit_health(OUT healthy boolean)
                LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS \(EnqueuerRole.dollarQuoted(healthBody))
                """)
        }
        // Back to the worker's own rights for the fence and the checkpoint.
        try await connection.execute("RESET ROLE; \(resetSession)")
        let made = try await connection.query(
            """
            SELECT p.oid::bigint AS oid, \(fingerprintSQL) AS fingerprint
            FROM pg_catalog.pg_proc p WHERE p.oid = 'pg_temp.godwit_batch(text, integer)'::pg_catalog.regprocedure
            """
        ).first!
        var health: (oid: Int64, fingerprint: String)?
        if payload.healthQuery != nil {
            let row = try await connection.query(
                """
                SELECT p.oid::bigint AS oid, \(fingerprintSQL) AS fingerprint
                FROM pg_catalog.pg_proc p WHERE p.oid = 'pg_temp.godwit_health()'::pg_catalog.regprocedure
                """
            ).first!
            health = (try row.int64("oid"), try row.string("fingerprint"))
        }
        return BatchSandbox(
            relation: relation, keySQL: keySQL, keyType: keyType, upper: payload.upper, enqueuer: job.enqueuedBy,
            oid: try made.int64("oid"),
            fingerprint: try made.string("fingerprint"), health: health)
    }

    /// SQL that is true while function `oid` is still the one made here (owner and fingerprint).
    func intact(_ oid: Int64, _ fingerprint: String) -> String {
        """
        coalesce((SELECT p.proowner = \(quoteLiteral(enqueuer))::pg_catalog.regrole
                AND \(BatchSandbox.fingerprintSQL) = \(quoteLiteral(fingerprint))
            FROM pg_catalog.pg_proc p WHERE p.oid = \(oid)), false)
        """
    }

    /// Undoes what the enqueuer's SQL did to the session's settings and keeps its temporary
    /// objects out of the worker's statements (see above).
    static let resetSession = "RESET ALL; SET search_path = pg_catalog, pg_temp"

    /// What must not change between batches: owner, SECURITY DEFINER, body and settings.
    static let fingerprintSQL =
        "pg_catalog.md5(p.proowner::text || p.prosecdef::text || p.prosrc || coalesce(p.proconfig::text, ''))"
}

/// One attempt of one batched job, on the job's own connection.
struct BatchRunner {
    let payload: BatchedJob.Payload
    let sandbox: BatchSandbox
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
    var lastHoldCheck: ContinuousClock.Instant?

    init(
        payload: BatchedJob.Payload, sandbox: BatchSandbox, context: JobContext, connection: Connection,
        throttle: BatchThrottle, schema: QueueSchema
    ) async throws {
        self.payload = payload
        self.sandbox = sandbox
        self.context = context
        self.connection = connection
        self.throttle = throttle
        self.schema = schema
        // A job enqueued by a plain INSERT has no progress row yet.
        try await connection.query(
            """
            INSERT INTO \(schema.qualified("job_progress")) (job_id, batch_size, rows_total, cursor)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING
            """,
            [context.job.id, payload.batchSize, payload.rowsTotal, payload.lower])
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
            maximum: payload.maxBatchSize,
            maxLockWait: payload.maxLockWait)
    }

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
                } catch var failure as BatchFailure {
                    (failure.first, failure.last) = await nextBounds()
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

    static let retryableStates: Set<String> = ["55P03", "57014", "40001", "40P01"]

    /// One batch in three round trips, all in one transaction: (1) reset the session, begin,
    /// set the timeouts and take the fence; (2) run the batch through the sandbox and write the
    /// checkpoint, in one statement; (3) commit.
    ///
    /// The fence is `FOR KEY SHARE` on the job's row where the lease is still this worker's:
    /// only the lease holder commits a batch, and a rescue (`FOR UPDATE SKIP LOCKED`) passes the
    /// job by while a batch is in flight, so the next holder always reads the last committed
    /// checkpoint. Heartbeats (`FOR NO KEY UPDATE`) do not conflict with it and keep the lease
    /// fresh through a long batch.
    ///
    /// A shard of a parallel job reads a failed sibling as a pause request in the same fence:
    /// the request `derive_parallel_state` writes may have skipped this row while it was
    /// locked, and the shard must still stop at its next checkpoint so the parent can fail.
    ///
    /// The session is reset (`BatchSandbox.resetSession`) right after each batch's COMMIT,
    /// and again before each batch, because SQL run by the batch may have changed settings for
    /// the session (`set_config(..., false)`), `search_path` included, and left temporary
    /// objects; the checkpoint is part of the batch's own statement, parsed before the batch
    /// runs, for the same reason.
    private mutating func runBatch(attempt: Int) async throws -> BatchResult {
        let size = controller.size
        let fence = try await connection.execute(
            """
            \(BatchSandbox.resetSession);
            BEGIN;
            SET LOCAL lock_timeout = \(payload.lockTimeoutMs);
            SET LOCAL statement_timeout = \(payload.statementTimeoutMs);
            SELECT coalesce(j.control, CASE WHEN j.parent_id IS NOT NULL AND EXISTS (
                    SELECT 1 FROM \(schema.qualified("jobs")) s WHERE s.parent_id = j.parent_id AND s.state = 'failed')
                    THEN 'pause' END) AS control,
                \(sandbox.intact(sandbox.oid, sandbox.fingerprint)) AS sandbox_intact
            FROM \(schema.qualified("jobs")) j
            WHERE j.id = \(context.job.id) AND j.lease_token = \(context.job.leaseToken) AND j.state = 'running'
            FOR KEY SHARE OF j
            """
        ).last
        do {
            guard let control = fence?.first else { throw JobInterruption.leaseLost }
            if control["control"] == "pause" { throw JobInterruption.paused }
            if control["control"] == "cancel" { throw JobInterruption.cancelled }
            guard try control.bool("sandbox_intact") else {
                throw JobFailure(
                    "job \(context.job.id): the batch function was changed by SQL the job ran (its owner, body or settings); "
                        + "the job stops rather than run anything else")
            }
            let rates = recent.reduce((rows: 0, seconds: 0.0)) { ($0.rows + $1.rows, $0.seconds + $1.seconds) }
            let batch: PostgresRow
            do {
                batch = try await connection.query(
                    """
                    WITH b AS MATERIALIZED (SELECT * FROM pg_temp.godwit_batch($2, $3)),
                    p AS (
                        UPDATE \(progressTable) SET cursor = b.last_key, rows_done = rows_done + b.n,
                            rows_changed = rows_changed + b.changed, batches_done = batches_done + 1, batch_size = $3,
                            rows_per_second = ($5 + b.n) / nullif($6 + b.ms / 1000, 0), hold_reason = NULL,
                            lock_waits = lock_waits + b.waiters, lock_wait_ms_total = lock_wait_ms_total + b.total_wait_ms,
                            lock_wait_ms_max = greatest(lock_wait_ms_max, b.longest_wait_ms), updated_at = now()
                        FROM b WHERE job_id = $1 AND b.n > 0
                        RETURNING batches_done
                    ),
                    h AS (
                        INSERT INTO \(schema.qualified("batches"))
                            (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms,
                             lock_waiters, lock_wait_ms)
                        SELECT $1, p.batches_done, $4, b.first_key, b.last_key, b.n, b.changed, $3, b.ms, b.waiters,
                            b.longest_wait_ms
                        FROM p, b
                    )
                    SELECT b.first_key, b.last_key, b.n, b.changed, b.ms, b.waiters, b.longest_wait_ms FROM b
                    """, [context.job.id, cursor, size, attempt, rates.rows, rates.seconds]
                ).first!
            } catch let error as PostgresError where error.code == .server {
                throw BatchFailure(
                    error: error, first: nil, last: nil, retryable: Self.retryableStates.contains(error.sqlState ?? ""))
            }
            try await connection.execute("COMMIT; \(BatchSandbox.resetSession)")
            let rows = try batch.int("n")
            guard rows > 0 else { return .done }
            let changed = try batch.int("changed")
            let duration = Duration.milliseconds(try batch.double("ms"))
            let longestWait = Duration.milliseconds(try batch.double("longest_wait_ms"))
            controller.record(rows: rows, duration: duration, longestLockWait: longestWait)
            if longestWait > .zero {
                let waiters = batch["waiters"] ?? "?"
                context.logger.debug(
                    "batch made sessions wait",
                    metadata: [
                        "job": "\(context.job.id)", "waiters": "\(waiters)",
                        "longest_wait_ms": "\(Int(longestWait.milliseconds))", "next_size": "\(controller.size)",
                    ])
            }
            let first = batch["first_key"] ?? ""
            let last = batch["last_key"] ?? ""
            cursor = last
            rowsDone += Int64(rows)
            rowsChanged += Int64(changed)
            batchesDone += 1
            return .committed(rows: rows, changed: changed, first: first, last: last, duration: duration)
        } catch {
            await connection.cleanup("ROLLBACK")
            if let postgres = error as? PostgresError, postgres.code == .server {
                throw BatchFailure(
                    error: postgres, first: nil, last: nil, retryable: Self.retryableStates.contains(postgres.sqlState ?? ""))
            }
            throw error
        }
    }

    /// The keys the next batch covers, read as the enqueuer, to name a failed batch.
    ///
    /// This runs outside the sandbox, so nothing of the enqueuer's may run in it: names resolve
    /// in pg_catalog first, and row security, which would call the policies' functions, is off
    /// (a table with a policy that applies makes the query fail, and the bounds stay unknown).
    private func nextBounds() async -> (first: String?, last: String?) {
        var conditions: [String] = []
        var parameters: [any PostgresParameter] = [controller.size]
        if let cursor {
            parameters.append(cursor)
            conditions.append("\(sandbox.keySQL) > $\(parameters.count)::\(sandbox.keyType)")
        }
        if let upper = sandbox.upper {
            parameters.append(upper)
            conditions.append("\(sandbox.keySQL) <= $\(parameters.count)::\(sandbox.keyType)")
        }
        let after = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        var row: PostgresRow?
        do {
            try await connection.execute(
                "\(BatchSandbox.resetSession); SET row_security = off; SET ROLE \(quoteIdentifier(sandbox.enqueuer))")
            row = try await connection.query(
                """
                WITH batch AS (SELECT \(sandbox.keySQL) AS k FROM \(sandbox.relation) \(after) ORDER BY \(sandbox.keySQL) LIMIT $1)
                SELECT (SELECT b.k::text FROM batch b ORDER BY b.k LIMIT 1) AS first,
                    (SELECT b.k::text FROM batch b ORDER BY b.k DESC LIMIT 1) AS last
                """, parameters
            ).first
        } catch {
            row = nil
        }
        await connection.cleanup("RESET ROLE; \(BatchSandbox.resetSession)")
        return (row?["first"], row?["last"])
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

    /// Holds (state stays running) while a standby lags, autovacuum works on the table, WAL
    /// archiving falls behind, or a health query (the operator's `--health-query`, the job's
    /// `health-query`) is false or fails, showing why in `godwit.progress`. Returns true when
    /// it held.
    private mutating func holdIfNeeded() async throws -> Bool {
        // Looked at most once a second while not holding: the checks cost round trips.
        if holding == nil, let lastHoldCheck, clock.now - lastHoldCheck < throttle.holdCheckInterval { return false }
        lastHoldCheck = clock.now
        let reason = try await holdReason()
        if reason != holding {
            try await connection.query(
                "UPDATE \(progressTable) SET hold_reason = $2, updated_at = now() WHERE job_id = $1",
                [context.job.id, reason])
            if let reason {
                context.logger.notice("batched job holding", metadata: ["job": "\(context.job.id)", "reason": "\(reason)"])
            } else {
                context.logger.notice("batched job goes on", metadata: ["job": "\(context.job.id)"])
            }
            holding = reason
        }
        guard reason != nil else { return false }
        try await sleepCheckingInterruptions(throttle.holdCheckInterval)
        return true
    }

    /// Why the job should hold now, or nil.
    private func holdReason() async throws -> String? {
        let row = try await connection.query(
            """
            SELECT
                (SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)
                 FROM pg_catalog.pg_stat_replication)::float8 AS lag,
                EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum v JOIN pg_catalog.pg_stat_activity a ON a.pid = v.pid
                        WHERE v.relid = $1::pg_catalog.regclass AND a.backend_type = 'autovacuum worker') AS vacuuming,
                \(Self.archiveBacklogSQL) AS archive_backlog
            """, [sandbox.relation]
        ).first!
        let lag = try row.double("lag")
        if lag > throttle.maxReplicationLag.seconds {
            return String(format: "replication lag %.1f s is above %.1f s", lag, throttle.maxReplicationLag.seconds)
        }
        if throttle.holdDuringAutovacuum, try row.bool("vacuuming") {
            return "autovacuum is working on \(payload.table)"
        }
        if let limit = throttle.maxArchiveBacklog, let backlog = row["archive_backlog"].flatMap({ Int($0) }),
            backlog > limit
        {
            return "WAL archiving is \(backlog) segments behind (more than \(limit))"
        }
        if let query = throttle.healthQuery,
            let unhealthy = try await healthProblem(
                "SELECT (\(query))::boolean AS healthy, true AS intact", who: "the worker's health query")
        {
            return unhealthy
        }
        if let health = sandbox.health,
            let unhealthy = try await healthProblem(
                """
                SELECT CASE WHEN i.intact THEN pg_temp.godwit_health() END AS healthy, i.intact
                FROM (SELECT \(sandbox.intact(health.oid, health.fingerprint)) AS intact) i
                """, who: "the job's health query")
        {
            return unhealthy
        }
        return nil
    }

    /// Runs a health check under a statement timeout; a description of what is wrong when it
    /// is not true.
    private func healthProblem(_ sql: String, who: String) async throws -> String? {
        let result: [QueryResult]
        do {
            result = try await connection.execute(
                """
                BEGIN;
                SET LOCAL statement_timeout = \(Int(throttle.healthQueryTimeout.milliseconds));
                \(sql);
                COMMIT;
                \(BatchSandbox.resetSession)
                """
            )
        } catch let error as PostgresError where error.code == .server {
            await connection.cleanup("ROLLBACK; \(BatchSandbox.resetSession)")
            return "\(who) failed: \(error.message)"
        }
        let row = result.count > 2 ? result[2].first : nil
        guard row?["intact"] == "t" else {
            throw JobFailure(
                "job \(context.job.id): the health query's function was changed by SQL the job ran (its owner, body or settings); "
                    + "the job stops rather than run anything else")
        }
        switch row?["healthy"] {
        case "t": return nil
        case "f": return "\(who) returned false"
        default: return "\(who) returned NULL"
        }
    }

    /// WAL segments completed but not yet archived: from the last archived segment's name and
    /// the current WAL position. NULL when archiving is off, on a standby, or nothing has been
    /// archived yet.
    static let archiveBacklogSQL = """
        (SELECT CASE WHEN pg_catalog.current_setting('archive_mode') <> 'off' AND NOT pg_catalog.pg_is_in_recovery()
                       AND a.last_archived_wal ~ '^[0-9A-F]{24}$'
                  THEN pg_catalog.floor(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::numeric / s.size)
                       - (('x' || substr(a.last_archived_wal, 9, 8))::bit(32)::bigint::numeric * (4294967296 / s.size)
                          + ('x' || substr(a.last_archived_wal, 17, 8))::bit(32)::bigint + 1)
             END::bigint
         FROM pg_catalog.pg_stat_archiver a,
              (SELECT setting::numeric AS size FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') s)
        """

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
