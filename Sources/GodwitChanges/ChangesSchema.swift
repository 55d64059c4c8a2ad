import GodwitJobs
import GodwitPostgres
import GodwitQueue

extension SchemaPart {
    /// The changes' part (owner `changes`): the record of every zero-downtime column change,
    /// the reader evidence the worker samples, and the `changes` view. Requires the jobs' part
    /// (a change's backfill is a batched job). Its new install is `changesFiles`, run as one
    /// template in that order.
    ///
    /// Version 2 added the rights (`changes_rights.sql`: `grant_change`, the row security on
    /// `change_records`): its upgrade from version 1 is that file alone, the last of the new
    /// install's, so an upgraded schema and a new one end alike.
    public static let changes = SchemaPart(
        owner: "changes", requires: [SchemaPart.jobs.owner],
        install: changesFiles.map(SchemaPart.template).joined(separator: "\n"),
        upgrades: [SchemaPart.template(PackageResources.changes_rights_sql)])

    /// The files of the changes' part (`Resources/changes_*.sql`, embedded at build time), in
    /// the order they install.
    static let changesFiles: [[UInt8]] = [
        // change_records: what start made and where the steps after it stand.
        PackageResources.changes_records_sql,
        // change_readers and its samples: the evidence that no old reader remains.
        PackageResources.changes_readers_sql,
        // change_blockers and the changes view.
        PackageResources.changes_view_sql,
        // grant_change, the row security on change_records, change_cancel_jobs (version 2).
        PackageResources.changes_rights_sql,
    ]
}

extension QueueSchema {
    /// The schema with everything that runs on the queue and the changes' records: what a
    /// worker and the `change` commands install.
    public static func withChanges(name: String = "godwit") -> QueueSchema {
        let jobs = withJobs(name: name)
        return QueueSchema(name: name, companions: jobs.companions + [.changes], legacySteps: jobs.legacySteps)
    }
}
