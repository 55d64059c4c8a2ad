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
        /// Recorded as applied by `baseline`, without running it.
        case baselined = "Baselined"
    }

    public var action: Action
    public var version: Int64
    public var description: String
    public var kind: Migration.Kind
    public var duration: Duration
    /// In a dry run, what would be sent for it.
    public var plan: MigrationPlan?

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

    /// Reads `directory` with the config's `ignored-chars`.
    public init(
        directory: String, logger: Logger = Logger(label: "godwit.migrate"), lockPolicy: LockTimeoutPolicy = .default,
        config: MigrationConfig = .default
    ) throws {
        self.init(
            source: try MigrationSource.load(directory: directory, ignoredChars: config.ignoredChars), logger: logger,
            lockPolicy: lockPolicy, config: config)
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
        // An empty file that would run is refused before anything is locked or created; one
        // applied already (by sqlx, which runs them) is left alone.
        if source.upMigrations.contains(where: \.isEmpty) {
            let applied = Set(try await ledger.applied(on: connection).map(\.version))
            for migration in source.upMigrations
            where !applied.contains(migration.version) && migration.version <= (targetVersion ?? .max) {
                try migration.refuseIfEmpty()
            }
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
                    duration = try await apply(migration, on: connection, beforeRetry: beforeEach)
                    action = .applied
                }
                let event = MigrationEvent(
                    action: action, version: migration.version, description: migration.description,
                    kind: migration.kind, duration: duration,
                    plan: action == .canApply ? MigrationPlan(migration, ledger: ledger, policy: lockPolicy) : nil)
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
                if let down = source.down(for: row.version) { try down.refuseIfEmpty() }
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
                    kind: .down, duration: duration,
                    plan: dryRun ? MigrationPlan(down, ledger: ledger, policy: lockPolicy) : nil)
                events.append(event)
                onEvent(event)
            }
            return events
        }
    }

    /// The source's migrations not in the configured ledger (all of them while it does not
    /// exist), up to and including `targetVersion` when given, in version order. Reads only.
    public func pendingMigrations(on connection: Connection, upTo targetVersion: Int64? = nil) async throws -> [Migration] {
        let applied = Set(try await ledger.applied(on: connection).map(\.version))
        return source.upMigrations.filter { !applied.contains($0.version) && $0.version <= (targetVersion ?? .max) }
    }

    // MARK: info

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

    // MARK: Shared steps

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

    /// Applies one migration and records it, in one transaction unless the file opts out.
    private func apply(
        _ migration: Migration, on connection: Connection, beforeRetry: () throws -> Void = {}
    ) async throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        if migration.noTransaction {
            try await recordStarted(migration, on: connection)
            let builds = try await runStatementByStatement(migration, on: connection, recordedAsStarted: true)
            let elapsed = clock.now - started
            // Every statement ran: checking the builds and marking the row done are finished
            // even if the task was cancelled meanwhile, lest a complete migration stay dirty.
            try await ignoringCancellation(timeout: .seconds(30)) {
                try await self.refuseInvalidIndexes(builds, of: migration, on: connection)
                try await self.recording(migration, outsideTransaction: true) {
                    try await self.ledger.markApplied(
                        version: migration.version, executionTime: elapsed.nanoseconds, on: connection)
                }
            }
            logger.info(
                "applied migration",
                metadata: ["version": "\(migration.version)", "duration": "\(elapsed.rustDebugDescription)"])
            return elapsed
        } else {
            try await retryingLockTimeouts(migration, beforeRetry: beforeRetry) { watch in
                try await inTransaction(migration, on: connection, watch: watch) {
                    try await recording(migration, outsideTransaction: false) {
                        try await ledger.insert(migration, success: true, executionTime: -1, on: connection)
                    }
                }
            }
        }
        let elapsed = clock.now - started
        // As sqlx: the time is recorded after the commit, so it covers the whole transaction.
        try await ledger.setExecutionTime(elapsed.nanoseconds, version: migration.version, on: connection)
        logger.info(
            "applied migration",
            metadata: ["version": "\(migration.version)", "duration": "\(elapsed.rustDebugDescription)"])
        return elapsed
    }

    private func revert(_ down: Migration, on connection: Connection) async throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        if down.noTransaction {
            let builds = try await runStatementByStatement(down, on: connection, recordedAsStarted: false)
            try await refuseInvalidIndexes(builds, of: down, on: connection)
            try await recording(down, outsideTransaction: true) {
                try await ledger.delete(version: down.version, on: connection)
            }
        } else {
            try await retryingLockTimeouts(down) { watch in
                try await inTransaction(down, on: connection, watch: watch) {
                    try await recording(down, outsideTransaction: false) {
                        try await ledger.delete(version: down.version, on: connection)
                    }
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
                !outsideTransaction
                ? "\(verb) \(migration.version) (\(migration.path)) was rolled back: \(write) \(ledger.table) failed: \(error)"
                : migration.kind == .down
                    ? "\(verb) \(migration.version) (\(migration.path)) ran outside a transaction, but \(write) \(ledger.table) failed, so its changes stay without the ledger knowing: check the schema before running it again: \(error)"
                    : "\(verb) \(migration.version) (\(migration.path)) ran outside a transaction, but marking it done in \(ledger.table) failed, so it stays recorded as partially applied: \(clearDirtyAdvice(version: migration.version)): \(error)"
            throw MigrationError(.execution, message, version: migration.version, underlying: error)
        }
    }

    /// Runs the file's whole script and `record` between BEGIN and COMMIT, under the lock
    /// timeout (`SET LOCAL`, so a `SET lock_timeout` in the file wins, and nothing outlives
    /// the transaction).
    private func inTransaction(
        _ migration: Migration, on connection: Connection, watch: LockWatch?, record: () async throws -> Void
    ) async throws {
        try await connection.withTransaction { connection in
            if let setting = lockPolicy.lockTimeoutSetting {
                try await connection.execute("SET LOCAL lock_timeout = '\(setting)'")
            }
            do {
                try await watching(connection, watch) { try await connection.execute(migration.sql) }
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
        }
    }

    /// Records a `-- no-transaction` up migration as started, a `success = false` row committed
    /// before its first statement, so that however it stops (a statement that fails, a
    /// cancelled task, the process killed, the server restarted) neither Godwit nor sqlx (its
    /// `Dirty` check) runs anything more, nor its first statements a second time, until a
    /// person has looked. `Ledger.markApplied` sets it done after the last statement.
    private func recordStarted(_ migration: Migration, on connection: Connection) async throws {
        do {
            try await ledger.insert(migration, success: false, executionTime: -1, on: connection)
        } catch let error as PostgresError {
            throw MigrationError(
                .execution,
                "migration \(migration.version) (\(migration.path)) was not run: recording it as started in \(ledger.table) failed: \(error)",
                version: migration.version, underlying: error)
        }
    }

    /// What a person does about a row with `success = false`: by hand, since neither
    /// `migrate repair` (checksums only) nor a rerun can know which statements ran.
    func clearDirtyAdvice(version: Int64) -> String {
        "check which of its statements ran and finish or undo the rest by hand, then DELETE FROM \(ledger.table) WHERE version = \(version) to run it again (or UPDATE \(ledger.table) SET success = true WHERE version = \(version) if it is now complete)"
    }

    /// Runs each statement on its own, outside any transaction, as `CREATE INDEX
    /// CONCURRENTLY` requires. For an up migration (`recordedAsStarted`), the ledger already
    /// has its `success = false` row: it is removed again only when the file stopped before
    /// anything of it ran (and a build that stopped left nothing behind); otherwise it stays,
    /// and the error says how to clear it.
    ///
    /// Under the lock timeout (set for the session, and put back afterwards unless the file
    /// set its own), only a statement that timed out is tried again. A concurrent index build
    /// first drops an invalid index of its name left by an earlier build that did not finish,
    /// and after a failure, or when the task is cancelled during it (a worker's shutdown, a
    /// cancelled job), drops what it left itself. Returns the index builds, each with the
    /// invalid indexes its table had before it, for `refuseInvalidIndexes`.
    private func runStatementByStatement(
        _ migration: Migration, on connection: Connection, recordedAsStarted: Bool
    ) async throws -> [(ConcurrentIndexBuild, Set<UInt32>)] {
        let statements = SQLSplitter.split(migration.sql)
        /// How many statements have completed.
        var ran = 0
        /// A build that stopped may have left an invalid index that could not be dropped.
        var leftSomething = false
        do {
            let sessionTimeout = try await setSessionLockTimeout(on: connection)
            return try await ensuring {
                var builds: [(ConcurrentIndexBuild, Set<UInt32>)] = []
                for (index, statement) in statements.enumerated() {
                    let build = ConcurrentIndexBuild(statement.text)
                    var before = Set<UInt32>()
                    var buildStarted = false
                    do {
                        if let build {
                            try await dropLeftoverOfSameName(build, migration, statement, on: connection)
                            before = try await build.invalidIndexes(on: connection)
                        }
                        try await retryingLockTimeouts(migration, statement: statement) { watch in
                            do {
                                buildStarted = build != nil
                                try await watching(connection, watch) { try await connection.execute(statement.text) }
                            } catch let error as PostgresError {
                                if let build {
                                    do {
                                        try await dropWhatAFailedBuildLeft(
                                            build, before: before, migration, on: connection)
                                    } catch {
                                        leftSomething = true
                                        throw error
                                    }
                                }
                                throw error
                            }
                        }
                        if let build { builds.append((build, before)) }
                        ran = index + 1
                    } catch is CancellationError {
                        if let build, buildStarted {
                            // The cancelled build left an INVALID index: dropped as a failed
                            // build's is, though this task is cancelled.
                            let invalidBefore = before
                            let dropped: Void? = try? await ignoringCancellation(timeout: .seconds(30)) {
                                try await self.dropWhatAFailedBuildLeft(
                                    build, before: invalidBefore, migration, on: connection)
                            }
                            leftSomething = dropped == nil
                        }
                        let state =
                            !recordedAsStarted ? "after \(index) had run outside a transaction"
                            : index == 0 && !leftSomething ? "before anything of it had run"
                            : "after \(index) had run outside a transaction: it stays recorded as partially applied, so the next run stops on it until a person has looked"
                        logger.warning(
                            "migration \(migration.version) was interrupted at statement \(index + 1) of \(statements.count) (\(migration.path):\(statement.startLine)), \(state)",
                            metadata: ["version": "\(migration.version)"])
                        throw CancellationError()
                    } catch let error as PostgresError {
                        let location =
                            error.position.map { statement.location(ofCharacterPosition: $0) }
                            ?? (statement.startLine, statement.startColumn)
                        var mapped = executionError(migration, error, location: location)
                        if index > 0 {
                            mapped.message +=
                                "; \(index) of \(statements.count) statements had already run outside a transaction"
                        }
                        throw mapped
                    }
                }
                return builds
            } finally: {
                await restoreSessionLockTimeout(sessionTimeout, on: connection)
            }
        } catch {
            guard recordedAsStarted else { throw error }
            if ran == 0, !leftSomething, await forgetStarted(migration, on: connection) { throw error }
            guard var mapped = error as? MigrationError else { throw error }
            mapped.message +=
                "\(ran == 0 ? "; " : ", ")so the migration is recorded as partially applied (success = false in \(ledger.table)): \(clearDirtyAdvice(version: migration.version))"
            throw mapped
        }
    }

    /// Removes the `success = false` row of a no-transaction migration of which nothing ran,
    /// even from a cancelled task; false when it could not (the row then stays, and the next
    /// run stops on it: the safe side).
    private func forgetStarted(_ migration: Migration, on connection: Connection) async -> Bool {
        let removed: Void? = try? await ignoringCancellation(timeout: .seconds(10)) {
            guard await connection.isOpen, await connection.transactionStatus == .idle else {
                throw CancellationError()
            }
            try await self.ledger.delete(version: migration.version, on: connection)
        }
        return removed != nil
    }

    // MARK: Lock timeouts

    /// Runs `attempt` until it does not fail on a lock timeout, at most `retries + 1` times,
    /// with backoff between tries; each retry is logged with who held the lock.
    @discardableResult
    private func retryingLockTimeouts<T>(
        _ migration: Migration, statement: SQLStatement? = nil, beforeRetry: () throws -> Void = {},
        _ attempt: (LockWatch?) async throws -> T
    ) async throws -> T {
        guard let lockTimeout = lockPolicy.lockTimeout else { return try await attempt(nil) }
        let clock = ContinuousClock()
        let started = clock.now
        let watch = LockWatch(lockTimeout: lockTimeout)
        return try await ensuring {
            var tries = 0
            while true {
                tries += 1
                do {
                    return try await attempt(watch)
                } catch {
                    guard let server = Self.lockTimeoutError(error) else { throw error }
                    let seen = watch.lastSeen
                    let what = seen?.target ?? "what it needed"
                    let verb = migration.kind == .down ? "revert of migration" : "migration"
                    var place = migration.path
                    if let statement { place += ":\(statement.startLine)" }
                    guard tries <= lockPolicy.retries else {
                        let holders = seen.map { ": \($0.holdersDescription)" } ?? ": \(server.message)"
                        throw MigrationError(
                            .lockTimeout,
                            "\(verb) \(migration.version) could not lock \(what) after \(tries) tries in \((clock.now - started).roundedDescription)\(holders) (\(place); nothing of it was left applied"
                                + (statement != nil ? " beyond the statements before this one)" : ")"),
                            version: migration.version, underlying: server)
                    }
                    let delay = lockPolicy.backoff.delay(afterAttempt: tries)
                    logger.warning(
                        "\(verb) \(migration.version) could not lock \(what) within \(lockTimeout.roundedDescription); trying again in \(delay.roundedDescription) (retry \(tries) of \(lockPolicy.retries)): \(seen?.holdersDescription ?? server.message)",
                        metadata: ["version": "\(migration.version)", "file": "\(place)"])
                    try await Task.sleep(for: delay)
                    try beforeRetry()
                }
            }
        } finally: {
            await watch.close()
        }
    }

    /// The server's lock-timeout error inside `error`, if that is what it is.
    private static func lockTimeoutError(_ error: any Error) -> PostgresError? {
        if let error = error as? PostgresError { return LockTimeoutPolicy.isLockTimeout(error) ? error : nil }
        if let error = error as? MigrationError, let underlying = error.underlying, error.code == .execution {
            return LockTimeoutPolicy.isLockTimeout(underlying) ? underlying : nil
        }
        return nil
    }

    @discardableResult
    private func watching<T>(_ connection: Connection, _ watch: LockWatch?, _ body: () async throws -> T) async throws -> T {
        guard let watch else { return try await body() }
        return try await watch.during(connection, body)
    }

    /// Sets the session's `lock_timeout` for a no-transaction file; returns the value to put
    /// back and ours as the server shows it.
    private func setSessionLockTimeout(on connection: Connection) async throws -> (previous: String, ours: String)? {
        guard let setting = lockPolicy.lockTimeoutSetting else { return nil }
        let previous = try await connection.query("SELECT pg_catalog.current_setting('lock_timeout') AS v").first?.string("v")
        let ours = try await connection.query("SELECT pg_catalog.set_config('lock_timeout', $1, false) AS v", [setting])
            .first?.string("v")
        guard let previous, let ours else { return nil }
        return (previous, ours)
    }

    /// Puts the session's `lock_timeout` back, unless the file set its own (which stays, as
    /// any other setting a file makes does).
    private func restoreSessionLockTimeout(_ saved: (previous: String, ours: String)?, on connection: Connection) async {
        guard let saved, await connection.isOpen, await connection.transactionStatus == .idle else { return }
        _ = try? await connection.query(
            """
            SELECT pg_catalog.set_config('lock_timeout', $1, false)
            WHERE pg_catalog.current_setting('lock_timeout') = $2
            """, [saved.previous, saved.ours])
    }

    // MARK: Concurrent index builds

    /// Before a build: an invalid index of the name it creates, on the same table, is what an
    /// earlier build that failed or was interrupted left; drop it so the build runs again
    /// (`IF NOT EXISTS` would otherwise skip it and call the invalid index a success).
    private func dropLeftoverOfSameName(
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
    private func dropWhatAFailedBuildLeft(
        _ build: ConcurrentIndexBuild, before: Set<UInt32>, _ migration: Migration, on connection: Connection
    ) async throws {
        guard await connection.isOpen, await connection.transactionStatus == .idle else { return }
        let left = try await build.invalidIndexes(on: connection).subtracting(before)
        for name in try await ConcurrentIndexBuild.names(Array(left), on: connection) {
            logger.notice(
                "dropping invalid index \(name) left by the failed build", metadata: ["version": "\(migration.version)"])
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
    private func refuseInvalidIndexes(
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
        /// Applied, its up file gone and its `.down.sql` still there: present for run and
        /// check, as for sqlx, and revertible.
        case downOnly = "installed (only its down in the source)"
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

/// Runs `body` to its end even when the calling task has been cancelled, for what a
/// cancelled migration still owes (dropping the invalid index its build left, the ledger row
/// of a file of which nothing ran, marking done a file whose every statement ran); after
/// `timeout` `body` is cancelled, which cancels its statement on the server, and this throws
/// `CancellationError`. Otherwise returns what `body` returns, or throws what it throws.
///
/// Swift 6.3 has no cancellation shield: a task that is not a child inherits no cancellation,
/// and it is awaited here, so it outlives nothing (as the worker records an outcome).
private func ignoringCancellation<T: Sendable>(
    timeout: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await Task {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else { throw CancellationError() }
            return first
        }
    }.value
}

/// Runs `body`, then `cleanup`, whether `body` returned or threw: an async `defer`.
private func ensuring<T>(_ body: () async throws -> T, finally cleanup: () async -> Void) async throws -> T {
    let value: T
    do {
        value = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return value
}
