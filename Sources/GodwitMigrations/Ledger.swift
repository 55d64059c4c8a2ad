import GodwitPostgres

/// One row of the ledger (`_sqlx_migrations`).
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

/// The ledger table, read and written exactly as sqlx does so that a Rust service running
/// `sqlx::migrate!` and Godwit agree on what is applied.
///
/// `table` is SQL text put into each statement as written, as sqlx does with its
/// `table-name`: `_sqlx_migrations` by default, unqualified, so it resolves through
/// `search_path` the same way; `accounts._sqlx_migrations` for a schema of its own.
/// `MigrationConfig` accepts only identifiers there, never other SQL.
struct Ledger: Sendable {
    var table: String

    init(table: String = MigrationConfig.defaultTableName) {
        self.table = table
    }

    static let standard = Ledger()

    var createSQL: String {
        """
        CREATE TABLE IF NOT EXISTS \(table) (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL
        );
        """
    }

    /// Creates the table if needed. Call only while holding the migration lock.
    ///
    /// `CREATE TABLE IF NOT EXISTS` fails even for a table that exists when the database is
    /// read-only (`default_transaction_read_only`) or the role may not create in the schema;
    /// then an existing ledger is used as it is, so the error comes from the migration that
    /// cannot run, naming it. Without a ledger the error says that it is the ledger that
    /// cannot be created.
    func ensure(on connection: Connection) async throws {
        do {
            try await connection.execute(createSQL)
        } catch let error as PostgresError where error.code == .server {
            if (try? await exists(on: connection)) == true { return }
            throw MigrationError(
                .execution, "cannot create the migrations ledger \(table): \(error)", underlying: error)
        }
    }

    /// `CREATE SCHEMA IF NOT EXISTS` for each of sqlx.toml's `create-schemas`, as sqlx does
    /// before it looks for the ledger. Call only while holding the migration lock.
    static func createSchemas(_ schemas: [String], on connection: Connection) async throws {
        for schema in schemas {
            do {
                try await connection.execute("CREATE SCHEMA IF NOT EXISTS \(schema)")
            } catch let error as PostgresError where error.code == .server {
                throw MigrationError(
                    .execution, "cannot create schema \(schema) (create-schemas in sqlx.toml): \(error)",
                    underlying: error)
            }
        }
    }

    /// Whether the table exists; false also when its schema does not exist yet.
    func exists(on connection: Connection) async throws -> Bool {
        let row = try await connection.query("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present", [table]).first
        return try row?.bool("present") ?? false
    }

    /// Every row in version order; empty when the table does not exist yet.
    func applied(on connection: Connection) async throws -> [AppliedMigration] {
        guard try await exists(on: connection) else { return [] }
        let result = try await connection.query(
            """
            SELECT version, description, success, checksum, execution_time, installed_on::text AS installed_on
            FROM \(table) ORDER BY version
            """)
        return try result.rows.map { row in
            AppliedMigration(
                version: try row.int64("version"), description: try row.string("description"),
                success: try row.bool("success"), checksum: try row.bytes("checksum"),
                executionTime: try row.int64("execution_time"), installedOn: try row.string("installed_on"))
        }
    }

    /// The default ledger's rows (for callers that know no sqlx.toml).
    static func applied(on connection: Connection) async throws -> [AppliedMigration] {
        try await standard.applied(on: connection)
    }

    func insert(
        _ migration: Migration, success: Bool, executionTime: Int64, on connection: Connection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO \(table) (version, description, success, checksum, execution_time)
            VALUES ($1, $2, $3, $4, $5)
            """,
            [migration.version, migration.description, success, ByteaParameter(migration.checksum), executionTime])
    }

    /// Marks a row recorded as started (`success = false`) done, with its execution time.
    func markApplied(version: Int64, executionTime nanoseconds: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(table) SET success = TRUE, execution_time = $1 WHERE version = $2", [nanoseconds, version])
    }

    func setExecutionTime(_ nanoseconds: Int64, version: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(table) SET execution_time = $1 WHERE version = $2", [nanoseconds, version])
    }

    func setChecksum(_ checksum: [UInt8], version: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(table) SET checksum = $1 WHERE version = $2", [ByteaParameter(checksum), version])
    }

    func delete(version: Int64, on connection: Connection) async throws {
        try await connection.query("DELETE FROM \(table) WHERE version = $1", [version])
    }
}
