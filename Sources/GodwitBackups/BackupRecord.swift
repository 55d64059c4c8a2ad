/// A recorded backup as the dashboard shows it: what `<schema>.backups` says of it, and its
/// file only where this session may see it.
public struct BackupRecord: Sendable, Equatable {
    /// Nil for a session that may not see where backups are (`grant_read` only): the file comes
    /// through `<schema>.backup_files`, which shows it to controllers and the owner.
    public var file: String?
    public var sizeBytes: Int64
    public var databaseName: String
    /// Seconds since it was recorded.
    public var ageSeconds: Double
    /// When it was verified, in UTC (`YYYY-MM-DD HH:MM:SS`).
    public var verifiedAt: String
    public var sha256: String
    /// Why it was taken (`BackupReason`); nil for backups recorded before queue schema step 4.
    public var reason: String?
}
