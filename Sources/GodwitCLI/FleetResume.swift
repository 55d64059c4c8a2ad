import ArgumentParser
import GodwitFleet
import GodwitMigrations
import GodwitPostgres
import Logging

extension FleetCommand {
    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run again, within the same run, only the targets that failed or never finished.",
            discussion: """
                Uses the run's recorded targets, folder (or job file) and options, and connects to no \
                target that already succeeded. Refuses a run whose process is still at work (it holds \
                the run's advisory lock), and a folder (or job file) whose checksums changed since the \
                run unless --force-changed-source. Targets are recorded without their passwords: libpq \
                finds them in PGPASSWORD or the password file (.pgpass, PGPASSFILE), or give the targets \
                file again with --targets, whose lines for the run's targets must name the same \
                connection, password aside.

                For a fleet enqueue run, a target whose queue already holds the job an interrupted \
                attempt enqueued (one of the job's name, enqueued by the target's login since that \
                attempt began) keeps it instead of getting a second one.

                Example: godwit fleet resume 12 -D $CONTROL_URL --targets tenants.txt
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var targetOptions: FleetTargetOptions
        @OptionGroup var schemaOptions: SchemaOptions

        @Argument(help: ArgumentHelp("The run's id.", valueName: "run"))
        var runID: Int64

        @Option(
            help:
                "Read the migrations from this folder (an enqueue run: the job from this file) instead of the run's (a checkout moved elsewhere)."
        )
        var source: String?

        @Flag(
            help:
                "Resume even though the folder's migrations (or the job file) changed since the run (its checksums are recorded anew)."
        )
        var forceChangedSource = false

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .warning

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(logLevel)
                let records = FleetRecords(schema: schemaOptions.schema)
                var given = try targetOptions.fileTargets()
                if given == nil && targetOptions.targetsQuery != nil {
                    given = try await targetOptions.load(control: connection, logger: logger)
                }
                try await connection.withQueueConnection(logger: logger) { control in
                    guard let run = try await records.run(runID, on: control) else {
                        throw FleetError(.notFound, "no fleet run \(runID) in schema \(records.schema)")
                    }
                    guard run.command == "migrate" || run.command == "enqueue" else {
                        throw FleetError(
                            .wrongState, "run \(runID) is a fleet \(run.command) run, which resume does not know")
                    }
                    guard try await records.tryLock(run: runID, on: control) else {
                        throw FleetError(
                            .wrongState,
                            "run \(runID) is still running: its process holds the run's lock (godwit fleet status \(runID) follows it)"
                        )
                    }
                    do {
                        if run.command == "enqueue" {
                            try await resumeEnqueue(run, given: given, records: records, control: control)
                        } else {
                            try await resume(run, given: given, records: records, control: control, logger: logger)
                        }
                        await records.unlock(run: runID, on: control)
                    } catch {
                        await records.unlock(run: runID, on: control)
                        throw error
                    }
                    let (after, targets) = try await FleetReport.read(runID, records: records, on: control)
                    FleetReport.print(after, targets)
                    try FleetReport.requireSuccess(after, targets)
                }
            }
        }

        /// Runs the run's targets that did not succeed, holding its lock.
        private func resume(
            _ run: FleetRun, given: FleetTargets?, records: FleetRecords, control: Connection, logger: Logger
        ) async throws {
            let recorded = try await records.targets(run: run.id, on: control)
            let planned = try Self.plan(recorded, given: given, run: run.id)
            guard !planned.isEmpty else {
                printNote("run \(run.id): every target succeeded already; nothing to resume")
                return
            }
            var options: FleetMigrateOptions
            do {
                options = try FleetMigrateOptions.from(jsonText: run.options)
            } catch {
                throw FleetError(.wrongState, "run \(run.id): its recorded options cannot be read: \(error)")
            }
            if let source { options.sourcePath = Console.current.opened(source) }
            let config = try options.configPath.map { try MigrationConfig.load(path: $0) } ?? .default
            for warning in config.warnings { printWarning(warning) }
            let migrator = try Migrator(
                directory: options.sourcePath, relativeTo: Console.current.directory, logger: logger,
                lockPolicy: options.lockPolicy, config: config)
            for warning in migrator.source.warnings { printWarning(warning) }
            let changes = try FleetRunner.sourceChanges(of: migrator.source, since: run.checksums ?? "[]")
            if !changes.isEmpty {
                guard forceChangedSource else {
                    throw FleetError(
                        .wrongState,
                        "run \(run.id): the migrations in \(options.sourcePath) changed since the run (\(changes.joined(separator: ", "))); nothing was resumed: --force-changed-source resumes with the folder as it is now"
                    )
                }
                printWarning(
                    "run \(run.id): resuming with the migrations as they are now (\(changes.joined(separator: ", ")))")
                try await records.setChecksums(
                    run: run.id, checksums: FleetRunner.checksumsJSON(of: migrator.source), on: control)
            }
            try await records.reopenRun(run: run.id, names: planned.map(\.target.name), on: control)
            printNote(
                "run \(run.id): resuming \(planned.count) of \(recorded.count) targets (\(planned.map(\.target.name).prefix(10).joined(separator: ", "))\(planned.count > 10 ? ", ..." : ""))"
            )
            let display = FleetProgressDisplay(
                targets: planned.map { ($0.target.name, $0.canary) }, terminal: Console.current.stdoutIsTerminal)
            let runner = FleetRunner(migrator: migrator, options: options, records: records)
            try await runner.run(run.id, planned, control: control, onProgress: display.handle)
            display.finish()
        }

        /// The targets to run again, in their order, with the connections of `given` (the
        /// targets file again, for passwords) where it names them. A target of `given` must be
        /// one of the run's, with its connection (password aside) and schema as recorded.
        static func plan(_ recorded: [FleetTargetRecord], given: FleetTargets?, run: Int64) throws
            -> [FleetRunner.Planned]
        {
            let byName = Dictionary(recorded.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            var replacements: [String: FleetTarget] = [:]
            for target in given?.targets ?? [] {
                let origin = given?.origin
                guard let record = byName[target.name] else {
                    throw FleetError(
                        .badTargets, file: origin, line: target.line, "target \(target.name) is not one of run \(run)'s"
                    )
                }
                guard target.storedConnection == record.connection, target.schema == record.schema else {
                    throw FleetError(
                        .badTargets, file: origin, line: target.line,
                        "target \(target.name) names another connection or schema than run \(run) recorded (\(record.connection)\(record.schema.map { " schema=\($0)" } ?? "")): resume runs the recorded targets"
                    )
                }
                replacements[target.name] = target
            }
            return recorded.filter { $0.state.needsResume }.map { record in
                FleetRunner.Planned(target: replacements[record.name] ?? record.target, canary: record.canary)
            }
        }
    }
}
