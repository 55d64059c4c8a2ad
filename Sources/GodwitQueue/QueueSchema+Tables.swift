/// The queue's tables, views and functions by name, quoted and qualified with the schema, so
/// that SQL reads `FROM \(schema.jobs) j` and a name is spelled once.
extension QueueSchema {
    /// `<schema>.jobs`: one row a job.
    public var jobs: String { qualified("jobs") }
    /// `<schema>.job_errors`: each failed attempt's error.
    public var jobErrors: String { qualified("job_errors") }
    /// `<schema>.job_details`: a job's payload, result and error detail, shown only to its
    /// enqueuer, a controller or the owner.
    public var jobDetails: String { qualified("job_details") }
    /// `<schema>.progress`: every job with its batched progress, if any, and whether it is stale.
    public var progress: String { qualified("progress") }
    /// `<schema>.workers`: one row a worker, with its heartbeat.
    public var workers: String { qualified("workers") }
    /// `<schema>.stale_after()`: how long a worker may go unseen before its jobs are stale.
    public var staleAfter: String { qualified("stale_after") }
    /// `<schema>.job_state`: the enum of `JobState`.
    public var jobStateType: String { qualified("job_state") }
}
