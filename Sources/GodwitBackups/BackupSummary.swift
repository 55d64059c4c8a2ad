/// How many backups are recorded, and the newest one's age and size: what `/metrics` shows.
public struct BackupSummary: Sendable, Equatable {
    public var count: Int64
    /// Nil when there is none.
    public var newestAgeSeconds: Double?
    public var newestSizeBytes: Int64?
}
