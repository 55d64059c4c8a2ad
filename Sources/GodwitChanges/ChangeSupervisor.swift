import GodwitPostgres
import GodwitQueue
import Logging

/// Moves changes on once their backfill has ended: the worker's periodic task for changes.
///
/// A change in phase `backfilling` whose backfill job succeeded goes to `verifying`, and its
/// finish job (kind `change`, enqueued at start with `run_at = 'infinity'`) becomes due at
/// once; the jobs table's trigger NOTIFYs on the new `run_at`, so a listening worker claims it
/// without waiting for its poll. Both happen in one statement, so nothing sees one without the
/// other. A backfill that failed or was cancelled leaves the phase as it is and its reason in
/// `change_records.error` (one line), cleared again once the backfill is retried.
///
/// Every write is conditional on the phase and the value it replaces, so any number of workers
/// may run this at once: the second one to reach a change finds it moved already and does
/// nothing, and the finish job is released once.
public struct ChangeSupervisor: Sendable {
    public var schema: QueueSchema
    /// How often a worker looks.
    public var interval: Duration

    public init(schema: QueueSchema, interval: Duration = .seconds(5)) {
        self.schema = schema
        self.interval = interval
    }

    /// What one look did.
    public struct Report: Sendable, Equatable {
        /// Changes moved to `verifying`, with their finish job released (nil when the change
        /// has none left: a job deleted, or one no longer queued or paused).
        public var advanced: [(change: String, finishJob: Int64?)] = []
        /// Changes whose backfill failed or was cancelled, with the reason just recorded.
        public var stalled: [(change: String, reason: String)] = []

        public init() {}

        public static func == (lhs: Report, rhs: Report) -> Bool {
            lhs.advanced.elementsEqual(rhs.advanced) { $0.change == $1.change && $0.finishJob == $1.finishJob }
                && lhs.stalled.elementsEqual(rhs.stalled) { $0.change == $1.change && $0.reason == $1.reason }
        }
    }

    /// The task `godwit worker` registers: `advance` every `interval`, and at once when a
    /// batched job (a backfill, or a shard of one) ends on this worker, its moves logged. The
    /// interval is the fallback for backfills that end on another worker.
    public var task: PeriodicTask {
        PeriodicTask(name: "change supervisor", every: interval, wakeOn: [.batched]) { context in
            let report = try await context.pool.withConnection { try await self.advance(on: $0) }
            for (change, job) in report.advanced {
                context.logger.notice(
                    "change \(change): the backfill succeeded; verifying",
                    metadata: ["change": "\(change)", "finish_job": "\(job.map(String.init) ?? "none")"])
            }
            for (change, reason) in report.stalled {
                context.logger.error("change \(change): \(reason)", metadata: ["change": "\(change)"])
            }
        }
    }

    /// Looks once, in one transaction on `connection` (the worker's own session).
    public func advance(on connection: Connection) async throws -> Report {
        let records = schema.qualified("change_records")
        let jobs = schema.jobs
        return try await connection.withTransaction { conn in
            var report = Report()
            let moved = try await conn.query(
                """
                WITH moved AS (
                    UPDATE \(records) c SET phase = 'verifying', error = NULL, updated_at = now()
                    FROM \(jobs) b
                    WHERE c.phase = 'backfilling' AND b.id = c.backfill_job_id AND b.state = 'succeeded'
                    RETURNING c.name, c.finish_job_id
                ), released AS (
                    UPDATE \(jobs) f SET run_at = now()
                    FROM moved
                    WHERE f.id = moved.finish_job_id AND f.state IN ('queued', 'paused')
                    RETURNING f.id
                )
                SELECT moved.name, released.id AS finish_job
                FROM moved LEFT JOIN released ON released.id = moved.finish_job_id
                ORDER BY moved.name
                """)
            report.advanced = try moved.rows.map { row in
                (change: try row.string("name"), finishJob: row["finish_job"].flatMap { Int64($0) })
            }
            // A failed or cancelled backfill (or one whose job row is gone) is recorded once;
            // a backfill queued or running again (`job retry`) clears what was recorded.
            let stalled = try await conn.query(
                """
                WITH state AS (
                    SELECT c.name,
                           CASE
                               WHEN b.id IS NULL THEN 'the backfill''s job is gone from the queue'
                               WHEN b.state IN ('failed', 'cancelled') THEN format(
                                   'the backfill (job %s) %s: %s; the change stays backfilling until it succeeds (godwit job retry %s, or godwit change abort %s)',
                                   b.id, b.state,
                                   coalesce(regexp_replace(b.last_error, '[[:cntrl:]]+', ' ', 'g'), 'no error recorded'),
                                   b.id, c.name)
                           END AS reason
                    FROM \(records) c LEFT JOIN \(jobs) b ON b.id = c.backfill_job_id
                    WHERE c.phase = 'backfilling'
                )
                UPDATE \(records) c SET error = state.reason, updated_at = now()
                FROM state
                WHERE c.name = state.name AND c.phase = 'backfilling' AND c.error IS DISTINCT FROM state.reason
                RETURNING c.name, c.error
                """)
            report.stalled = try stalled.rows.compactMap { row in
                guard let reason = row["error"] else { return nil }
                return (change: try row.string("name"), reason: reason)
            }
            return report
        }
    }
}
