import ArgumentParser
import Foundation
import GodwitBackups
import GodwitJobs
import GodwitPostgres
import GodwitQueue

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take, verify, list and restore pg_dump backups.",
        discussion: """
            Backups are pg_dump --format=custom files named backup-YYYYmmdd-HHMMSS.dump (mode \
            0600), read back in full by pg_restore and recorded with size and SHA-256 in \
            godwit.backups. Godwit's own schema is not in them, so a restore never rewinds the queue.
            """,
        subcommands: [Create.self, Verify.self, List.self, Restore.self])

    struct Options: ParsableArguments {
        @OptionGroup var connection: ConnectionOptions

        @Option(help: "The folder for backup files.")
        var dir = "backups"

        @OptionGroup var schemaOptions: SchemaOptions
        var schema: String { schemaOptions.schema }

        /// A manager whose restores ask the batched jobs first.
        var manager: BackupManager {
            BackupManager(
                directory: dir, schema: schema, restoreGuard: BatchedRestoreGuard(schema: QueueSchema(name: schema)),
                workingDirectory: Console.current.directory)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dump the database, verify and record the dump.")
        @OptionGroup var options: Options

        @Option(
            help: ArgumentHelp(
                "Why the backup is taken, recorded with it and shown by backup list (default: by hand).",
                valueName: "words"))
        var reason = BackupReason.byHand

        func validate() throws {
            guard !reason.allSatisfy(\.isWhitespace), !reason.contains(where: \.isNewline) else {
                throw ValidationError(
                    "--reason must be one line of words, such as \"before rollback of 20240101000000\"")
            }
        }

        func run() async throws {
            try await withCLIErrors {
                let backup = try await options.connection.withConnection(logger: makeLogger(.notice)) { conn in
                    try await options.manager.installSchema(on: conn)
                    return try await options.manager.create(
                        databaseURL: try options.connection.resolvedURL(), reason: reason, on: conn)
                }
                output(
                    "\(backup.file) \(backup.sizeBytes) bytes sha256 \(backup.sha256) (verified: \(backup.entries) entries, \(backup.dataBlocks) data blocks read in full)"
                )
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that a backup file is whole and unchanged.",
            discussion: """
                pg_restore reads the table of contents and every data block to the end, so a \
                truncated or damaged file fails. With a database (--database-url, DATABASE_URL or \
                ./.env), the file's SHA-256 is also compared with the one recorded in godwit.backups \
                when it was taken. Prints one line saying what was checked.
                """)
        @OptionGroup var connection: ConnectionOptions

        @OptionGroup var schemaOptions: SchemaOptions
        var schema: String { schemaOptions.schema }

        @Argument(help: "The backup file.") var file: String

        func run() async throws {
            try await withCLIErrors {
                let manager = BackupManager(directory: ".", schema: schema, workingDirectory: Console.current.directory)
                // Without a database, the file alone is checked.
                guard (try? connection.resolvedURL()) != nil else {
                    output(try await manager.verify(file: file).summary)
                    return
                }
                try await connection.withConnection(logger: makeLogger(.notice)) { conn in
                    output(try await manager.verify(file: file, on: conn).summary)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List recorded backups, newest first.",
            discussion: """
                One line each: when, the file, its size and SHA-256, the database it is of, and why \
                it was taken ("before migration V (description)", "by hand", "before rollback of V"; \
                "reason not recorded" for backups taken before queue schema step 4).
                """)
        @OptionGroup var options: Options

        func run() async throws {
            try await withCLIErrors {
                let backups = try await options.connection.withConnection(logger: makeLogger(.notice)) { conn in
                    try await options.manager.installSchema(on: conn)
                    return try await options.manager.list(on: conn)
                }
                for backup in backups {
                    output(
                        "\(backup.createdAt)  \(backup.file)  \(backup.sizeBytes) bytes  sha256 \(backup.sha256)  database \(backup.database)  \(backup.reason ?? "reason not recorded")"
                    )
                }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into the database, replacing the objects it holds.",
            discussion: """
                Without --yes, says what it would replace and changes nothing.

                Godwit's schema is not in a backup, so a restore rewinds a batched job's table \
                but not its checkpoint. A restore refuses, before anything is dropped, while a \
                batched job on the schemas it replaces is running or queued with a checkpoint; \
                --pause-jobs pauses those first (SELECT godwit.pause(ID)) and waits for them to \
                stop at a checkpoint. Afterwards it lists every batched job on those schemas whose \
                checkpoint no longer matches the data: rerun each from the start with \
                `godwit job enqueue FILE` (resume and retry would continue from the checkpoint \
                and skip rows).
                """)
        @OptionGroup var options: Options
        @Argument(help: "The backup file.") var file: String
        @Flag(help: "Really replace the objects in the database.") var yes = false
        @Flag(
            help:
                "Pause the batched jobs on the replaced schemas that are running or queued with a checkpoint, and wait for them to stop, instead of refusing."
        )
        var pauseJobs = false
        @Option(help: "With --pause-jobs, how long to wait for running jobs to stop at a checkpoint (seconds).")
        var pauseTimeout: Double = 120

        func validate() throws {
            guard pauseTimeout > 0, pauseTimeout.isFinite else {
                throw ValidationError("--pause-timeout must be a positive number of seconds")
            }
        }

        func run() async throws {
            try await withCLIErrors {
                let url = try options.connection.resolvedURL()
                let manager = options.manager
                let objects = try await manager.contents(of: file)
                let (database, schemas, blocking) = try await options.connection.withConnection(
                    logger: makeLogger(.notice)
                ) { conn in
                    (
                        try await conn.query("SELECT current_database() AS d").first?.string("d") ?? "?",
                        try await manager.schemasToReplace(on: conn),
                        try await manager.batchedCheckpoints(on: conn).filter(\.continuesByItself)
                    )
                }
                guard yes else {
                    let jobs =
                        blocking.isEmpty
                        ? ""
                        : "; it would refuse, as batched \(blocking.map(\.label).joined(separator: ", ")) would go on from checkpoints ahead of the restored rows (pause or cancel them, or add --pause-jobs)"
                    throw CLIError(
                        "restore would drop schemas \(schemas.joined(separator: ", ")) of database \(database), everything in them included, and re-create them from \(file) (\(objects.count) tables, types, views and functions)\(jobs): run again with --yes"
                    )
                }
                let outcome = try await manager.restore(
                    file: file, databaseURL: url, pauseJobs: pauseJobs, pauseTimeout: .seconds(pauseTimeout))
                if !outcome.paused.isEmpty {
                    output(
                        "paused before the restore: \(outcome.paused.map { "job \($0.id) (\($0.name))" }.joined(separator: ", "))"
                    )
                }
                output("restored \(file) into \(database) (schemas \(schemas.joined(separator: ", ")) replaced)")
                report(outcome.staleCheckpoints, schema: options.schema)
            }
        }

        /// Names the jobs whose checkpoints the restore left ahead of the data, and how to rerun them.
        private func report(_ stale: [BatchedCheckpoint], schema: String) {
            guard !stale.isEmpty else { return }
            // As the person typed it in --schema (default godwit), for SQL they will paste.
            let godwit = schema
            // A parallel job's shards are named once, as their parallel job: that is what is
            // cancelled and enqueued again (cancelling it cancels every shard).
            var lines: [String] = []
            var parents: [Int64] = []
            var shards: [Int64: [BatchedCheckpoint]] = [:]
            for job in stale {
                if let parent = job.parent {
                    if shards[parent.id] == nil { parents.append(parent.id) }
                    shards[parent.id, default: []].append(job)
                } else {
                    lines.append("  \(job)")
                }
            }
            for id in parents {
                let group = shards[id] ?? []
                guard let parent = group.first?.parent else { continue }
                lines.append(
                    "  parallel job \(id) (\(parent.name), \(parent.state)) on \(group[0].table): \(group.count) shard\(group.count == 1 ? "" : "s") with checkpoints, "
                        + "\(group.map(\.batchesDone).reduce(0, +)) batches, \(group.map(\.rowsDone).reduce(0, +)) rows done"
                )
            }
            output(
                "the checkpoints of \(lines.count) batched job\(lines.count == 1 ? "" : "s") no longer match the restored data (\(godwit).resume and \(godwit).retry would continue from them and skip rows):"
            )
            for line in lines { output(line) }
            output(
                "rerun each from the start: SELECT \(godwit).cancel(ID) if it is not finished, then godwit job enqueue FILE (its job file)"
            )
        }
    }
}
