import GodwitPostgres

/// Reads the migrations ledger that sqlx.toml names (`table-name`, `_sqlx_migrations` by
/// default), without a migrations folder: what the dashboard shows when it was given none.
/// The name resolves through the session's own search_path, as sqlx's does, so the session
/// must be the login's own, not one with a pinned search_path.
public struct LedgerReader: Sendable {
    public let config: MigrationConfig

    public init(config: MigrationConfig = MigrationConfig()) {
        self.config = config
    }

    /// Every row in version order; empty when the table does not exist.
    public func entries(on connection: Connection) async throws -> [LedgerEntry] {
        let ledger = Ledger(table: config.tableName)
        guard try await ledger.exists(on: connection) else { return [] }
        return try await connection.query(
            """
            SELECT version, description, success, execution_time,
                to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS installed_on
            FROM \(ledger.table) ORDER BY version
            """
        ).rows.map {
            LedgerEntry(
                version: try $0.int64("version"), description: try $0.string("description"),
                success: try $0.bool("success"), executionTime: try? $0.int64("execution_time"),
                installedOn: $0["installed_on"])
        }
    }
}
