import GodwitPostgres

/// One row of `_sqlx_migrations`.
public struct AppliedMigration: Sendable, Equatable {
    public var version: Int64
    public var description: String
    public var success: Bool
    public var checksum: [UInt8]
    /// Nanoseconds, or -1 while sqlx has not yet recorded it.
    public var executionTime: Int64
    /// `installed_on` as the server prints it.
    public var installedOn: String
}

/// The `_sqlx_migrations` table, read and written exactly as sqlx does so that a Rust
/// service running `sqlx::migrate!` and Godwit agree on what is applied.
///
/// The name is unqualified, as in sqlx, so it resolves through `search_path` the same way.
enum Ledger {
    static let createSQL = """
        CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL
        );
        """

    /// Creates the table if needed. Call only while holding the migration lock.
    ///
    /// `CREATE TABLE IF NOT EXISTS` fails even for a table that exists when the database is
    /// read-only (`default_transaction_read_only`) or the role may not create in the schema;
    /// then an existing ledger is used as it is, so the error comes from the migration that
    /// cannot run, naming it. Without a ledger the error says that it is the ledger that
    /// cannot be created.
    static func ensure(on connection: Connection) async throws {
        do {
            try await connection.execute(createSQL)
        } catch let error as PostgresError where error.code == .server {
            if (try? await exists(on: connection)) == true { return }
            throw MigrationError(
                .execution, "cannot create the migrations ledger _sqlx_migrations: \(error)", underlying: error)
        }
    }

    static func exists(on connection: Connection) async throws -> Bool {
        let row = try await connection.query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS present").first
        return try row?.bool("present") ?? false
    }

    /// Every row in version order; empty when the table does not exist yet.
    static func applied(on connection: Connection) async throws -> [AppliedMigration] {
        guard try await exists(on: connection) else { return [] }
        let result = try await connection.query(
            """
            SELECT version, description, success, checksum, execution_time, installed_on::text AS installed_on
            FROM _sqlx_migrations ORDER BY version
            """)
        return try result.rows.map { row in
            AppliedMigration(
                version: try row.int64("version"), description: try row.string("description"),
                success: try row.bool("success"), checksum: try row.bytes("checksum"),
                executionTime: try row.int64("execution_time"), installedOn: try row.string("installed_on"))
        }
    }

    static func insert(
        _ migration: Migration, success: Bool, executionTime: Int64, on connection: Connection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
            VALUES ($1, $2, $3, $4, $5)
            """,
            [migration.version, migration.description, success, ByteaParameter(migration.checksum), executionTime])
    }

    static func setExecutionTime(_ nanoseconds: Int64, version: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE _sqlx_migrations SET execution_time = $1 WHERE version = $2", [nanoseconds, version])
    }

    static func delete(version: Int64, on connection: Connection) async throws {
        try await connection.query("DELETE FROM _sqlx_migrations WHERE version = $1", [version])
    }
}
