import GodwitPostgres

extension Migrator {
    /// Records `migration` in the ledger as applied, without running it, as `baseline` does for
    /// one version, inside the caller's open transaction on `connection`: the row commits or
    /// rolls back with whatever else the transaction does (`godwit change complete
    /// --write-migration` writes it in the same transaction as the change's DDL).
    ///
    /// Takes sqlx's migration lock for the transaction (`pg_advisory_xact_lock`, which shares
    /// its key space with the session lock sqlx and `migrate run` hold), so it waits for a run
    /// in progress; call it under a `lock_timeout`, which bounds that wait as any other. Makes
    /// the ledger (and sqlx.toml's `create-schemas`) when missing. Refuses a version the ledger
    /// already has, recording nothing.
    public func recordApplied(_ migration: Migration, inTransactionOn connection: Connection) async throws {
        let database =
            try await connection.query("SELECT pg_catalog.current_database() AS db").first?.string("db") ?? ""
        try await connection.query(
            "SELECT pg_catalog.pg_advisory_xact_lock($1::pg_catalog.int8)",
            [MigrationLock.key(forDatabase: database)])
        try await Ledger.createSchemas(config.createSchemas, on: connection)
        try await ledger.ensure(on: connection)
        if try await connection.query(
            "SELECT 1 AS present FROM \(ledger.table) WHERE version = $1", [migration.version]
        ).first != nil {
            throw MigrationError(
                .alreadyApplied,
                "\(ledger.table) already has migration \(migration.version): nothing was recorded",
                version: migration.version)
        }
        try await ledger.insert(migration, success: true, executionTime: 0, on: connection)
    }
}
