import GodwitPostgres
import GodwitQueue

/// One batch: the message that runs it with its checkpoint, and what a failure knows of it.
extension BatchRunner {
    /// What a batch did: the end of the table, or one batch committed.
    enum BatchResult {
        case done
        case committed(rows: Int, changed: Int, first: String, last: String, duration: Duration)
    }

    /// A batch that failed, with its keys when they could be read.
    struct BatchFailure: Error {
        var error: PostgresError
        var first: String?
        var last: String?
        var retryable: Bool
        /// How long the failed attempt took, from its BEGIN to its ROLLBACK.
        var duration: Duration = .zero

        var isLockTimeout: Bool { error.sqlState == .lockNotAvailable }
    }

    /// The errors a batch is retried after, smaller.
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
    mutating func runBatch(attempt: Int, lockTimeout: Duration?) async throws -> BatchResult {
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
                shared: sharedSeenAt.map { clock.now - $0 < Self.sharedMemory }
                    ?? (clock.now - startedAt < Self.aloneAfter))
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
    func nextBounds() async -> (first: String?, last: String?) {
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
}
