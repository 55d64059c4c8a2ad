import GodwitPostgres

/// `CREATE INDEX CONCURRENTLY` in a `-- no-transaction` file: what a build that did not finish
/// leaves (an INVALID index) is dropped, or refused before the migration is recorded.
extension Migrator {
    /// Before a build: an invalid index of the name it creates, on the same table, is what an
    /// earlier build that failed or was interrupted left; drop it so the build runs again
    /// (`IF NOT EXISTS` would otherwise skip it and call the invalid index a success).
    func dropLeftoverOfSameName(
        _ build: ConcurrentIndexBuild, _ migration: Migration, _ statement: SQLStatement, on connection: Connection
    ) async throws {
        guard let leftover = try await build.leftoverOfSameName(on: connection) else { return }
        for name in try await ConcurrentIndexBuild.names([leftover], on: connection) {
            logger.warning(
                "dropping invalid index \(name), left by an earlier build that did not finish, to build it again",
                metadata: ["version": "\(migration.version)", "file": "\(migration.path):\(statement.startLine)"])
            try await dropIndexConcurrently(name, migration, statement, on: connection)
        }
    }

    /// After a failed build: drop the invalid indexes it left on its table.
    func dropWhatAFailedBuildLeft(
        _ build: ConcurrentIndexBuild, before: Set<UInt32>, _ migration: Migration, on connection: Connection
    ) async throws {
        guard await connection.isOpen, await connection.transactionStatus == .idle else { return }
        let left = try await build.invalidIndexes(on: connection).subtracting(before)
        for name in try await ConcurrentIndexBuild.names(Array(left), on: connection) {
            logger.notice(
                "dropping invalid index \(name) left by the failed build", metadata: ["version": "\(migration.version)"]
            )
            try await connection.execute("DROP INDEX CONCURRENTLY IF EXISTS \(name)")
        }
    }

    private func dropIndexConcurrently(
        _ name: String, _ migration: Migration, _ statement: SQLStatement, on connection: Connection
    ) async throws {
        try await retryingLockTimeouts(migration, statement: statement) { watch in
            try await watching(connection, watch) {
                try await connection.execute("DROP INDEX CONCURRENTLY IF EXISTS \(name)")
            }
        }
    }

    /// Refuses to record a no-transaction migration whose concurrent builds left an invalid
    /// index (a rerun of `CREATE INDEX CONCURRENTLY IF NOT EXISTS` over one that is not its own).
    func refuseInvalidIndexes(
        _ builds: [(ConcurrentIndexBuild, Set<UInt32>)], of migration: Migration, on connection: Connection
    ) async throws {
        var invalid: [String] = []
        for (build, before) in builds {
            invalid += try await build.invalidAfterwards(before: before, on: connection)
        }
        guard !invalid.isEmpty else { return }
        let verb = migration.kind == .down ? "revert of migration" : "migration"
        let names = invalid.joined(separator: ", ")
        let recorded =
            migration.kind == .down
            ? "so its row stays in \(ledger.table): clear it with DROP INDEX CONCURRENTLY \(invalid[0]); then revert again"
            : "so it stays recorded as partially applied (success = false in \(ledger.table)): clear it with DROP INDEX CONCURRENTLY \(invalid[0]), then DELETE FROM \(ledger.table) WHERE version = \(migration.version) and run the migration again"
        throw MigrationError(
            .invalidIndex,
            "\(verb) \(migration.version) (\(migration.path)) ran, but index \(names) is INVALID (a concurrent build that did not finish, or one that IF NOT EXISTS skipped), \(recorded)",
            version: migration.version)
    }
}
