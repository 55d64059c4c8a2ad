import GodwitPostgres

extension Migrator {
    /// Adopts a database whose schema already exists (made by hand, by another tool, or
    /// restored): records every migration up to `targetVersion` as applied, with its checksum
    /// and `execution_time` 0, without running it.
    ///
    /// Refuses, recording nothing, when the target is not in the source or when any of those
    /// versions is already in the ledger. The rows are written in one transaction under the
    /// migration lock, so a concurrent `run` (Godwit's or sqlx's) sees all of them or none.
    @discardableResult
    public func baseline(
        on connection: Connection, targetVersion: Int64, onEvent: (MigrationEvent) -> Void = { _ in }
    ) async throws -> [MigrationEvent] {
        guard source.up(for: targetVersion) != nil else {
            throw MigrationError(
                .versionNotPresent,
                "migration \(targetVersion) is not present in the migration source \(source.directory) (baseline records the migrations up to an existing version)",
                version: targetVersion)
        }
        let migrations = source.upMigrations.filter { $0.version <= targetVersion }
        return try await withLock(on: connection, dryRun: false) {
            let applied = try await ledger.applied(on: connection)
            let wanted = Set(migrations.map(\.version))
            let present = applied.filter { wanted.contains($0.version) }.map(\.version)
            guard present.isEmpty else {
                let list = present.map(String.init).joined(separator: ", ")
                throw MigrationError(
                    .alreadyApplied,
                    "\(ledger.table) already has migration\(present.count == 1 ? "" : "s") \(list): baseline records only versions the ledger does not have, so nothing was recorded",
                    version: present[0])
            }
            do {
                try await connection.withTransaction { connection in
                    for migration in migrations {
                        try await ledger.insert(migration, success: true, executionTime: 0, on: connection)
                    }
                }
            } catch {
                if let error = error as? PostgresError {
                    throw MigrationError(
                        .execution, "baseline recorded nothing: writing \(ledger.table) failed: \(error)",
                        underlying: error)
                }
                throw error
            }
            let events = migrations.map {
                MigrationEvent(
                    action: .baselined, version: $0.version, description: $0.description, kind: $0.kind,
                    duration: .zero)
            }
            events.forEach(onEvent)
            return events
        }
    }
}
