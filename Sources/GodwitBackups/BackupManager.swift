import Foundation
import GodwitPostgres

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Takes, verifies, lists and restores backups: `pg_dump --format=custom` into a folder
/// (files mode 0600), read back in full by `pg_restore`, recorded with size and SHA-256.
///
/// Godwit's own schema is left out of the dump: restoring must not rewind the job queue.
///
/// The folder, and every file read back, must be this user's alone (`BackupFile`), and the
/// programs get the open file, never its path: the file written is the file verified, and
/// the file verified is the file restored.
public struct BackupManager: Sendable {
    /// The folder for backup files, absolute: a relative one is resolved against the working
    /// directory when the manager is made, so that the files recorded and the restore
    /// commands printed name the same files from anywhere.
    public let directory: String
    /// The schema of Godwit's own tables, unquoted: backups are recorded in `<schema>.backups`,
    /// and the schema is left out of every dump.
    public let schema: String
    /// What a restore asks before it replaces the application's schemas (`RestoreGuard`); nil
    /// restores without asking.
    public let restoreGuard: (any RestoreGuard)?

    /// The folder relative paths are resolved against: the backup folder, and the files given
    /// to `verify`, `contents(of:)` and `restore`.
    public let workingDirectory: WorkingDirectory

    public init(
        directory: String, schema: String = "godwit", restoreGuard: (any RestoreGuard)? = nil,
        workingDirectory: WorkingDirectory = .process
    ) {
        self.workingDirectory = workingDirectory
        self.directory = Self.absolutePath(directory, in: workingDirectory)
        self.schema = schema
        self.restoreGuard = restoreGuard
    }

    /// `<schema>.backups`, quoted.
    var table: String { "\(quoteIdentifier(schema)).backups" }

    /// Dumps the database, verifies the dump as `verify` does and records it. Throws (and
    /// keeps no file) when the dump or its verification fails: no verified backup, no
    /// migration. `reason` says why it is taken (`BackupReason`), recorded with it.
    public func create(
        databaseURL: String, jobID: Int64? = nil, reason: String, on connection: Connection
    ) async throws -> Backup {
        let file = try BackupFile.create(in: directory, stem: "backup-\(UTCTimestamp.format(Date(), "%Y%m%d-%H%M%S"))")
        let path = file.path
        let verification: BackupVerification
        do {
            let (conninfo, environment) = try ClientProgram.connectionArguments(for: databaseURL)
            // The archive goes to pg_dump's stdout, which is the file: pg_dump never opens a path.
            let dump = try await ClientProgram.run(
                "pg_dump",
                ["--format=custom", "--exclude-schema=\(Self.exactPattern(schema))", "--dbname=\(conninfo)"],
                environment: environment, writingTo: try file.fromStart())
            guard dump.succeeded else {
                throw BackupError(
                    .dumpFailed, file: path,
                    "backup \(path) failed: pg_dump \(dump.exitDescription): \(dump.firstErrorLine)")
            }
            verification = try await verify(file, on: nil)
        } catch {
            file.remove()
            throw error
        }
        let database = try await connection.query("SELECT current_database() AS db").first?.string("db") ?? ""
        let row = try await connection.query(
            """
            INSERT INTO \(table) (file, size_bytes, sha256, database_name, job_id, verified_at, reason)
            VALUES ($1, $2, $3, $4, $5, now(), $6) RETURNING created_at::text AS created_at
            """, [path, verification.sizeBytes, verification.sha256, database, jobID, reason])
        return Backup(
            file: path, sizeBytes: verification.sizeBytes, sha256: verification.sha256, database: database,
            entries: verification.entries, dataBlocks: verification.dataBlocks,
            createdAt: try row.first?.string("created_at") ?? "", reason: reason)
    }

    /// Checks that `file` is whole and unchanged: a custom-format dump whose table of contents
    /// and every data block pg_restore reads and decompresses to the end (a truncated or
    /// damaged file fails here), and, given a connection, whose SHA-256 is the one recorded in
    /// `<schema>.backups` when it was taken, if a record names it.
    ///
    /// `pg_restore --list` alone reads only the table of contents, at the start of the file: a
    /// dump cut anywhere in its data passes it.
    ///
    /// The file, and its folder, must be this user's alone (`BackupError.Code.untrusted`).
    public func verify(file: String, on connection: Connection? = nil) async throws -> BackupVerification {
        try await verify(BackupFile.open(absolutePath(file)), named: file, on: connection)
    }

    /// Verifies the open file; every reading (pg_restore's, the SHA-256) is of that file.
    /// `named` is the path as given, which a record may hold too.
    func verify(
        _ backup: BackupFile, named given: String? = nil, on connection: Connection?
    ) async throws -> BackupVerification {
        let file = backup.path
        let contents = try await tableOfContents(of: backup)
        // Restoring into /dev/null reads every entry's data from the archive and decompresses it.
        let read = try await ClientProgram.run("pg_restore", ["--file=/dev/null"], readingFrom: try backup.fromStart())
        guard read.succeeded else {
            throw BackupError(
                .damaged, file: file,
                "backup \(file) failed verification: pg_restore could not read all of its data (truncated or damaged?): \(read.firstErrorLine)"
            )
        }
        let (size, digest) = try await backup.sizeAndSHA256()
        var verification = BackupVerification(
            file: file, sizeBytes: size, sha256: digest, entries: contents.entries.count,
            dataBlocks: contents.dataBlocks, record: .notChecked, recordedAt: nil, recordTable: table)
        guard let connection else { return verification }
        guard let record = try await record(of: [file, given ?? file], on: connection) else {
            verification.record = .notRecorded
            return verification
        }
        guard record.sha256 == digest else {
            throw BackupError(
                .checksumMismatch, file: file,
                "backup \(file) failed verification: its sha256 is \(digest) (\(size) bytes), not the \(record.sha256) (\(record.sizeBytes) bytes) recorded in \(table) at \(record.createdAt): the file changed after it was taken"
            )
        }
        verification.record = .matched
        verification.recordedAt = record.createdAt
        return verification
    }

    /// The newest record of a backup file named by one of `paths`, if `<schema>.backups` exists.
    private func record(
        of paths: [String], on connection: Connection
    ) async throws -> (sha256: String, sizeBytes: Int64, createdAt: String)? {
        guard
            try await connection.query("SELECT to_regclass($1) IS NOT NULL AS present", [table]).first?.bool("present")
                == true
        else { return nil }
        guard
            let row = try await connection.query(
                """
                SELECT sha256, size_bytes, created_at::text AS created_at FROM \(table)
                WHERE file = ANY($1::text[]) ORDER BY id DESC LIMIT 1
                """, [PostgresArray.literal(paths)]
            ).first
        else { return nil }
        return (try row.string("sha256"), try row.int64("size_bytes"), try row.string("created_at"))
    }

    /// The dump's table of contents; throws unless the file is a custom-format pg_dump archive.
    func tableOfContents(of backup: BackupFile) async throws -> TableOfContents {
        let file = backup.path
        let list = try await ClientProgram.run("pg_restore", ["--list"], readingFrom: try backup.fromStart())
        guard list.succeeded else {
            throw BackupError(
                .damaged, file: file, "backup \(file) failed verification: pg_restore --list: \(list.firstErrorLine)")
        }
        let contents = TableOfContents(listing: list.stdout)
        // An empty database makes a valid dump with no entries: what counts is that pg_restore
        // reads a custom-format archive.
        guard contents.isCustomFormat else {
            throw BackupError(
                .damaged, file: file, "backup \(file) failed verification: not a custom-format pg_dump archive")
        }
        return contents
    }

    /// What restoring `file` would replace: the tables, types, functions and views in the dump.
    public func contents(of file: String) async throws -> [String] {
        try await tableOfContents(of: BackupFile.open(absolutePath(file))).objects
    }

    /// The schemas a restore replaces: every schema of the application's, that is all but the
    /// system's and Godwit's own.
    public func schemasToReplace(on connection: Connection) async throws -> [String] {
        try await connection.query(
            """
            SELECT nspname FROM pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema', $1)
              AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'
            ORDER BY nspname
            """, [schema]
        ).rows.map { try $0.string("nspname") }
    }

    /// The batched jobs whose checkpoints a restore would leave, or has left, ahead of the
    /// data, as the restore guard reports them: each one running, or with a checkpoint, on a
    /// table in a schema a restore replaces. Empty without a guard.
    public func batchedCheckpoints(on connection: Connection) async throws -> [BatchedCheckpoint] {
        try await restoreGuard?.checkpoints(on: connection) ?? []
    }

    /// Makes the database what `file` holds: in one transaction, the application's schemas are
    /// dropped and re-created from the dump, so objects made after the backup go too. Godwit's
    /// own schema is left alone. The file is verified first (against its record, when there is
    /// one). Nothing changes if any step fails.
    ///
    /// With a restore guard, a batched job on those schemas that is running, or queued with a
    /// checkpoint, makes the restore refuse (`BackupError.Code.jobsRunning`), before anything is
    /// dropped: its checkpoint would stay ahead of the restored rows and it would go on from
    /// there. With `pauseJobs`, such jobs are paused first (through the guard), and the restore
    /// waits up to `pauseTimeout` for the running ones to stop at a checkpoint. The guard's
    /// statement checks again inside the restore's transaction, once the schemas are dropped and
    /// locked, so a job that starts in between makes the restore fail with nothing changed.
    ///
    /// The dump's SQL streams from pg_restore through a pipe into psql: no data touches the
    /// disk. pg_restore runs with `--single-transaction`, so the `COMMIT` is the last thing it
    /// writes, after the last data; psql opens the transaction before dropping the schemas.
    /// If pg_restore stops early, psql reaches the end of its input with the transaction still
    /// open and the server rolls it back; if a statement fails, `ON_ERROR_STOP` ends psql and
    /// the same happens.
    ///
    /// The file is opened once: pg_restore reads, as its stdin, the very file verified.
    ///
    /// Returns the jobs paused, and every batched job on the replaced schemas whose checkpoint
    /// no longer matches the data (to rerun from the start).
    @discardableResult
    public func restore(
        file given: String, databaseURL: String, pauseJobs: Bool = false, pauseTimeout: Duration = .seconds(120)
    ) async throws -> RestoreOutcome {
        let backup = try BackupFile.open(absolutePath(given))
        let file = backup.path
        let connection = try await Connection.connect(databaseURL)
        let schemas: [String]
        let guardStatement: String?
        var paused: [BatchedCheckpoint] = []
        do {
            _ = try await verify(backup, named: given, on: connection)
            schemas = try await schemasToReplace(on: connection)
            guardStatement = try await restoreGuard?.guardStatement(on: connection)
            let blocking = try await batchedCheckpoints(on: connection).filter(\.continuesByItself)
            if !blocking.isEmpty {
                guard pauseJobs else {
                    throw BackupError(
                        .jobsRunning, file: file,
                        "restore of \(file) refused (nothing was changed): batched \(blocking.map(\.label).joined(separator: ", ")) on the schemas it replaces would go on from checkpoints ahead of the restored rows; pause them (SELECT \(schema).pause(ID), or run again with --pause-jobs) or cancel them (SELECT \(schema).cancel(ID)), then restore"
                    )
                }
                paused = try await pause(blocking, timeout: pauseTimeout, file: file, on: connection)
            }
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        var prelude = ["SET client_min_messages = error;"]
        prelude += schemas.map { "DROP SCHEMA IF EXISTS \(quoteIdentifier($0)) CASCADE;" }
        if let guardStatement {
            prelude.append(guardStatement)
        }
        if try await !createsPublicSchema(backup) {
            // pg_dump leaves out the standard public schema; re-create it as initdb makes it.
            prelude += [
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner;", "GRANT USAGE ON SCHEMA public TO PUBLIC;",
            ]
        }
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: databaseURL)
        let (render, apply) = try await ClientProgram.pipeline(
            .init("pg_restore", ["--no-owner", "--single-transaction", "--file=-"]),
            into: .init(
                "psql",
                [
                    "-X", "-q", "-v", "ON_ERROR_STOP=1", "--output=/dev/null", "--dbname=\(conninfo)",
                    "-c", "BEGIN", "-c", prelude.joined(separator: " "), "-f", "-",
                ],
                environment: environment),
            readingFrom: try backup.fromStart())
        guard apply.succeeded else {
            let pausedNote =
                paused.isEmpty
                ? ""
                : " (paused before it: \(paused.map(\.label).joined(separator: ", ")); resume them with SELECT \(schema).resume(ID))"
            throw BackupError(
                .restoreFailed, file: file,
                "restore of \(file) failed (nothing was changed\(pausedNote)): psql \(apply.exitDescription): \(apply.firstErrorLine)"
            )
        }
        guard render.succeeded else {
            throw BackupError(
                .restoreFailed, file: file,
                "restore of \(file) failed (nothing was changed): pg_restore \(render.exitDescription): \(render.firstErrorLine)"
            )
        }
        // The restore is committed: a failure from here on must say so.
        do {
            let after = try await Connection.connect(databaseURL)
            do {
                let stale = try await batchedCheckpoints(on: after)
                await after.close()
                return RestoreOutcome(paused: paused, staleCheckpoints: stale)
            } catch {
                await after.close()
                throw error
            }
        } catch {
            throw BackupError(
                .io, file: file,
                "restored \(file), but could not list the batched jobs whose checkpoints no longer match the data (\(error)): see SELECT * FROM \(quoteIdentifier(schema)).progress"
            )
        }
    }

    /// Pauses `jobs` and waits until none of the batched jobs on the replaced schemas goes on
    /// by itself: a running job stops at its next checkpoint. Throws, naming the jobs still
    /// running, after `timeout`.
    private func pause(
        _ jobs: [BatchedCheckpoint], timeout: Duration, file: String, on connection: Connection
    ) async throws -> [BatchedCheckpoint] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var asked = jobs
        var blocking = jobs
        while !blocking.isEmpty {
            // Asked again each round: a job re-queued since (its worker died) is paused then.
            for job in blocking {
                try await restoreGuard?.pause(job: job.id, on: connection)
                if !asked.contains(where: { $0.id == job.id }) { asked.append(job) }
            }
            blocking = try await batchedCheckpoints(on: connection).filter(\.continuesByItself)
            guard !blocking.isEmpty else { break }
            guard clock.now < deadline else {
                throw BackupError(
                    .jobsRunning, file: file,
                    "restore of \(file) refused (nothing was changed): batched \(blocking.map(\.label).joined(separator: ", ")) did not stop at a checkpoint within \(timeout) of being asked to pause (is its worker alive?); they stay asked to pause"
                )
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let now = try await batchedCheckpoints(on: connection)
        return asked.map { job in now.first { $0.id == job.id } ?? job }
    }

    /// Whether restoring `file` creates schema `public` itself. Decided from the table of
    /// contents: only a dump with an entry for the schema can; that one entry is rendered to
    /// see whether it is a `CREATE SCHEMA` (pg_dump 15 writes a comment instead, as initdb
    /// makes the schema).
    func createsPublicSchema(_ backup: BackupFile) async throws -> Bool {
        let file = backup.path
        guard let entry = try await tableOfContents(of: backup).publicSchemaEntry else { return false }
        // The archive is pg_restore's stdin, so the list is a file of its own.
        let directory = try PrivateDirectory()
        defer { directory.remove() }
        try directory.write("list", Array((entry + "\n").utf8))
        let rendered = try await ClientProgram.run(
            "pg_restore", ["--no-owner", "--use-list=\(directory.path("list"))", "--file=-"],
            readingFrom: try backup.fromStart())
        guard rendered.succeeded else {
            throw BackupError(
                .damaged, file: file, "cannot read backup \(file) (nothing was changed): \(rendered.firstErrorLine)")
        }
        return rendered.stdout.split(separator: "\n").contains {
            $0.hasPrefix("CREATE SCHEMA public;") || $0.hasPrefix("CREATE SCHEMA public ")
        }
    }

    /// Recorded backups, newest first.
    public func list(on connection: Connection) async throws -> [Backup] {
        try await connection.query(
            """
            SELECT file, size_bytes, sha256, database_name, created_at::text AS created_at, reason
            FROM \(table) ORDER BY id DESC
            """
        ).rows.map { row in
            Backup(
                file: try row.string("file"), sizeBytes: try row.int64("size_bytes"), sha256: try row.string("sha256"),
                database: try row.string("database_name"), entries: 0, dataBlocks: 0,
                createdAt: try row.string("created_at"), reason: row["reason"])
        }
    }

    /// A `pg_dump` pattern (`--exclude-schema`) that matches the schema named `name` and no
    /// other.
    ///
    /// pg_dump reads a pattern as psql's `\d` does: outside double quotes, letters fold to
    /// lowercase, `*` and `?` are wildcards, `.` separates database, schema and name, and
    /// regular-expression characters pass through. Inside double quotes every character stands
    /// for itself, and `""` for one `"`. So the name in double quotes, its quotes doubled,
    /// matches exactly: `Gw` only `Gw`, `gw*` only `gw*`, and `a.b` is one schema name.
    static func exactPattern(_ name: String) -> String {
        quoteIdentifier(name)
    }

    /// `path` made absolute against the working directory, so that what is recorded and
    /// printed names the file wherever it is read.
    static func absolutePath(_ path: String, in workingDirectory: WorkingDirectory) -> String {
        (workingDirectory.resolve(path) as NSString).standardizingPath
    }

    /// `path` made absolute against this manager's working directory.
    func absolutePath(_ path: String) -> String { Self.absolutePath(path, in: workingDirectory) }
}
