/// Why a backup was taken, as recorded in `<schema>.backups.reason` and shown by `backup list`:
/// the words a person (or ops/rollback-migration) looks for when deciding which backup to
/// restore.
public enum BackupReason {
    /// `godwit backup create` without `--reason`.
    public static let byHand = "by hand"

    /// Before a migration run: `before migration V (description)`, or, when the run applies
    /// several, `before migrations V1 (first) to V3 (last)`: restoring it undoes all of them.
    /// `before migrate run (nothing pending)` when there is nothing to apply.
    public static func beforeMigrations(_ pending: [(version: Int64, description: String)]) -> String {
        guard let first = pending.first, let last = pending.last else { return "before migrate run (nothing pending)" }
        if pending.count == 1 { return "before migration \(first.version) (\(first.description))" }
        return "before migrations \(first.version) (\(first.description)) to \(last.version) (\(last.description))"
    }

    /// Before ops/rollback-migration reverts `version`.
    public static func beforeRollback(of version: Int64) -> String {
        "before rollback of \(version)"
    }
}
