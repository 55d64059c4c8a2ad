import GodwitBackups
import GodwitPostgres
import GodwitQueue

extension SchemaPart {
    /// The jobs' part (owner `jobs`): batched jobs' tables and functions, the link from a backup
    /// to the migrate job that took it, and the grant functions, which cover every owner's
    /// objects. Requires the queue's and the backups' parts. `Resources/jobs_schema.sql`,
    /// embedded at build time and decoded once.
    public static let jobs = SchemaPart(
        owner: "jobs", requires: [SchemaPart.queue.owner, SchemaPart.backups.owner],
        install: SchemaPart.template(PackageResources.jobs_schema_sql))
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
