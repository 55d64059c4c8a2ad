import GodwitPostgres
import Logging

/// Work a worker does on a timer while it runs, beside the jobs it claims: a named body run
/// every `interval` on the worker's own pool (`WorkerConfiguration.periodicTasks`).
///
/// The queue knows nothing of what a task does; what registers one (the `godwit worker`
/// command) decides. A task runs first as soon as the worker has installed its schema, then
/// `interval` after each run ends, so two runs of one task never overlap in one worker (other
/// workers run theirs too: a task must be safe to run from several at once). A run that throws
/// is logged with the task's name and the loop goes on; the loop stops with the worker, after
/// its running jobs. A task runs the worker's own SQL only, never SQL an enqueuer controls:
/// what needs that belongs in a job, which runs in the enqueuer's sessions.
///
/// A task that reacts to jobs ending names their kinds (`wakeOn`): a job of one of them that
/// ends on this worker, its outcome recorded, runs the task at once instead of at the end of
/// its interval (after the run in progress, if one is). The interval stays the fallback, for
/// the jobs that end on other workers.
public struct PeriodicTask: Sendable {
    /// Names the task in the worker's log.
    public var name: String
    public var interval: Duration
    /// The kinds of job whose end on this worker runs the task early.
    public var wakeOn: Set<JobKind>
    public var body: @Sendable (PeriodicTaskContext) async throws -> Void

    public init(
        name: String, every interval: Duration, wakeOn: Set<JobKind> = [],
        _ body: @escaping @Sendable (PeriodicTaskContext) async throws -> Void
    ) {
        self.name = name
        self.interval = interval
        self.wakeOn = wakeOn
        self.body = body
    }
}

/// What one run of a `PeriodicTask` gets from its worker.
public struct PeriodicTaskContext: Sendable {
    /// The worker's own connections (search_path pinned), shared with its claims and
    /// heartbeats: lease one for as short as the work allows.
    public let pool: ConnectionPool
    /// The worker's schema.
    public let schema: QueueSchema
    /// The worker's logger, with the task's name in its metadata.
    public let logger: Logger

    public init(pool: ConnectionPool, schema: QueueSchema, logger: Logger) {
        self.pool = pool
        self.schema = schema
        self.logger = logger
    }
}
