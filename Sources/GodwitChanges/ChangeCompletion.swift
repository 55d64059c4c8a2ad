import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

#if canImport(Glibc)
    import Glibc
#endif

/// `godwit change complete` (the contract): once nothing stands in the way
/// (`change_blockers`), ONE transaction under `lock_timeout` with retries runs the change's
/// `statements.complete` (drop the trigger and its function, SET NOT NULL, drop the NOT NULL
/// checks, drop the old columns) and marks it completed.
///
/// The reader evidence is fresh: complete takes one more sample (`ReaderSampler`) inside its
/// transaction and decides on it there, holding the change's row. A role granted
/// `grant_change` may not write the evidence (it is the worker's); its complete waits for the
/// worker's next sample instead, then decides on that. Only a login that is a member of the
/// change's starter may complete it (`ChangeRights.checkStarter`). With a waiver
/// (`--without-reader-check "REASON"`) the reader reasons are skipped and the reason recorded
/// in `reader_check_waiver`, in the same transaction.
///
/// With a migrations folder (`--write-migration DIR`), the change's end state
/// (`statements.migration`) is written as `DIR/<VERSION>_<name>.sql`, VERSION as `migrate add`
/// makes it, and recorded in the ledger with the file's checksum, as `migrate baseline` does,
/// in the same transaction: a database built from the folder ends with the live schema, and
/// `sqlx::migrate!` on the live database neither reruns the change nor fails. The file is
/// written under a temporary name first and takes its name only once the transaction has
/// committed; a refusal or a failure leaves no file.
public struct ChangeCompletion: Sendable {
    /// The schema of Godwit's tables.
    public var schema: QueueSchema
    /// The change's name.
    public var name: String
    /// How long no statement may have named a dropped column.
    public var quietFor: Duration
    /// Why complete goes ahead without the reader evidence, or nil.
    public var waiver: String?
    public var lockPolicy: LockTimeoutPolicy
    /// Where to write the folded migration, and the ledger to record it in.
    public var migrationFolder: MigrationFolder?

    /// The folder `--write-migration` names, read as `migrate add` reads it.
    public struct MigrationFolder: Sendable {
        /// As given; a relative one is opened inside `base`.
        public var directory: String
        public var base: WorkingDirectory
        /// sqlx.toml's settings: the ledger's table, `ignored-chars` for the checksum.
        public var config: MigrationConfig

        public init(directory: String, base: WorkingDirectory = .process, config: MigrationConfig = .default) {
            self.directory = directory
            self.base = base
            self.config = config
        }
    }

    /// The default `--quiet-for`.
    public static let defaultQuietFor: Duration = .seconds(15 * 60)

    public init(
        schemaName: String = "godwit", name: String, quietFor: Duration = Self.defaultQuietFor,
        waiver: String? = nil, lockPolicy: LockTimeoutPolicy = .default, migrationFolder: MigrationFolder? = nil
    ) {
        self.schema = QueueSchema.withChanges(name: schemaName)
        self.name = name
        self.quietFor = quietFor
        self.waiver = waiver
        self.lockPolicy = lockPolicy
        self.migrationFolder = migrationFolder
    }

    /// What complete did.
    public struct Outcome: Sendable, Equatable {
        public var name: String
        public var table: String
        /// The folded migration written and recorded, when asked for.
        public var migrationPath: String?
        public var migrationVersion: Int64?
        public var ledgerTable: String?
    }

    /// Completes the change on `connection` (a session of the user's own: the ledger's name
    /// resolves through its search_path, as sqlx's does; Godwit's names are qualified).
    /// `retrying` hears of each lock-timeout retry in one line.
    public func run(on connection: Connection, retrying: (String) -> Void = { _ in }) async throws -> Outcome {
        if let waiver, waiver.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw CompletionError(
                .refused, change: name, "--without-reader-check needs a reason, recorded with the change")
        }
        let change: Change
        let samples: Bool
        do {
            change = try await look(on: connection)
            try await ChangeRights.checkStarter(of: name, command: "complete", schema: schema, on: connection)
            samples = try await maySample(on: connection)
            if !samples && waiver == nil && change.drops {
                try await awaitWorkerSample(on: connection)
            }
        } catch let error as PostgresError where ChangeRights.isRefusal(error) {
            throw CompletionError(
                .notPermitted, change: name,
                await ChangeRights.missing(error, action: "complete changes", schema: schema, on: connection))
        }
        let folded = try migrationFolder.map { try prepare($0, migration: change.migration) }
        do {
            try await lockPolicy.runTransaction(on: connection, retrying: retrying) { connection in
                try await completeInTransaction(on: connection, folded: folded, sampling: samples)
            }
        } catch {
            if let folded { unlink(folded.folder.base.resolve(folded.temporaryPath)) }
            if let exhausted = error as? LockTimeoutPolicy.Exhausted {
                throw CompletionError(
                    .lockTimeout, change: name, "\(exhausted.message); nothing of complete was applied")
            }
            if let refusal = error as? PostgresError, ChangeRights.isRefusal(refusal) {
                throw CompletionError(
                    .notPermitted, change: name,
                    await ChangeRights.missing(refusal, action: "complete changes", schema: schema, on: connection)
                        + "; nothing of complete was applied")
            }
            throw error
        }
        if let folded {
            let from = folded.folder.base.resolve(folded.temporaryPath)
            let to = folded.folder.base.resolve(folded.migration.path)
            guard rename(from, to) == 0 else {
                let reason = String(cString: strerror(errno))
                throw CompletionError(
                    .file, change: name,
                    "completed, and migration \(folded.migration.version) recorded in \(folded.folder.config.tableName), but \(folded.temporaryPath) could not be renamed to \(folded.migration.path): \(reason); rename it by hand, or the ledger names a version the folder lacks"
                )
            }
        }
        return Outcome(
            name: name, table: change.table, migrationPath: folded?.migration.path,
            migrationVersion: folded?.migration.version, ledgerTable: folded?.folder.config.tableName)
    }

    // MARK: Steps

    struct Change {
        var table: String
        var migration: String
        /// Whether the change drops columns (whose readers the gate checks).
        var drops: Bool
    }

    /// The change as recorded, refused when there is none or it is over.
    private func look(on connection: Connection) async throws -> Change {
        guard
            let row = try await connection.query(
                """
                SELECT table_name, phase, statements->>'migration' AS migration,
                       coalesce(pg_catalog.jsonb_typeof(statements->'dropped') = 'array'
                                AND pg_catalog.jsonb_array_length(statements->'dropped') > 0, false) AS drops
                FROM \(schema.qualified("change_records")) WHERE name = $1
                """, [name]
            ).first
        else {
            throw CompletionError(.notFound, change: name, "there is no change named \(name) in schema \(schema.name)")
        }
        let phase = try row.string("phase")
        guard phase != ChangePhase.completed.rawValue, phase != ChangePhase.aborted.rawValue else {
            throw CompletionError(.wrongPhase, change: name, "the change is \(phase): there is nothing to complete")
        }
        return Change(
            table: try row.string("table_name"), migration: row["migration"] ?? "", drops: try row.bool("drops"))
    }

    /// Whether this session may write the reader evidence: the schema's owner's (and a
    /// superuser's) may, and complete samples in its own transaction; a role granted
    /// `grant_change` may not (the evidence is the worker's, and a role that could write it
    /// could forge another change's), and decides on the worker's samples.
    private func maySample(on connection: Connection) async throws -> Bool {
        try await connection.query(
            "SELECT pg_catalog.has_table_privilege($1, 'UPDATE') AS may", [schema.qualified("change_sampling")]
        ).first?.bool("may") ?? false
    }

    /// How long complete waits for the worker's next sample when it may not take one itself.
    static let workerSampleWait: Duration = ReaderSampler.longestGap

    /// Waits until a worker has sampled the readers after this call began (a running worker
    /// samples every `ReaderSampler.interval`), so that the evidence complete decides on is as
    /// fresh as the sample it would have taken itself. Gives up after `workerSampleWait`
    /// without failing: change_blockers then names the stale sample ("is a worker running?").
    private func awaitWorkerSample(on connection: Connection) async throws {
        let sampling = schema.qualified("change_sampling")
        let began = try await connection.query("SELECT pg_catalog.clock_timestamp()::text AS t").first?.string("t")
        let clock = ContinuousClock()
        let deadline = clock.now + Self.workerSampleWait
        while clock.now < deadline {
            let fresh = try await connection.query(
                "SELECT EXISTS (SELECT 1 FROM \(sampling) WHERE sampled_at > $1::timestamptz) AS fresh", [began]
            ).first?.bool("fresh")
            if fresh == true { return }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The folded migration to write: its version and name, as `migrate add` would make them.
    struct FoldedMigration: Sendable {
        var folder: MigrationFolder
        var migration: Migration
        var temporaryPath: String
    }

    /// Reads the folder, names the file and writes it under a temporary name (refusing to
    /// overwrite anything).
    private func prepare(_ folder: MigrationFolder, migration text: String) throws -> FoldedMigration {
        guard !text.isEmpty else {
            throw CompletionError(.refused, change: name, "the change records no folded migration to write")
        }
        guard !name.contains("/"), !name.hasPrefix(".") else {
            throw CompletionError(
                .refused, change: name, "the change's name cannot name a migration file (it has / or starts with .)")
        }
        try FileManager.default.createDirectory(
            atPath: folder.base.resolve(folder.directory), withIntermediateDirectories: true)
        let source = try MigrationSource.load(
            directory: folder.directory, ignoredChars: folder.config.ignoredChars, relativeTo: folder.base)
        let prefix = MigrationScaffold.nextVersionPrefix(for: source, versioning: .infer)
        let fileName = "\(prefix)_\(name).sql"
        guard let parsed = try MigrationSource.parseFileName(fileName) else {
            throw CompletionError(.refused, change: name, "\(fileName) is not a migration file name")
        }
        let path = (folder.directory as NSString).appendingPathComponent(fileName)
        let contents = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
        let migration = Migration(
            version: parsed.version, description: parsed.description, kind: .simple, contents: contents, path: path,
            ignoredChars: folder.config.ignoredChars)
        if FileManager.default.fileExists(atPath: folder.base.resolve(path)) {
            throw CompletionError(.file, change: name, "\(path) exists already: nothing was written")
        }
        // This process's own name: one left by a killed complete stands in no later one's way.
        let temporaryPath = (folder.directory as NSString).appendingPathComponent(
            ".\(fileName).\(getpid()).godwit-partial")
        let descriptor = open(folder.base.resolve(temporaryPath), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CompletionError(
                .file, change: name, "\(temporaryPath): cannot create it: \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: Data(contents))
            try handle.synchronize()
        } catch {
            unlink(folder.base.resolve(temporaryPath))
            throw CompletionError(.file, change: name, "\(temporaryPath): cannot write it: \(error)")
        }
        return FoldedMigration(folder: folder, migration: migration, temporaryPath: temporaryPath)
    }

    /// The one transaction: the change's row held, the blockers read in it, the DDL, the
    /// ledger row, the phase.
    private func completeInTransaction(
        on connection: Connection, folded: FoldedMigration?, sampling: Bool
    ) async throws {
        let records = schema.qualified("change_records")
        // Godwit's statements run with the catalog first; the ledger's name alone resolves
        // through the session's own search_path, as sqlx resolves it.
        let sessionPath = try await connection.query(
            "SELECT pg_catalog.current_setting('search_path') AS p"
        ).first?.string("p")
        try await pin(on: connection, "pg_catalog, pg_temp")
        // The freshest evidence, in this transaction: the sample first (it holds
        // change_sampling, as the worker's samples do before they touch a change's row), then
        // the change's row. A session that may not sample waited for the worker's instead.
        if sampling {
            try await ReaderSampler(schema: schema).sample(inTransactionOn: connection)
        }
        guard
            let row = try await connection.query(
                """
                SELECT coalesce(statements->'complete', '[]')::text AS complete
                FROM \(records) WHERE name = $1 FOR NO KEY UPDATE
                """, [name]
            ).first
        else {
            throw CompletionError(.notFound, change: name, "there is no change named \(name) in schema \(schema.name)")
        }
        if let waiver {
            try await connection.query(
                "UPDATE \(records) SET reader_check_waiver = $2, updated_at = now() WHERE name = $1", [name, waiver])
        }
        let listed = try await connection.query(
            """
            SELECT pg_catalog.array_to_json(\(schema.qualified("change_blockers"))($1, pg_catalog.make_interval(secs => $2::float8)))::text AS blockers
            """, [name, quietFor.seconds]
        ).first?.string("blockers")
        let blockers = try JSONDecoder().decode([String].self, from: Data((listed ?? "[]").utf8))
        guard blockers.isEmpty else {
            throw CompletionError(
                .blocked, change: name,
                "complete refused, nothing was applied: " + blockers.joined(separator: "; "), blockers: blockers)
        }
        let statements = try JSONDecoder().decode([String].self, from: Data(try row.string("complete").utf8))
        try await connection.query(
            "UPDATE \(records) SET phase = 'completing', updated_at = now() WHERE name = $1", [name])
        for (index, statement) in statements.enumerated() {
            do {
                try await connection.execute(statement)
            } catch let error as PostgresError where error.sqlState != .lockNotAvailable {
                throw CompletionError(
                    .failed, change: name,
                    "complete's statement \(index + 1) of \(statements.count) failed, nothing was applied: \(error.message)"
                )
            }
        }
        if let folded {
            let migrator = Migrator(
                source: MigrationSource(migrations: [], directory: folded.folder.directory),
                config: folded.folder.config)
            if let sessionPath { try await pin(on: connection, sessionPath) }
            try await migrator.recordApplied(folded.migration, inTransactionOn: connection)
            try await pin(on: connection, "pg_catalog, pg_temp")
        }
        try await connection.query(
            """
            UPDATE \(records)
            SET phase = 'completed', completed_at = now(), updated_at = now(), migration_version = $2
            WHERE name = $1
            """, [name, folded?.migration.version])
    }

    /// Sets the transaction's search_path.
    private func pin(on connection: Connection, _ path: String) async throws {
        try await connection.query("SELECT pg_catalog.set_config('search_path', $1, true)", [path])
    }
}
