import GodwitPostgres

/// What a restore must not leave going on: work on the application's tables that would carry on
/// from state the restore rewinds. `BackupManager` asks it before a restore, pauses through it,
/// runs its statement inside the restore's own transaction, and lists what it left stale.
///
/// Backups know no job and read no table of the queue's: the module that keeps such work
/// implements this (GodwitJobs' `BatchedRestoreGuard`, over batched jobs and their checkpoints),
/// and whoever makes the manager hands it in. A manager without one restores without asking.
public protocol RestoreGuard: Sendable {
    /// The work on tables in the schemas a restore replaces (every schema but the system's and
    /// Godwit's own) that is running or has a checkpoint. Empty when nothing is installed to
    /// hold such work.
    func checkpoints(on connection: Connection) async throws -> [BatchedCheckpoint]

    /// Asks job `id` to pause: a queued one pauses at once, a running one at its next checkpoint.
    func pause(job id: Int64, on connection: Connection) async throws

    /// SQL for the restore's own transaction, run once the replaced schemas are dropped: it
    /// fails, and so rolls the whole restore back, if work started going on by itself since
    /// `checkpoints` was asked. Nil when there is nothing to guard.
    func guardStatement(on connection: Connection) async throws -> String?
}
