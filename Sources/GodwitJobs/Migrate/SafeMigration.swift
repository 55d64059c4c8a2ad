import Foundation
import GodwitBackups
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// "Migrate safely": what `godwit migrate run` does around the migrator, as one sequence a
/// deploy script and the CLI share.
///
/// 1. The lint gate: the pending migrations (up to the target) are linted before anything
///    runs. Without `strict` the catalog check's findings are warnings and the run goes on;
///    with `strict` any finding of the trace (the migrations run in a scratch database beside
///    this one) refuses the run, and nothing is applied.
/// 2. Then either `enqueue`, a migrate job carrying the files for a worker, or `run` here:
///    a verified `pg_dump` backup first when asked (no backup, no migration), recorded with the
///    versions it precedes, then the migrator.
///
/// What happens is reported as `Event`s, in order; a refusal throws (a `SafeMigrationError`,
/// or the migrator's, the backup's or the server's error), each a `GodwitError`.
public struct SafeMigration: Sendable {
    /// What a run or an enqueue is asked to do.
    public struct Options: Sendable {
        /// Apply up to and including this version only (all pending when nil).
        public var targetVersion: Int64?
        /// Ignore applied migrations that are missing from the source.
        public var ignoreMissing: Bool
        /// Print what would be sent and change nothing: no backup, no lock, no ledger.
        public var dryRun: Bool
        /// Refuse on any finding of lint's trace, instead of warning on the catalog check's.
        public var strict: Bool
        /// Take a verified backup with this manager (into its folder, recorded in its schema's
        /// `backups`) before anything runs; nil takes none. For `enqueue` only whether one is
        /// asked counts: the job takes it with the worker's manager.
        public var backups: BackupManager?
        /// The schema of the queue that `enqueue` writes to.
        public var schema: String

        public init(
            targetVersion: Int64? = nil, ignoreMissing: Bool = false, dryRun: Bool = false, strict: Bool = false,
            backups: BackupManager? = nil, schema: String = "godwit"
        ) {
            self.targetVersion = targetVersion
            self.ignoreMissing = ignoreMissing
            self.dryRun = dryRun
            self.strict = strict
            self.backups = backups
            self.schema = schema
        }
    }

    /// What happened, as it happened.
    public enum Event: Sendable {
        /// A finding of the catalog check in a pending migration; the run goes on.
        case lintWarning(LintFinding)
        /// The pending migrations could not be linted (without `strict`); the run goes on.
        case lintFailed(any Error)
        /// The verified backup taken before anything ran.
        case backup(Backup)
        /// What the migrator did to one migration (`run` only).
        case migration(MigrationEvent)
    }

    /// The migrate job `enqueue` wrote.
    public struct Enqueued: Sendable, Equatable {
        /// The job's id, for `godwit job watch`.
        public var id: Int64
        /// How many migration files its payload carries.
        public var fileCount: Int
    }

    /// The migrations, with their lock policy and sqlx.toml's settings (which a job carries).
    public let migrator: Migrator
    /// The database's URL, for what runs beside the session: pg_dump, and strict lint's
    /// scratch database.
    public let databaseURL: String
    public var options: Options

    public init(migrator: Migrator, databaseURL: String, options: Options = Options()) {
        self.migrator = migrator
        self.databaseURL = databaseURL
        self.options = options
    }

    /// Lints, takes the backup when asked (not in a dry run), then applies the pending
    /// migrations on `connection`; returns the migrator's events.
    @discardableResult
    public func run(on connection: Connection, onEvent: (Event) -> Void = { _ in }) async throws -> [MigrationEvent] {
        try await lintPending(on: connection, onEvent: onEvent)
        if let backups = options.backups, !options.dryRun {
            try await backups.installSchema(on: connection)
            let reason = try await Self.backupReason(migrator, targetVersion: options.targetVersion, on: connection)
            onEvent(.backup(try await backups.create(databaseURL: databaseURL, reason: reason, on: connection)))
        }
        return try await migrator.run(
            on: connection, targetVersion: options.targetVersion, dryRun: options.dryRun,
            ignoreMissing: options.ignoreMissing, onEvent: { onEvent(.migration($0)) })
    }

    /// Lints, then enqueues a migrate job that carries every file of the source (so a worker
    /// applies exactly what was linted), with the options, lock policy and sqlx.toml settings;
    /// installs the queue's schema first when needed. `name` is the job's (default
    /// `migrate <folder>`).
    public func enqueue(
        on connection: Connection, name: String? = nil, onEvent: (Event) -> Void = { _ in }
    ) async throws -> Enqueued {
        try await lintPending(on: connection, onEvent: onEvent)
        let queueSchema = QueueSchema.withJobs(name: options.schema)
        try await queueSchema.install(on: connection)
        let payload = MigratePayload(
            source: migrator.source, targetVersion: options.targetVersion, ignoreMissing: options.ignoreMissing,
            backup: options.backups != nil, lockPolicy: migrator.lockPolicy, config: migrator.config)
        let id = try await JobQueue(schema: queueSchema).enqueue(
            kind: .migrate, name: name ?? "migrate \(migrator.source.directory)", payload: try payload.jsonText(),
            maxAttempts: 3, on: connection)
        return Enqueued(id: id, fileCount: payload.files.count)
    }

    /// The lint gate over the pending migrations up to the target: warnings from the catalog
    /// check (which only reads the catalog), or with `strict` a refusal on any finding of the
    /// trace.
    private func lintPending(on connection: Connection, onEvent: (Event) -> Void) async throws {
        let pending = try await migrator.pendingMigrations(on: connection, upTo: options.targetVersion)
        guard !pending.isEmpty else { return }
        var linter = MigrationLinter(source: migrator.source)
        if options.strict {
            // The trace runs the migrations as this session will: under its search_path (a
            // fleet's schema target searches its schema first), with the schemas made first.
            linter.searchPath = try await connection.query(
                "SELECT pg_catalog.current_setting('search_path') AS path"
            ).first?.string("path")
            linter.createSchemas = migrator.config.createSchemas
            let report = try await linter.lint(pending, databaseURL: databaseURL)
            guard report.findings.isEmpty else { throw SafeMigrationError.lintRefused(report.findings) }
            return
        }
        do {
            for finding in try await linter.lint(pending, on: connection).findings { onEvent(.lintWarning(finding)) }
        } catch {
            onEvent(.lintFailed(error))
        }
    }

    /// Why a backup before `migrator`'s pending migrations (up to `targetVersion`) is taken,
    /// in the words `ops/rollback-migration` looks for: the versions it precedes, read from
    /// the ledger as `connection`'s session sees it (where the migrations will run).
    static func backupReason(
        _ migrator: Migrator, targetVersion: Int64?, on connection: Connection
    ) async throws -> String {
        let pending = try await migrator.pendingMigrations(on: connection, upTo: targetVersion)
        return BackupReason.beforeMigrations(pending.map { ($0.version, $0.description) })
    }
}

/// Why `SafeMigration` refused to apply anything.
public struct SafeMigrationError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }

        /// `strict`: lint's trace flagged a pending statement.
        public static let lintRefused = Code("lintRefused")

        public var description: String { raw }
    }

    public var code: Code
    /// The findings that refused the run, each for its own line (`LintFinding.text`).
    public var findings: [LintFinding]

    /// `strict` refused the run on `findings`.
    public static func lintRefused(_ findings: [LintFinding]) -> SafeMigrationError {
        SafeMigrationError(code: .lintRefused, findings: findings)
    }

    public var description: String {
        "--strict: migrate lint flags \(findings.count) of the pending statements, so nothing was applied: make them safe, or accept one with -- godwit:allow RULE reason on the line before it"
    }
}
