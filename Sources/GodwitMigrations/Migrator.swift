import GodwitPostgres
import Logging

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
    /// How migrations take their locks: by default under a 2 s `lock_timeout`, retried 30
    /// times with backoff, so that a migration never queues the application behind it.
    public var lockPolicy: LockTimeoutPolicy
    /// sqlx.toml's settings: the ledger's `table-name` and the `create-schemas` made before
    /// it. (Its `ignored-chars` are the source's business: they make the checksums.)
    public var config: MigrationConfig

    var ledger: Ledger { Ledger(table: config.tableName) }

    public init(
        source: MigrationSource, logger: Logger = Logger(label: "godwit.migrate"),
        lockPolicy: LockTimeoutPolicy = .default, config: MigrationConfig = .default
    ) {
        self.source = source
        self.logger = logger
        self.lockPolicy = lockPolicy
        self.config = config
    }

    /// Reads `directory` (opened inside `base` when relative, named as given) with the
    /// config's `ignored-chars`.
    public init(
        directory: String, relativeTo base: WorkingDirectory = .process,
        logger: Logger = Logger(label: "godwit.migrate"),
        lockPolicy: LockTimeoutPolicy = .default, config: MigrationConfig = .default
    ) throws {
        self.init(
            source: try MigrationSource.load(directory: directory, ignoredChars: config.ignoredChars, relativeTo: base),
            logger: logger, lockPolicy: lockPolicy, config: config)
    }

    // MARK: run

    /// Applies pending migrations up to `targetVersion` (all when nil).
    ///
    /// Every check (a dirty ledger, modified or missing files, the target) happens before the
    /// first migration runs, so a refusal changes nothing. A dry run takes no lock and does
    /// not create the ledger table.
    ///
    /// `beforeEach` runs before each migration is applied and may throw to stop there (a job
    /// being paused or cancelled); what was applied stays applied. `onEvent` hears of each
    /// migration as soon as it is applied (or planned, or skipped), before the next begins.
    @discardableResult
    public func run(
        on connection: Connection, targetVersion: Int64? = nil, dryRun: Bool = false,
        ignoreMissing: Bool = false, beforeEach: () throws -> Void = {},
        onEvent: (MigrationEvent) async -> Void = { _ in }
    ) async throws -> [MigrationEvent] {
        try requirePresent(targetVersion)
        // An empty file that would run is refused before anything is locked or created; one
        // applied already (by sqlx, which runs them) is left alone.
        if source.upMigrations.contains(where: \.isEmpty) {
            let applied = Set(try await ledger.applied(on: connection).map(\.version))
            for migration in source.upMigrations
            where !applied.contains(migration.version) && migration.version <= (targetVersion ?? .max) {
                try migration.refuseIfEmpty()
            }
        }
        return try await withCheckedLedger(on: connection, dryRun: dryRun, ignoreMissing: ignoreMissing) { applied in
            let latest = applied.map(\.version).max() ?? 0
            if let targetVersion, targetVersion < latest {
                throw MigrationError(
                    .versionTooOld,
                    "migration \(targetVersion) is older than the latest applied migration \(latest)",
                    version: targetVersion)
            }
            let appliedVersions = Set(applied.map(\.version))
            let steps = source.upMigrations.filter { !appliedVersions.contains($0.version) }.map { migration in
                Step(migration: migration, skipped: migration.version > (targetVersion ?? .max))
            }
            return try await perform(steps, on: connection, dryRun: dryRun, beforeEach: beforeEach, onEvent: onEvent)
        }
    }

    // MARK: revert

    /// Reverts the newest applied migration, or with `targetVersion` every applied migration
    /// above it (0 reverts all).
    ///
    /// Every migration to revert must have a `.down.sql` and an unmodified up file; this is
    /// checked for all of them before the first one runs. `beforeEach` is `run`'s.
    @discardableResult
    public func revert(
        on connection: Connection, targetVersion: Int64? = nil, dryRun: Bool = false,
        ignoreMissing: Bool = false, beforeEach: () throws -> Void = {},
        onEvent: (MigrationEvent) async -> Void = { _ in }
    ) async throws -> [MigrationEvent] {
        try requirePresent(targetVersion == 0 ? nil : targetVersion)
        return try await withCheckedLedger(on: connection, dryRun: dryRun, ignoreMissing: ignoreMissing) { applied in
            let latest = applied.map(\.version).max() ?? 0
            if let targetVersion, targetVersion > latest {
                throw MigrationError(
                    .versionTooNew,
                    "migration \(targetVersion) is newer than the latest applied migration \(latest)",
                    version: targetVersion)
            }
            let newestFirst = applied.sorted { $0.version > $1.version }
            let toRevert =
                targetVersion.map { target in newestFirst.filter { $0.version > target } }
                ?? Array(newestFirst.prefix(1))
            let steps = try toRevert.map { row -> Step in
                if let down = source.down(for: row.version) { try down.refuseIfEmpty() }
                guard let down = source.down(for: row.version) else {
                    throw MigrationError(
                        .notReversible,
                        "migration \(row.version) (\(row.description)) has no .down.sql in \(source.directory) and cannot be reverted",
                        version: row.version)
                }
                return Step(migration: down, skipped: false)
            }
            return try await perform(steps, on: connection, dryRun: dryRun, beforeEach: beforeEach, onEvent: onEvent)
        }
    }

    // MARK: Shared steps

    /// One migration that `run` or `revert` is to apply (an up, or a down), or to leave out
    /// (past `--target-version`).
    private struct Step {
        var migration: Migration
        var skipped: Bool
    }

    /// Refuses a `targetVersion` the source does not have, before anything is read.
    private func requirePresent(_ targetVersion: Int64?) throws {
        guard let targetVersion, !source.contains(version: targetVersion) else { return }
        throw MigrationError(
            .versionNotPresent, "migration \(targetVersion) is not present in the migration source",
            version: targetVersion)
    }

    /// Runs `body` over the checked ledger (`checkedLedger`), holding the migration lock with
    /// the ledger present (`withLock`).
    private func withCheckedLedger<T>(
        on connection: Connection, dryRun: Bool, ignoreMissing: Bool, _ body: ([AppliedMigration]) async throws -> T
    ) async throws -> T {
        try await withLock(on: connection, dryRun: dryRun) {
            try await body(try await checkedLedger(on: connection, ignoreMissing: ignoreMissing))
        }
    }

    /// Applies `steps` in order (or in a dry run, plans them), each reported as an event when
    /// it is done: sqlx's `Applied`, `Can apply` or `Skipped` line.
    private func perform(
        _ steps: [Step], on connection: Connection, dryRun: Bool, beforeEach: () throws -> Void,
        onEvent: (MigrationEvent) async -> Void
    ) async throws -> [MigrationEvent] {
        var events: [MigrationEvent] = []
        for step in steps {
            let migration = step.migration
            let action: MigrationEvent.Action
            var duration = Duration.zero
            if step.skipped {
                action = .skipped
            } else if dryRun {
                action = .canApply
            } else {
                try beforeEach()
                duration = try await execute(migration, on: connection, beforeRetry: beforeEach)
                action = .applied
            }
            let event = MigrationEvent(
                action: action, version: migration.version, description: migration.description,
                kind: migration.kind, duration: duration,
                plan: action == .canApply ? MigrationPlan(migration, ledger: ledger, policy: lockPolicy) : nil)
            events.append(event)
            await onEvent(event)
        }
        return events
    }

    /// Runs `body` holding the migration lock, with the ledger table (and sqlx.toml's
    /// `create-schemas`) present. A dry run takes no lock and creates nothing.
    func withLock<T>(
        on connection: Connection, dryRun: Bool, _ body: () async throws -> T
    ) async throws -> T {
        if dryRun { return try await body() }
        let key = try await MigrationLock.acquire(on: connection, logger: logger)
        do {
            try await Ledger.createSchemas(config.createSchemas, on: connection)
            try await ledger.ensure(on: connection)
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
        let applied = try await ledger.applied(on: connection)
        if let dirty = applied.first(where: { !$0.success }) {
            // sqlx's words first; then which file, and what to do, by hand.
            let file = source.up(for: dirty.version).map { " (\($0.path))" } ?? ""
            throw MigrationError(
                .dirty,
                "migration \(dirty.version) is partially applied; fix and remove row from `\(ledger.table)` table: it stopped part-way\(file), so nothing more runs until a person has looked: \(clearDirtyAdvice(version: dirty.version))",
                version: dirty.version)
        }
        for row in applied {
            guard let local = source.up(for: row.version) else {
                // As sqlx: a lone .down.sql counts as the version being present (the source's
                // warning says why that is dangerous).
                if ignoreMissing || source.down(for: row.version) != nil { continue }
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
}
