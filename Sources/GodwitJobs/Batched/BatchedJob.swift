import Foundation
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
    public let kind = JobKind.batched
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
        return try await context.withSession { session in
            let statement = try await BatchStatement.prepare(for: payload, job: context.job, schema: schema, on: session)
            var runner = try await BatchRunner(
                payload: payload, statement: statement, context: context, session: session, throttle: throttle,
                schema: schema)
            return try await runner.run()
        }
    }
}

/// The batch statement, checked again and made ready to run, in the enqueuer's session.
///
/// Everything of a batched job that its enqueuer wrote runs in a session logged in as the
/// enqueuer (`EnqueuerSessions`): the checks, the parse, the bounds, every batch and the health
/// query. Whatever PostgreSQL runs of the enqueuer's there (a domain check at parse time, a
/// trigger deferred to COMMIT, an operator it planted), it runs as the enqueuer.
///
/// Before every attempt the worker checks the payload against the catalog
/// (`<schema>.batched_target`: table, unique NOT NULL key of a supported type) and parses the
/// statement without running it (`Connection.describe`: exactly one statement, exactly `$1` and
/// `$2`), under the search_path recorded at enqueue. Then it creates `pg_temp.godwit_batch(after,
/// size)`, which finds the next batch's bounds in key order and runs the statement over them,
/// with the same search_path. Names in it come from the catalog, quoted by the server; the
/// statement travels as a literal.
struct BatchStatement {
    let relation: String
    /// The relation's oid, for the worker's own reads of the server's state: the worker may
    /// have no right to the enqueuer's schema, so it does not look the name up.
    let relationOID: Int64
    let keySQL: String
    let keyType: String
    /// A shard's upper bound (inclusive), as text.
    let upper: String?
    let healthQuery: String?

    static func prepare(
        for payload: BatchedJob.Payload, job: ClaimedJob, schema: QueueSchema, on session: Connection
    ) async throws -> BatchStatement {
        func invalid(_ message: String) -> InvalidPayload { InvalidPayload("job \(job.id) (batched \"\(job.name)\"): \(message)") }
        let statements = SQLSplitter.split(payload.statement)
        guard statements.count == 1 else {
            throw invalid("the statement must be exactly one statement; it holds \(statements.count)")
        }
        // The enqueuer's search_path at enqueue, for the checks, the parse and the function
        // (FROM CURRENT).
        if let searchPath = payload.searchPath {
            try await session.query("SELECT pg_catalog.set_config('search_path', $1, false)", [searchPath])
        }
        let target: PostgresRow
        do {
            target = try await session.query(
                "SELECT relation, key_sql, key_type FROM \(schema.qualified("batched_target"))($1, $2)",
                [payload.table, payload.key]
            ).first!
        } catch let error as PostgresError where error.code == .server {
            throw invalid(error.message)
        }
        let relation = try target.string("relation")
        let keySQL = try target.string("key_sql")
        let keyType = try target.string("key_type")
        let relationOID = try await session.query(
            "SELECT $1::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int8 AS oid", [relation]
        ).first!.int64("oid")
        let described: PreparedStatementDescription
        do {
            described = try await session.describe(payload.statement)
        } catch let error as PostgresError where error.code == .server {
            throw invalid("the statement does not prepare: \(error.description)")
        }
        do {
            try await KeyCollation.check(statement: payload.statement, key: payload.key, relation: relation, on: session)
        } catch let mismatch as KeyCollation.Mismatch {
            throw invalid(mismatch.message)
        }
        guard described.parameterTypes.count == 2 else {
            throw invalid(
                "the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; "
                    + "it uses \(described.parameterTypes.count)")
        }
        let types = try await session.query(
            "SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL) AS a, pg_catalog.format_type($2::pg_catalog.oid, NULL) AS b",
            [Int64(described.parameterTypes[0]), Int64(described.parameterTypes[1])]
        ).first!
        let firstType = try types.string("a")
        let lastType = try types.string("b")
        // A shard's batches stop at its upper bound, in the bounds query itself, so no batch of
        // one shard reaches into the next. The bound travels as a dollar-quoted literal cast
        // by the server, like the statement.
        let upper = payload.upper.map { "\(keySQL) <= \(dollarQuote($0))::\(keyType)" }
        // The batch's first key and its batch_size-th, read from the key's index without sorting
        // or keeping the keys between them; only the table's last batch, shorter than
        // batch_size, reads its last key and counts its rows.
        let bounds = { (after: String?) in
            let conditions = [after, upper].compactMap { $0 }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return """
                    SELECT (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) LIMIT 1),
                        (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) OFFSET godwit_batch.batch_size - 1 LIMIT 1)
                    INTO lo, hi;
                    IF hi IS NOT NULL THEN
                        n := godwit_batch.batch_size;
                    ELSIF lo IS NULL THEN
                        n := 0;
                    ELSE
                        SELECT (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) DESC LIMIT 1),
                            (SELECT pg_catalog.count(*)::integer FROM (SELECT FROM \(relation) \(filter) LIMIT godwit_batch.batch_size) r)
                        INTO hi, n;
                    END IF;
            """
        }
        // A column of the table may be named like one of the function's parameters (a key
        // named job_id or n): in its queries a bare name is the column, and the parameters are
        // named with the function's name.
        let body = """
            #variable_conflict use_column
            DECLARE
                lo \(keyType);
                hi \(keyType);
                started timestamptz := clock_timestamp();
            BEGIN
                -- The fence first: the batch runs only while the lease is this attempt's and no
                -- one asked the job to stop.
                control := \(schema.qualified("batch_fence"))(job_id, lease);
                IF control IS NOT NULL THEN
                    RETURN;
                END IF;
                IF after_key IS NULL THEN
            \(bounds(nil))
                ELSE
            \(bounds("\(keySQL) > godwit_batch.after_key::\(keyType)"))
                END IF;
                changed := 0;
                IF n > 0 THEN
                    EXECUTE \(dollarQuote(payload.statement)) USING lo::\(firstType), hi::\(lastType);
                    GET DIAGNOSTICS changed = ROW_COUNT;
                END IF;
                -- One look at the lock table, just before the batch commits. The sessions
                -- waiting on this batch's locks: each has waited since it hit a lock the batch
                -- holds and waits until the COMMIT, so this reads every such wait at (almost) its
                -- full length. And whether another session holds the table in a mode that writes
                -- or locks rows (an application that this batch's row locks could make wait).
                WITH l AS MATERIALIZED (
                    SELECT l.pid, l.locktype, l.database, l.relation, l.mode, l.granted, l.waitstart
                    FROM pg_catalog.pg_locks l),
                w AS (
                    SELECT l.pid, pg_catalog.max(extract(epoch FROM pg_catalog.clock_timestamp() - l.waitstart) * 1000) AS ms
                    FROM l
                    WHERE NOT l.granted AND l.waitstart IS NOT NULL
                      AND pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(l.pid))
                    GROUP BY l.pid)
                SELECT (SELECT pg_catalog.count(*)::integer FROM w), (SELECT coalesce(pg_catalog.max(w.ms), 0) FROM w),
                    (SELECT coalesce(pg_catalog.sum(w.ms), 0) FROM w),
                    EXISTS (SELECT FROM l WHERE l.locktype = 'relation' AND l.relation = \(relationOID)::pg_catalog.oid
                            AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                              WHERE d.datname = pg_catalog.current_database())
                            AND l.pid <> pg_catalog.pg_backend_pid() AND l.granted
                            AND l.mode IN ('RowShareLock', 'RowExclusiveLock'))
                INTO waiters, longest_wait_ms, total_wait_ms, shared;
                first_key := lo::text;
                last_key := hi::text;
                ms := extract(epoch FROM clock_timestamp() - started) * 1000;
            END
            """
        try await session.execute(
            """
            CREATE FUNCTION pg_temp.godwit_batch(after_key pg_catalog.text, batch_size integer, job_id bigint, lease bigint,
                OUT control pg_catalog.text, OUT first_key pg_catalog.text, OUT last_key pg_catalog.text, OUT n integer, OUT changed bigint,
                OUT ms double precision, OUT waiters integer, OUT longest_wait_ms double precision,
                OUT total_wait_ms double precision, OUT shared boolean)
            LANGUAGE plpgsql SET search_path FROM CURRENT AS \(dollarQuote(body))
            """)
        return BatchStatement(
            relation: relation, relationOID: relationOID, keySQL: keySQL, keyType: keyType, upper: payload.upper, healthQuery: payload.healthQuery)
    }
}

/// One attempt of one batched job: its batches in the enqueuer's session, the queue's
/// bookkeeping (progress, holds, history) over the worker's own connections.
struct BatchRunner {
    let payload: BatchedJob.Payload
    let statement: BatchStatement
    let context: JobContext
    /// The enqueuer's session, where the job's SQL runs.
    let session: Connection
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
    /// When a batch last saw another session using the table (holding it to write or lock rows,
    /// or waiting on the batch).
    var sharedSeenAt: ContinuousClock.Instant?
    /// How long the table counts as shared after the last sign of another session: an
    /// application's short transactions are caught by some batches' look at the lock table, not
    /// by every one.
    static let sharedMemory: Duration = .seconds(10)
    /// Until a batch has seen another session, the table counts as shared for this long after
    /// the attempt starts: one look at the lock table a batch can miss an application whose
    /// transactions are short, and the first batches are the ones that would grow too fast.
    static let aloneAfter: Duration = .seconds(1)
    /// When this attempt started.
    let startedAt = ContinuousClock.now
    /// The size reason last written to `job_progress.size_reason`, and when.
    var writtenReason: (text: String, at: ContinuousClock.Instant)?

    init(
        payload: BatchedJob.Payload, statement: BatchStatement, context: JobContext, session: Connection,
        throttle: BatchThrottle, schema: QueueSchema
    ) async throws {
        self.payload = payload
        self.statement = statement
        self.context = context
        self.session = session
        self.throttle = throttle
        self.schema = schema
        // A job enqueued by a plain INSERT has no progress row yet.
        let row = try await context.pool.withConnection { connection in
            try await connection.query(
                """
                INSERT INTO \(schema.jobProgress) (job_id, batch_size, rows_total, cursor)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT DO NOTHING
                """,
                [context.job.id, payload.batchSize, payload.rowsTotal, payload.lower])
            return try await connection.query(
                """
                SELECT cursor, rows_done, rows_changed, batches_done, batch_size, rows_total
                FROM \(schema.jobProgress) WHERE job_id = $1
                """, [context.job.id]
            ).first!
        }
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

    private var progressTable: String { schema.jobProgress }

    enum BatchResult {
        case done
        case committed(rows: Int, changed: Int, first: String, last: String, duration: Duration)
    }

    struct BatchFailure: Error {
        var error: PostgresError
        var first: String?
        var last: String?
        var retryable: Bool
        /// How long the failed attempt took, from its BEGIN to its ROLLBACK.
        var duration: Duration = .zero

        var isLockTimeout: Bool { error.sqlState == .lockNotAvailable }
    }

    /// `lock-timeout`: the longest a batch ever waits for a lock; nil (0) waits as long as it takes.
    var fullLockTimeout: Duration? { payload.lockTimeoutMs > 0 ? .milliseconds(payload.lockTimeoutMs) : nil }

    /// How long a batch first waits for another session's lock while it holds its own rows. Each
    /// wait of the application behind those rows lasts as long, so it is `max-lock-wait-ms` (or
    /// `lock-timeout` when shorter, or when the governor is off): a batch gives up fast, is
    /// halved and retried, instead of holding a convoy. Only at the minimum size, holding few
    /// rows, does it wait longer: twice as long each time, up to `lock-timeout`.
    var shortLockTimeout: Duration? {
        guard let bound = payload.maxLockWait else { return fullLockTimeout }
        return min(bound, fullLockTimeout ?? bound)
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
            var lockTimeout = shortLockTimeout
            let result: BatchResult
            while true {
                do {
                    result = try await runBatch(attempt: attempt, lockTimeout: lockTimeout)
                    break
                } catch var failure as BatchFailure {
                    (failure.first, failure.last) = await nextBounds()
                    try await recordFailedBatch(failure, attempt: attempt)
                    let bounds = "keys \(failure.first ?? "?")..\(failure.last ?? "?")"
                    // Gave up waiting for another session's lock under the short bound: not an
                    // attempt. Retry at once, halved; at the minimum size, wait twice as long.
                    if failure.isLockTimeout, let bound = lockTimeout, bound < fullLockTimeout ?? .seconds(Int64.max) {
                        if !controller.shrinkAfterLockTimeout(bound: bound) {
                            let longer = fullLockTimeout.map { min(bound * 2, $0) } ?? bound * 2
                            lockTimeout = longer
                            controller.waitLonger(bound: longer)
                        }
                        context.logger.debug(
                            "batch gave up waiting for a lock; retrying smaller",
                            metadata: [
                                "job": "\(context.job.id)", "batch": "\(batchesDone + 1)", "keys": "\(bounds)",
                                "next_size": "\(controller.size)", "lock_timeout_ms": "\(Int(lockTimeout?.milliseconds ?? 0))",
                            ])
                        try await writeSizeReason(force: true)
                        try context.checkpoint()
                        continue
                    }
                    guard failure.retryable, attempt < payload.maxAttempts else {
                        throw JobFailure(
                            "batch \(batchesDone + 1) (\(bounds)) failed\(attempt > 1 ? " \(attempt) times" : ""): "
                                + "\(failure.error.summary); retry the job to resume from key \(cursor ?? "(start)")",
                            detail: failure.error.detail)
                    }
                    controller.shrinkAfterTimeout()
                    try await writeSizeReason(force: true)
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
            try await writeSizeReason()
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

    static let retryableStates: Set<SQLState> = [
        .lockNotAvailable, .queryCanceled, .serializationFailure, .deadlockDetected,
    ]

    /// One batch in one round trip: a single message that begins a transaction of the
    /// enqueuer's session, sets the timeouts, takes the fence, runs the batch with its
    /// checkpoint when the fence allows it, and commits. The COMMIT follows the batch on the
    /// server, not after a trip to the worker and back, so the batch's rows are released as soon
    /// as it is done. When any statement fails, the server runs none of the rest, and the
    /// transaction is rolled back.
    ///
    /// The fence (`<schema>.batch_fence`) holds the job's row `FOR KEY SHARE` where the lease is
    /// still this attempt's: only the lease holder commits a batch, and a rescue (`FOR UPDATE
    /// SKIP LOCKED`) passes the job by while a batch is in flight, so the next holder always
    /// reads the last committed checkpoint. Heartbeats (`FOR NO KEY UPDATE`) do not conflict
    /// with it and keep the lease fresh through a long batch. The batch function calls the fence
    /// first and runs the batch only when it returns NULL; otherwise the message commits nothing
    /// and the fence's answer (pause, cancel, lost) is acted on. The checkpoint (`<schema>.batch_checkpoint`) commits with the batch, or
    /// neither does. Both run with the queue owner's rights and act only on a running job of the
    /// session's own login with this lease. Every value in the message is a number or a
    /// dollar-quoted literal.
    ///
    /// The batch commits with `synchronous_commit = off`: its COMMIT returns, and its rows are
    /// released, without waiting for the WAL flush (early in a backfill, every row's page adds a
    /// full-page image, and that flush took longer than the batch). A server crash may lose the
    /// last batches' commits, but never a batch without its checkpoint, nor a checkpoint without
    /// its batch: both are in one commit record, and the WAL is replayed in order. The job
    /// resumes from the checkpoint that survived, and its success, committed synchronously after
    /// the last batch, cannot survive without every batch before it.
    ///
    /// A shard of a parallel job reads a failed sibling as a pause request in the same fence:
    /// the request `derive_parallel_state` writes may have skipped this row while it was
    /// locked, and the shard must still stop at its next checkpoint so the parent can fail.
    private mutating func runBatch(attempt: Int, lockTimeout: Duration?) async throws -> BatchResult {
        let size = controller.size
        let began = clock.now
        do {
            let rates = recent.reduce((rows: 0, seconds: 0.0)) { ($0.rows + $1.rows, $0.seconds + $1.seconds) }
            let job = context.job.id
            let lease = context.job.leaseToken
            let after = cursor.map { "\(dollarQuote($0))::pg_catalog.text" } ?? "NULL::pg_catalog.text"
            let results = try await session.execute(
                """
                BEGIN;
                SET LOCAL lock_timeout = \(Int((lockTimeout?.milliseconds ?? 0).rounded(.up)));
                SET LOCAL statement_timeout = \(payload.statementTimeoutMs);
                SET LOCAL synchronous_commit = off;
                SELECT b.control, b.first_key, b.last_key, b.n, b.changed, b.ms, b.waiters, b.longest_wait_ms, b.shared,
                    CASE WHEN b.control IS NULL THEN
                        \(schema.qualified("batch_checkpoint"))(\(job), \(lease), \(attempt), \(size), b.first_key, b.last_key,
                            b.n, b.changed, b.ms, b.waiters, b.longest_wait_ms, b.total_wait_ms, \(rates.rows),
                            \(rates.seconds)::double precision)
                    END AS seq
                FROM pg_temp.godwit_batch(\(after), \(size), \(job), \(lease)) b;
                COMMIT
                """)
            guard results.count == 6, let batch = results[4].first else {
                throw JobFailure("batch \(batchesDone + 1): the batch message returned \(results.count) results, not 6")
            }
            switch batch["control"] {
            case nil: break
            case "pause": throw JobInterruption.paused
            case "cancel": throw JobInterruption.cancelled
            default: throw JobInterruption.leaseLost
            }
            let rows = try batch.int("n")
            guard rows > 0 else { return .done }
            let changed = try batch.int("changed")
            let duration = Duration.milliseconds(try batch.double("ms"))
            let longestWait = Duration.milliseconds(try batch.double("longest_wait_ms"))
            if try batch.bool("shared") || longestWait > .zero { sharedSeenAt = clock.now }
            controller.record(
                rows: rows, duration: duration, overhead: clock.now - began - duration, longestLockWait: longestWait,
                shared: sharedSeenAt.map { clock.now - $0 < Self.sharedMemory } ?? (clock.now - startedAt < Self.aloneAfter))
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
            // The message committed when the fence said stop; anything else left a transaction.
            if await session.transactionStatus != .idle { await session.cleanup("ROLLBACK") }
            if let postgres = error as? PostgresError, postgres.code == .server {
                if postgres.sqlState == .leaseLost { throw JobInterruption.leaseLost }
                throw BatchFailure(
                    error: postgres, first: nil, last: nil,
                    retryable: postgres.sqlState.map(Self.retryableStates.contains) == true,
                    duration: clock.now - began)
            }
            throw error
        }
    }

    /// The keys the next batch covers, read in the enqueuer's session, to name a failed batch.
    private func nextBounds() async -> (first: String?, last: String?) {
        var conditions: [String] = []
        var parameters: [any PostgresParameter] = [controller.size]
        if let cursor {
            parameters.append(cursor)
            conditions.append("\(statement.keySQL) > $\(parameters.count)::\(statement.keyType)")
        }
        if let upper = statement.upper {
            parameters.append(upper)
            conditions.append("\(statement.keySQL) <= $\(parameters.count)::\(statement.keyType)")
        }
        let after = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let row = try? await session.query(
            """
            WITH batch AS (SELECT \(statement.keySQL) AS k FROM \(statement.relation) \(after) ORDER BY \(statement.keySQL) LIMIT $1)
            SELECT (SELECT b.k::text FROM batch b ORDER BY b.k LIMIT 1) AS first,
                (SELECT b.k::text FROM batch b ORDER BY b.k DESC LIMIT 1) AS last
            """, parameters
        ).first
        return (row?["first"], row?["last"])
    }

    private func recordFailedBatch(_ failure: BatchFailure, attempt: Int) async throws {
        let parameters: [any PostgresParameter] = [
            context.job.id, batchesDone + 1, attempt, failure.first, failure.last, controller.size,
            failure.duration.milliseconds, failure.error.summary,
        ]
        try await context.pool.withConnection { connection in
            try await connection.query(
                """
                INSERT INTO \(schema.batches)
                    (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms, error)
                VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $7, $8)
                """, parameters)
        }
    }

    /// Writes why the next batch has its size to `job_progress.size_reason`, when it changed: at
    /// once when `force`d (after a failed attempt), else at most once a second.
    private mutating func writeSizeReason(force: Bool = false) async throws {
        // Checked before the text is made: this runs after every batch.
        if !force, let written = writtenReason, clock.now - written.at < .seconds(1) { return }
        let text = controller.explanation
        if writtenReason?.text == text { return }
        writtenReason = (text, clock.now)
        try await context.pool.withConnection { [progressTable, context] connection in
            try await connection.query(
                "UPDATE \(progressTable) SET size_reason = $2 WHERE job_id = $1", [context.job.id, text])
        }
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
            try await context.pool.withConnection { [progressTable, context] connection in
                try await connection.query(
                    "UPDATE \(progressTable) SET hold_reason = $2, updated_at = now() WHERE job_id = $1",
                    [context.job.id, reason])
            }
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

    /// Why the job should hold now, or nil. The server's state and the operator's health query
    /// are read over the worker's own connections; the job's health query in the enqueuer's
    /// session, with its rights.
    private func holdReason() async throws -> String? {
        let row = try await context.pool.withConnection { [statement] connection in
            try await connection.query(
            """
            SELECT
                (SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)
                 FROM pg_catalog.pg_stat_replication)::float8 AS lag,
                EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum v JOIN pg_catalog.pg_stat_activity a ON a.pid = v.pid
                        WHERE v.relid = $1::pg_catalog.oid AND a.backend_type = 'autovacuum worker') AS vacuuming,
                \(Self.archiveBacklogSQL) AS archive_backlog
            """, [statement.relationOID]
            ).first!
        }
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
        if let query = throttle.healthQuery {
            let unhealthy = try await context.pool.withConnection { connection in
                try await healthProblem(query, who: "the worker's health query", on: connection)
            }
            if let unhealthy { return unhealthy }
        }
        if let query = statement.healthQuery,
            let unhealthy = try await healthProblem(query, who: "the job's health query", on: session)
        {
            return unhealthy
        }
        return nil
    }

    /// Runs a health check under a statement timeout; a description of what is wrong when it
    /// is not true.
    private func healthProblem(_ query: String, who: String, on connection: Connection) async throws -> String? {
        let result: [QueryResult]
        do {
            result = try await connection.execute(
                """
                BEGIN;
                SET LOCAL statement_timeout = \(Int(throttle.healthQueryTimeout.milliseconds));
                SELECT (\(query))::boolean AS healthy;
                COMMIT
                """
            )
        } catch let error as PostgresError where error.code == .server {
            await connection.cleanup("ROLLBACK")
            return "\(who) failed: \(error.message)"
        }
        let row = result.count > 2 ? result[2].first : nil
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
        let parameters: [any PostgresParameter] = [context.job.id, batchesDone - Int64(throttle.batchHistory)]
        try await context.pool.withConnection { [schema] connection in
            try await connection.query(
                "DELETE FROM \(schema.batches) WHERE job_id = $1 AND seq <= $2", parameters)
        }
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
