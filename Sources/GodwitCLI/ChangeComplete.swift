import ArgumentParser
import GodwitChanges
import GodwitMigrations

extension ChangeCommand {
    /// `change complete NAME`: the contract, gated on the evidence that nothing needs the old
    /// columns any more.
    struct Complete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Complete a change (contract): drop the trigger and the old columns, set NOT NULL.",
            discussion: """
                Refuses, naming every reason, unless the backfill succeeded, the verification \
                read zero disagreeing rows, the indexes are valid, the constraints validated, \
                and no statement naming a column to drop has run for --quiet-for, as the \
                worker's samples of pg_stat_statements show (it samples every 5 s, so a worker \
                must have run through the window). Then one transaction under lock_timeout \
                with retries drops the trigger and its function, sets NOT NULL, and drops the \
                old columns.

                --without-reader-check "REASON" goes ahead without the reader evidence (for a \
                database without pg_stat_statements, say); the reason is recorded with the \
                change. --write-migration DIR writes the change's end state as \
                DIR/<VERSION>_<name>.sql (VERSION as migrate add makes it) and records that \
                version in the ledger with the file's checksum, in the same transaction, so a \
                database built from the folder ends with the live schema and sqlx::migrate! \
                on the live one neither reruns the change nor fails.

                Example: godwit change complete media_caption --quiet-for 30m --write-migration migrations
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @OptionGroup var lockOptions: LockOptions

        @Argument(help: "The change's name (its -- name:, or its file's stem).")
        var name: String

        @Option(
            help: ArgumentHelp(
                "How long no statement naming a column to drop may have run (10s, 15m, 1h).", valueName: "duration"),
            transform: DurationArgument.parse)
        var quietFor: Duration = ChangeCompletion.defaultQuietFor

        @Option(
            name: .customLong("without-reader-check"),
            help: ArgumentHelp("Complete without the reader evidence; the reason is recorded.", valueName: "reason"))
        var waiver: String?

        @Option(
            help: ArgumentHelp(
                "Write the folded migration into this folder and record it in the ledger.", valueName: "dir"))
        var writeMigration: String?

        @Option(
            name: .customLong("config"),
            help: ArgumentHelp(
                "The sqlx.toml to read for --write-migration (default: sqlx.toml in the current directory, when there is one).",
                valueName: "file"))
        var configFile: String?

        func run() async throws {
            try await withCLIErrors {
                let folder = try writeMigration.map { directory in
                    let config = try MigrationConfig.resolve(
                        configPath: configFile, directory: Console.current.directory.path)
                    return ChangeCompletion.MigrationFolder(
                        directory: directory, base: Console.current.directory, config: config)
                }
                let completion = ChangeCompletion(
                    schemaName: queueOptions.schema, name: name, quietFor: quietFor, waiver: waiver,
                    lockPolicy: lockOptions.policy, migrationFolder: folder)
                let outcome = try await connection.withConnection(logger: makeLogger(queueOptions.logLevel)) {
                    try await completion.run(on: $0, retrying: printWarning)
                }
                output("completed change \(outcome.name) on \(outcome.table)")
                if let path = outcome.migrationPath, let version = outcome.migrationVersion,
                    let ledger = outcome.ledgerTable
                {
                    output("wrote \(path) and recorded version \(version) in \(ledger) with its checksum")
                    printNote(
                        "a database whose \(ledger) lacks version \(version) runs \(path) there, as sqlx runs any version it lacks whatever its number: the blocking add, fill and drop, which holds \(outcome.table) for the whole fill; build new databases from the folder, and record the version (migrate baseline) where the change ran live"
                    )
                }
            }
        }
    }
}
