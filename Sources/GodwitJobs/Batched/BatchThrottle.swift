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
