import GodwitPostgres
import Logging

/// What happened to one migration during `run` or `revert`.
public struct MigrationEvent: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Applied (up) or reverted (down) just now.
        case applied = "Applied"
        /// Would run, in a dry run.
        case canApply = "Can apply"
        /// Left out by `--target-version`.
        case skipped = "Skipped"
    }

    public var action: Action
    public var version: Int64
    public var description: String
    public var kind: Migration.Kind
    public var duration: Duration

    /// sqlx's line: `Applied 20240101000000/migrate create media (12.3ms)`.
    public var line: String {
        "\(action.rawValue) \(version)/\(kind.label) \(description) (\(duration.rustDebugDescription))"
    }
}

/// Applies and reverts the migrations of a `MigrationSource`, the way sqlx's `Migrator` does,
/// on one connection that holds the migration lock throughout.
///
/// A Swift service can call this at startup exactly as a Rust service calls
/// `sqlx::migrate!("./migrations").run(&pool)`:
/// ```swift
/// let migrator = try Migrator(directory: "migrations")
/// try await migrator.run(on: connection)
/// ```
public struct Migrator: Sendable {
    public let source: MigrationSource
    public var logger: Logger

    public init(source: MigrationSource, logger: Logger = Logger(label: "godwit.migrate")) {
        self.source = source
        self.logger = logger
    }

    public init(directory: String, logger: Logger = Logger(label: "godwit.migrate")) throws {
        self.init(source: try MigrationSource.load(directory: directory), logger: logger)
    }

    // MARK: run

    /// Applies pending migrations up to `targetVersion` (all when nil).
    ///
    /// Every check (a dirty ledger, modified or missing files, the target) happens before the
    /// first migration runs, so a refusal changes nothing. A dry run takes no lock and does
    /// not create the ledger table.
    @discardableResult
    ///
    /// `beforeEach` runs before each migration is applied and may throw to stop there (a job
    /// being paused or cancelled); what was applied stays applied.
    public func run(
        on connection: Connection, targetVersion: Int64? = nil, dryRun: Bool = false,
        ignoreMissing: Bool = false, beforeEach: () throws -> Void = {},
        onEvent: (MigrationEvent) -> Void = { _ in }
    ) async throws -> [MigrationEvent] {
        if let targetVersion, !source.contains(version: targetVersion) {
            throw MigrationError(
                .versionNotPresent, "migration \(targetVersion) is not present in the migration source",
                version: targetVersion)
        }
        return try await withLock(on: connection, dryRun: dryRun) {
            let applied = try await checkedLedger(on: connection, ignoreMissing: ignoreMissing)
            let latest = applied.map(\.version).max() ?? 0
            if let targetVersion, targetVersion < latest {
                throw MigrationError(
                    .versionTooOld,
                    "migration \(targetVersion) is older than the latest applied migration \(latest)",
                    version: targetVersion)
            }
            let appliedVersions = Set(applied.map(\.version))
            var events: [MigrationEvent] = []
            for migration in source.upMigrations where !appliedVersions.contains(migration.version) {
                let action: MigrationEvent.Action
                var duration = Duration.zero
                if let targetVersion, migration.version > targetVersion {
                    action = .skipped
                } else if dryRun {
                    action = .canApply
                } else {
                    try beforeEach()
                    duration = try await apply(migration, on: connection)
                    action = .applied
                }
                let event = MigrationEvent(
                    action: action, version: migration.version, description: migration.description,
                    kind: migration.kind, duration: duration)
                events.append(event)
                onEvent(event)
            }
            return events
        }
    }

    // MARK: revert

    /// Reverts the newest applied migration, or with `targetVersion` every applied migration
    /// above it (0 reverts all).
    ///
    /// Every migration to revert must have a `.down.sql` and an unmodified up file; this is
    /// checked for all of them before the first one runs.
    @discardableResult
    public func revert(
        on connection: Connection, targetVersion: Int64? = nil, dryRun: Bool = false,
        ignoreMissing: Bool = false, onEvent: (MigrationEvent) -> Void = { _ in }
    ) async throws -> [MigrationEvent] {
        if let targetVersion, targetVersion != 0, !source.contains(version: targetVersion) {
            throw MigrationError(
                .versionNotPresent, "migration \(targetVersion) is not present in the migration source",
                version: targetVersion)
        }
        return try await withLock(on: connection, dryRun: dryRun) {
            let applied = try await checkedLedger(on: connection, ignoreMissing: ignoreMissing)
            let latest = applied.map(\.version).max() ?? 0
            if let targetVersion, targetVersion > latest {
                throw MigrationError(
                    .versionTooNew,
                    "migration \(targetVersion) is newer than the latest applied migration \(latest)",
                    version: targetVersion)
            }
            let newestFirst = applied.sorted { $0.version > $1.version }
            let toRevert: [AppliedMigration]
            if let targetVersion {
                toRevert = newestFirst.filter { $0.version > targetVersion }
            } else {
                toRevert = Array(newestFirst.prefix(1))
            }
            let downs = try toRevert.map { row -> Migration in
                guard let down = source.down(for: row.version) else {
                    throw MigrationError(
                        .notReversible,
                        "migration \(row.version) (\(row.description)) has no .down.sql in \(source.directory) and cannot be reverted",
                        version: row.version)
                }
                return down
            }
            var events: [MigrationEvent] = []
            for down in downs {
                let duration = dryRun ? .zero : try await revert(down, on: connection)
                let event = MigrationEvent(
                    action: dryRun ? .canApply : .applied, version: down.version, description: down.description,
                    kind: .down, duration: duration)
                events.append(event)
                onEvent(event)
            }
            return events
        }
    }

    // MARK: info

    /// The state of every migration in the source and in the ledger, in version order.
    /// Reads only: does not lock or create the ledger table.
    public func status(on connection: Connection) async throws -> [MigrationStatus] {
        let applied = try await Ledger.applied(on: connection)
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
            statuses.append(
                MigrationStatus(
                    version: row.version, description: row.description,
                    state: row.success ? .missingFromSource : .failed, reversible: false, noTransaction: false,
                    localChecksum: nil, appliedChecksum: row.checksum, installedOn: row.installedOn,
                    executionTime: row.executionTime, path: nil))
        }
        return statuses.sorted { $0.version < $1.version }
    }

    // MARK: Shared steps

    /// Runs `body` holding the migration lock, with the ledger table present. A dry run
    /// takes no lock and creates nothing.
    private func withLock<T>(
        on connection: Connection, dryRun: Bool, _ body: () async throws -> T
    ) async throws -> T {
        if dryRun { return try await body() }
        let key = try await MigrationLock.acquire(on: connection, logger: logger)
        do {
            try await Ledger.ensure(on: connection)
            let value = try await body()
            try await MigrationLock.release(key: key, on: connection)
            return value
        } catch {
            // The lock is session-level: closing the connection releases it too, but a
            // caller that keeps the connection must not keep the lock, even when cancelled.
            await MigrationLock.releaseIgnoringCancellation(key: key, on: connection)
            throw error
        }
    }

    /// The ledger, after refusing a dirty one, applied versions missing from the source
    /// (unless `ignoreMissing`), and applied files that changed since.
    private func checkedLedger(on connection: Connection, ignoreMissing: Bool) async throws -> [AppliedMigration] {
        let applied = try await Ledger.applied(on: connection)
        if let dirty = applied.first(where: { !$0.success }) {
            throw MigrationError(
                .dirty,
                "migration \(dirty.version) is partially applied; fix and remove row from `_sqlx_migrations` table",
                version: dirty.version)
        }
        for row in applied {
            guard let local = source.up(for: row.version) else {
                if ignoreMissing { continue }
                throw MigrationError(
                    .missing,
                    "migration \(row.version) was previously applied but is missing in the resolved migrations",
                    version: row.version)
            }
            if local.checksum != row.checksum {
                throw MigrationError(
                    .modified, "migration \(row.version) was previously applied but has been modified",
                    version: row.version)
            }
        }
        return applied
    }

    /// Applies one migration and records it, in one transaction unless the file opts out.
    private func apply(_ migration: Migration, on connection: Connection) async throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        if migration.noTransaction {
            try await runStatementByStatement(migration, on: connection, recordDirty: true)
            try await recording(migration, outsideTransaction: true) {
                try await Ledger.insert(migration, success: true, executionTime: -1, on: connection)
            }
        } else {
            try await inTransaction(migration, on: connection) {
                try await recording(migration, outsideTransaction: false) {
                    try await Ledger.insert(migration, success: true, executionTime: -1, on: connection)
                }
            }
        }
        let elapsed = clock.now - started
        // As sqlx: the time is recorded after the commit, so it covers the whole transaction.
        try await Ledger.setExecutionTime(elapsed.nanoseconds, version: migration.version, on: connection)
        logger.info(
            "applied migration",
            metadata: ["version": "\(migration.version)", "duration": "\(elapsed.rustDebugDescription)"])
        return elapsed
    }

    private func revert(_ down: Migration, on connection: Connection) async throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        if down.noTransaction {
            try await runStatementByStatement(down, on: connection, recordDirty: false)
            try await recording(down, outsideTransaction: true) {
                try await Ledger.delete(version: down.version, on: connection)
            }
        } else {
            try await inTransaction(down, on: connection) {
                try await recording(down, outsideTransaction: false) {
                    try await Ledger.delete(version: down.version, on: connection)
                }
            }
        }
        let elapsed = clock.now - started
        logger.info(
            "reverted migration", metadata: ["version": "\(down.version)", "duration": "\(elapsed.rustDebugDescription)"])
        return elapsed
    }

    /// Runs `record` (the ledger write after a migration's SQL), turning a failure (a
    /// read-only database, a ledger the role may not write) into an error naming the migration
    /// and saying whether its SQL was rolled back with it.
    private func recording(
        _ migration: Migration, outsideTransaction: Bool, _ record: () async throws -> Void
    ) async throws {
        do {
            try await record()
        } catch let error as PostgresError {
            let verb = migration.kind == .down ? "revert of migration" : "migration"
            let write = migration.kind == .down ? "removing its row from" : "recording it in"
            let message =
                outsideTransaction
                ? "\(verb) \(migration.version) (\(migration.path)) ran outside a transaction, but \(write) _sqlx_migrations failed, so its changes stay without the ledger knowing: check the schema before running it again: \(error)"
                : "\(verb) \(migration.version) (\(migration.path)) was rolled back: \(write) _sqlx_migrations failed: \(error)"
            throw MigrationError(.execution, message, version: migration.version, underlying: error)
        }
    }

    /// Runs the file's whole script and `record` between BEGIN and COMMIT.
    private func inTransaction(
        _ migration: Migration, on connection: Connection, record: () async throws -> Void
    ) async throws {
        try await connection.execute("BEGIN")
        do {
            do {
                try await connection.execute(migration.sql)
            } catch let error as PostgresError {
                let statements = SQLSplitter.split(migration.sql)
                let location = error.position.map {
                    SourceLocation.lineAndColumn(in: migration.sql, characterPosition: $0)
                } ?? error.statementIndex.flatMap { index in
                    index < statements.count ? (statements[index].startLine, statements[index].startColumn) : nil
                }
                throw executionError(migration, error, location: location)
            }
            try await record()
            try await connection.execute("COMMIT")
        } catch {
            // Sent even when the task was cancelled: the connection may live on.
            await connection.cleanup("ROLLBACK")
            throw error
        }
    }

    /// Runs each statement on its own, outside any transaction, as `CREATE INDEX
    /// CONCURRENTLY` requires. When a statement fails after others succeeded, the database is
    /// half-migrated: for an up migration the ledger gets a `success = false` row, so that
    /// neither Godwit nor sqlx runs anything more until a person has looked.
    private func runStatementByStatement(
        _ migration: Migration, on connection: Connection, recordDirty: Bool
    ) async throws {
        let statements = SQLSplitter.split(migration.sql)
        for (index, statement) in statements.enumerated() {
            do {
                try await connection.execute(statement.text)
            } catch let error as PostgresError {
                let location =
                    error.position.map { statement.location(ofCharacterPosition: $0) }
                    ?? (statement.startLine, statement.startColumn)
                var mapped = executionError(migration, error, location: location)
                if index > 0 {
                    if recordDirty, await connection.isOpen {
                        _ = try? await Ledger.insert(migration, success: false, executionTime: -1, on: connection)
                    }
                    mapped.message +=
                        "; \(index) of \(statements.count) statements had already run outside a transaction"
                        + (recordDirty
                            ? ", so the migration is recorded as partially applied: repair the schema, then DELETE FROM _sqlx_migrations WHERE version = \(migration.version)"
                            : "")
                }
                throw mapped
            }
        }
    }

    private func executionError(
        _ migration: Migration, _ error: PostgresError, location: (line: Int, column: Int)?
    ) -> MigrationError {
        var place = migration.path
        if let location { place += ":\(location.line):\(location.column)" }
        let verb = migration.kind == .down ? "revert of migration" : "migration"
        return MigrationError(
            .execution, "\(verb) \(migration.version) failed at \(place): \(error)", version: migration.version,
            underlying: error)
    }
}

/// One line of `godwit migrate info`.
public struct MigrationStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case installed
        case pending
        /// Applied, but the file changed since: sqlx's `installed (different checksum)`.
        case modified = "installed (different checksum)"
        /// Applied, and no file for it in the source.
        case missingFromSource = "installed (missing from source)"
        /// The ledger row has `success = false`.
        case failed = "partially applied"
    }

    public var version: Int64
    public var description: String
    public var state: State
    public var reversible: Bool
    public var noTransaction: Bool
    public var localChecksum: [UInt8]?
    public var appliedChecksum: [UInt8]?
    public var installedOn: String?
    public var executionTime: Int64?
    public var path: String?
}
