import Crypto
import Foundation
import GodwitBackups
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Logging

/// What a migrate job carries: the migration files captured at enqueue time (so the worker
/// applies exactly what was reviewed, whatever the worker's own folder holds), and options.
public struct MigratePayload: Codable, Sendable {
    public struct File: Codable, Sendable {
        public var name: String
        /// The file's bytes, base64.
        public var contents: String
        /// SHA-384 of the bytes, hex: checked again before anything runs.
        public var sha384: String
    }

    public var source: String
    public var files: [File]
    public var targetVersion: Int64?
    public var ignoreMissing: Bool
    public var backup: Bool
    /// The lock timeout in milliseconds (0: none); absent means the default policy's.
    public var lockTimeoutMs: Int64?
    /// Retries after a lock timeout; absent means the default policy's.
    public var lockRetries: Int?
    /// sqlx.toml's `table-name` at enqueue; absent means `_sqlx_migrations`.
    public var tableName: String?
    /// sqlx.toml's `create-schemas` at enqueue.
    public var createSchemas: [String]?
    /// sqlx.toml's `ignored-chars` at enqueue, one character each.
    public var ignoredChars: [String]?

    enum CodingKeys: String, CodingKey {
        case source, files, backup
        case targetVersion = "target_version"
        case ignoreMissing = "ignore_missing"
        case lockTimeoutMs = "lock_timeout_ms"
        case lockRetries = "lock_retries"
        case tableName = "table_name"
        case createSchemas = "create_schemas"
        case ignoredChars = "ignored_chars"
    }

    /// The sqlx.toml settings the job runs with (those that matter once the files are read).
    public var config: MigrationConfig {
        MigrationConfig(
            createSchemas: createSchemas ?? [], tableName: tableName ?? MigrationConfig.defaultTableName,
            ignoredChars: Set(
                (ignoredChars ?? []).compactMap { $0.unicodeScalars.count == 1 ? $0.unicodeScalars.first : nil }))
    }

    /// How the job's migrations take their locks.
    public var lockPolicy: LockTimeoutPolicy {
        let base = LockTimeoutPolicy.default
        return LockTimeoutPolicy(
            lockTimeout: lockTimeoutMs.map { .milliseconds($0) } ?? base.lockTimeout,
            retries: lockRetries ?? base.retries, backoff: base.backoff)
    }

    /// Captures every migration file of `source`.
    public init(
        source: MigrationSource, targetVersion: Int64? = nil, ignoreMissing: Bool = false, backup: Bool = false,
        lockPolicy: LockTimeoutPolicy = .default, config: MigrationConfig = .default
    ) {
        self.source = source.directory
        self.files = source.migrations.map { migration in
            // The raw bytes' hash, whatever ignored-chars makes the ledger's checksum.
            File(
                name: (migration.path as NSString).lastPathComponent,
                contents: Data(migration.contents).base64EncodedString(),
                sha384: Migration.checksum(of: migration.contents).hexEncoded)
        }
        if config.tableName != MigrationConfig.defaultTableName || !config.createSchemas.isEmpty
            || !config.ignoredChars.isEmpty
        {
            tableName = config.tableName
            createSchemas = config.createSchemas
            ignoredChars = config.ignoredChars.map { String($0) }.sorted()
        }
        self.targetVersion = targetVersion
        self.ignoreMissing = ignoreMissing
        self.backup = backup
        self.lockTimeoutMs = lockPolicy.lockTimeout.map { Int64($0.milliseconds.rounded(.up)) } ?? 0
        self.lockRetries = lockPolicy.retries
    }

    /// The payload as a job's JSON text.
    func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The migrations, after checking each file against its recorded checksum.
    func migrationSource(jobID: Int64) throws -> MigrationSource {
        let files = try files.map { file -> (name: String, contents: [UInt8]) in
            guard let data = Data(base64Encoded: file.contents) else {
                throw InvalidPayload("job \(jobID): file \(file.name) is not valid base64")
            }
            let bytes = [UInt8](data)
            let digest = SHA384.hash(data: bytes).hexEncoded
            guard digest == file.sha384 else {
                throw InvalidPayload("job \(jobID): file \(file.name) does not match its recorded SHA-384")
            }
            return (file.name, bytes)
        }
        return try MigrationSource(files: files, directory: source, ignoredChars: config.ignoredChars)
    }
}

/// Applies schema migrations as a job, optionally after a verified backup.
public struct MigrateJob: JobHandler {
    public let kind = JobKind.migrate
    public let backups: BackupManager

    public init(backups: BackupManager) {
        self.backups = backups
    }

    struct AppliedEntry: Codable {
        var version: Int64
        var description: String
        var durationMs: Double

        enum CodingKeys: String, CodingKey {
            case version, description
            case durationMs = "duration_ms"
        }
    }

    /// What the job's `result` says: every migration the job applied, in every attempt so far
    /// (each attempt starts from what the earlier ones recorded, and records each migration as
    /// soon as it is applied, so that `job show` says meanwhile how far it got); this attempt's
    /// backup; and on failure, the migration that failed and why.
    struct Report: Encodable {
        var applied: [AppliedEntry] = []
        var backup: Backup?
        var failedMigration: Int64?
        var error: String?
        var restoreWith: String?

        enum CodingKeys: String, CodingKey {
            case applied, backup, error
            case failedMigration = "failed_migration"
            case restoreWith = "restore_with"
        }

        var json: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: MigratePayload.self)
        let source = try payload.migrationSource(jobID: context.job.id)
        // The backup first, over the worker's own connections: it is recorded in the queue's
        // `backups` table, and pg_dump reads the whole database, not only what the enqueuer can.
        let backup = payload.backup ? try await makeBackup(context, payload: payload, source: source) : nil
        try context.checkpoint()
        // The migrations themselves run in a session logged in as the job's enqueuer, like any
        // job's SQL: whatever they do, they have its rights.
        return try await context.withSession { connection in
            try await migrate(payload, source: source, backup: backup, context: context, on: connection)
        }
    }

    private func makeBackup(_ context: JobContext, payload: MigratePayload, source: MigrationSource) async throws
        -> Backup
    {
        // Why, in the words rollback-migration looks for: the migrations this job will apply,
        // read from the ledger as the enqueuer's session sees it (the migrations run there).
        let migrator = Migrator(source: source, logger: context.logger, config: payload.config)
        let reason = try await context.withSession { connection in
            try await SafeMigration.backupReason(migrator, targetVersion: payload.targetVersion, on: connection)
        }
        let backup: Backup
        do {
            backup = try await context.pool.withConnection { connection in
                try await backups.create(
                    databaseURL: context.databaseURL, jobID: context.job.id, reason: reason, on: connection)
            }
        } catch let error as BackupError {
            // No verified backup, no migration: the job fails before anything runs.
            throw JobFailure("no migration was run: \(error.message)")
        }
        context.logger.info(
            "backup verified",
            metadata: ["job": "\(context.job.id)", "file": "\(backup.file)", "bytes": "\(backup.sizeBytes)"])
        return backup
    }

    private func migrate(
        _ payload: MigratePayload, source: MigrationSource, backup: Backup?, context: JobContext,
        on connection: Connection
    ) async throws -> String? {
        var report = Report()
        report.applied = await appliedEarlier(context)
        report.backup = backup
        report.restoreWith = backup?.restoreCommand
        var migrator = Migrator(
            source: source, logger: context.logger, lockPolicy: payload.lockPolicy, config: payload.config)
        migrator.logger[metadataKey: "job"] = "\(context.job.id)"
        do {
            try await migrator.run(
                on: connection, targetVersion: payload.targetVersion, ignoreMissing: payload.ignoreMissing,
                beforeEach: { try context.checkpoint() }
            ) { event in
                guard event.action == .applied else { return }
                report.applied.append(
                    AppliedEntry(
                        version: event.version, description: event.description,
                        durationMs: event.duration.milliseconds))
                await record(report, context)
            }
        } catch let error as MigrationError {
            report.failedMigration = error.version
            report.error = error.message
            // The server's DETAIL goes apart from the message (see `JobFailure.detail`); the
            // result, which only the enqueuer, controllers and the owner read, keeps it.
            let detail = error.underlying?.detail.flatMap { $0.isEmpty ? nil : $0 }
            var message =
                detail.map { error.message.replacingOccurrences(of: "; detail: \($0)", with: "") } ?? error.message
            if let restore = report.restoreWith { message += "; to restore the backup: \(restore)" }
            let retrySafe =
                error.underlying?.isTransient == true
                && error.version.flatMap { source.up(for: $0)?.noTransaction } == false
            throw JobFailure(message, resultJSON: report.json, transient: retrySafe, detail: detail)
        }
        return report.json
    }

    /// The migrations that earlier attempts of this job applied, as they recorded them in its
    /// `result` (none for a first attempt). An attempt that died between a migration's commit
    /// and its record leaves that one out; the ledger has it all the same.
    private func appliedEarlier(_ context: JobContext) async -> [AppliedEntry] {
        struct Recorded: Decodable { var applied: [AppliedEntry]? }
        do {
            let text = try await context.pool.withConnection {
                try await context.queue.recordedResult(of: context.job, on: $0)
            }
            guard let text else { return [] }
            return try JSONDecoder().decode(Recorded.self, from: Data(text.utf8)).applied ?? []
        } catch {
            context.logger.warning(
                "cannot read what earlier attempts of this job applied; its result lists this attempt's migrations only",
                metadata: ["job": "\(context.job.id)", "error": "\(error)"])
            return []
        }
    }

    /// Records `report` in the job's `result` under its lease. A failure only costs the record
    /// (the ledger has the migration, and the end of the attempt writes the whole report), so
    /// it is logged, not thrown.
    private func record(_ report: Report, _ context: JobContext) async {
        do {
            try await context.pool.withConnection {
                try await context.queue.recordPartialResult(context.job, report.json, on: $0)
            }
        } catch {
            context.logger.warning(
                "cannot record the applied migrations in the job's result yet",
                metadata: ["job": "\(context.job.id)", "error": "\(error)"])
        }
    }
}
