import GodwitPostgres

/// What the ledger holds against the source, read without locking or creating anything.
extension Migrator {
    /// The source's migrations not in the configured ledger (all of them while it does not
    /// exist), up to and including `targetVersion` when given, in version order. Reads only.
    public func pendingMigrations(on connection: Connection, upTo targetVersion: Int64? = nil) async throws
        -> [Migration]
    {
        let applied = Set(try await ledger.applied(on: connection).map(\.version))
        return source.upMigrations.filter { !applied.contains($0.version) && $0.version <= (targetVersion ?? .max) }
    }

    /// The state of every migration in the source and in the ledger, in version order.
    /// Reads only: does not lock or create the ledger table.
    public func status(on connection: Connection) async throws -> [MigrationStatus] {
        let applied = try await ledger.applied(on: connection)
        let byVersion = Dictionary(applied.map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        var statuses: [MigrationStatus] = source.upMigrations.map { migration in
            let row = byVersion[migration.version]
            let state: MigrationStatus.State
            if let row {
                if !row.success {
                    state = .failed
                } else {
                    state = row.checksum == migration.checksum ? .installed : .modified
                }
            } else {
                state = .pending
            }
            return MigrationStatus(
                version: migration.version, description: migration.description, state: state,
                reversible: source.down(for: migration.version) != nil, noTransaction: migration.noTransaction,
                localChecksum: migration.checksum, appliedChecksum: row?.checksum, installedOn: row?.installedOn,
                executionTime: row?.executionTime, path: migration.path)
        }
        let local = Set(source.upMigrations.map(\.version))
        for row in applied where !local.contains(row.version) {
            // A lone down keeps the version present, as it does for run (see checkedLedger).
            let down = source.down(for: row.version)
            let state: MigrationStatus.State = !row.success ? .failed : down == nil ? .missingFromSource : .downOnly
            statuses.append(
                MigrationStatus(
                    version: row.version, description: row.description, state: state,
                    reversible: down != nil, noTransaction: false, localChecksum: nil, appliedChecksum: row.checksum,
                    installedOn: row.installedOn, executionTime: row.executionTime, path: down?.path))
        }
        return statuses.sorted { $0.version < $1.version }
    }
}
