import ArgumentParser
import GodwitFleet
import GodwitMigrations
import GodwitPostgres
import Logging

extension FleetCommand {
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply a migrations folder to every target of a fleet, as migrate run does to one database.",
            discussion: """
                The first --canary targets run one by one, and any failure among them stops the run; then \
                the rest, at most --parallel at once, never two targets of one database at once (sqlx's \
                lock is database-wide). Each target gets migrate run's safe path: the lint gate \
                (--strict), sqlx's advisory lock, and lock timeouts with retries. A schema target \
                (schema=NAME) keeps its ledger in NAME._sqlx_migrations, creates NAME when missing, and \
                runs with search_path "NAME", public. The run and each target's state, applied versions, \
                error and lock wait are recorded in the control database (-D): fleet status shows them, \
                fleet resume finishes what failed or never started. --connect-timeout also bounds each attempt to \
                connect to a target (not retried: a target that is down fails alone). Exit 0 only when every \
                target succeeded.

                Example: godwit fleet migrate -D $CONTROL_URL --targets tenants.txt --source migrations --parallel 8
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var targetOptions: FleetTargetOptions
        @OptionGroup var folder: MigrationFolderOptions
        @OptionGroup var lockOptions: LockOptions
        @OptionGroup var schemaOptions: SchemaOptions

        @Option(help: "How many targets run first, one by one; any failure among them stops the run (0: none).")
        var canary = 1

        @Option(help: "At most this many targets at once, each on its own connection.")
        var parallel = 4

        @Option(help: "stop: start no new target after a failure (the rest are skipped); continue: run every target.")
        var onError: FleetMigrateOptions.OnError = .stop

        @Flag(help: "Refuse a target when migrate lint's trace flags a pending migration.")
        var strict = false

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .warning

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(logLevel)
                let config = try folder.resolvedConfig()
                let migrator = try folder.migrator(config: config, logger: logger, lockPolicy: lockOptions.policy)
                let directory = folder.directory(in: config)
                let options = FleetMigrateOptions(
                    canary: canary, parallel: parallel, onError: onError,
                    lockTimeoutMs: lockOptions.lockTimeout == .zero ? nil : Int64(lockOptions.lockTimeout.milliseconds),
                    lockRetries: lockOptions.lockRetries, strict: strict,
                    connectTimeoutSeconds: connection.connectTimeout,
                    sourcePath: Console.current.opened(directory),
                    configPath: config.path.map { Console.current.opened($0) })
                // The file's targets and the options are checked before anything connects.
                let fleet: FleetTargets
                if let fromFile = try targetOptions.fileTargets() {
                    fleet = fromFile
                } else {
                    fleet = try await targetOptions.load(control: connection, logger: logger)
                }
                try options.validate(targetCount: fleet.targets.count)
                let records = FleetRecords(schema: schemaOptions.schema)
                let runner = FleetRunner(migrator: migrator, options: options, records: records)
                let display = FleetProgressDisplay(
                    targets: fleet.targets.enumerated().map { ($1.name, $0 < options.canary) },
                    terminal: Console.current.stdoutIsTerminal)
                try await connection.withQueueConnection(logger: logger) { control in
                    let id = try await runner.start(
                        fleet, source: directory, control: control,
                        onStart: { id in
                            printNote(
                                "run \(id): migrating \(fleet.targets.count) targets from \(directory) (canary \(options.canary), parallel \(options.parallel), on error \(options.onError.rawValue))"
                            )
                        }, onProgress: display.handle)
                    display.finish()
                    let (run, targets) = try await FleetReport.read(id, records: records, on: control)
                    FleetReport.print(run, targets)
                    try FleetReport.requireSuccess(run, targets)
                }
            }
        }
    }
}

extension FleetMigrateOptions.OnError: ExpressibleByArgument {}
