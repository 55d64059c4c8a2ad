/// One row of the migrations ledger as the dashboard and `/metrics` show it
/// (`LedgerReader`): no checksum, the time in UTC.
public struct LedgerEntry: Sendable, Equatable {
    public var version: Int64
    public var description: String
    public var success: Bool
    /// Nanoseconds, as sqlx records it (-1 while it has not); nil when unreadable.
    public var executionTime: Int64?
    /// `installed_on` in UTC, `YYYY-MM-DD HH:MM:SS`.
    public var installedOn: String?
}
