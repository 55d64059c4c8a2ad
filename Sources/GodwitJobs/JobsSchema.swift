import GodwitBackups
import GodwitPostgres
import GodwitQueue

extension SchemaPart {
    /// The jobs' part (owner `jobs`): batched jobs' tables and functions, the link from a backup
    /// to the migrate job that took it, and the grant functions, which cover every owner's
    /// objects. Requires the queue's and the backups' parts. Its new install is `jobsFiles`,
    /// run as one template in that order, in the one transaction that records the part's
    /// version.
    public static let jobs = SchemaPart(
        owner: "jobs", requires: [SchemaPart.queue.owner, SchemaPart.backups.owner],
        install: jobsFiles.map(SchemaPart.template).joined(separator: "\n"))

    /// The files of the jobs' part (`Resources/jobs_*.sql`, embedded at build time), in the
    /// order they install: each uses only what the queue's and the backups' parts and the
    /// files before it made, and the rights come last, since they name everything.
    static let jobsFiles: [[UInt8]] = [
        // A batched job's progress row, its batch history and the progress view.
        PackageResources.jobs_progress_sql,
        // batched_target and enqueue_batched.
        PackageResources.jobs_enqueue_sql,
        // A parallel job's state, derived from its shards'.
        PackageResources.jobs_parallel_sql,
        // The batch fence, the checkpoint and resume_batched_from.
        PackageResources.jobs_checkpoint_sql,
        // The backup's link to its migrate job, and backup_files.
        PackageResources.jobs_backups_sql,
        // grant_read, grant_enqueue, grant_control, and PUBLIC's rights revoked.
        PackageResources.jobs_rights_sql,
    ]
}

extension QueueSchema {
    /// The schema with everything that runs on the queue: installing it installs the queue's
    /// part, then the backups' and the jobs'. What a worker, `job enqueue` and `migrate run
    /// --enqueue` install.
    public static func withJobs(name: String = "godwit") -> QueueSchema {
        QueueSchema(name: name, companions: [.backups, .jobs], legacySteps: legacySteps)
    }

    /// The five steps that installed every owner's objects before owners
    /// (`Resources/legacy/queue_schema*.sql`, as released), for a database that an older
    /// godwit left at step 1 to 4: they take it to step 5, which becomes the owners' versions.
    static let legacySteps = [
        PackageResources.queue_schema_sql, PackageResources.queue_schema_2_sql, PackageResources.queue_schema_3_sql,
        PackageResources.queue_schema_4_sql, PackageResources.queue_schema_5_sql,
    ].map(SchemaPart.template)
}
