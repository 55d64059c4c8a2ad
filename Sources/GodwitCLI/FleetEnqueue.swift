import ArgumentParser
import Foundation
import GodwitFleet
import GodwitJobs
import GodwitPostgres
import GodwitQueue

/// `godwit fleet enqueue JOBFILE --targets FILE`: one batched job, validated against each target
/// and enqueued in every target's own queue (`FleetEnqueuer`).
struct FleetEnqueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Validate a batched job file against every target and enqueue it in each target's queue.",
        discussion: """
            The file is read and parsed once. Each target's enqueue is `godwit job enqueue`'s, \
            checked against that target's own tables; a schema target's job runs with its schema \
            first in the search_path. A target where the job does not validate, or that cannot be \
            reached, fails alone with a one-line reason; the others are enqueued. With -D, the run \
            is recorded in the control database (fleet_runs, fleet_targets with each job's id), \
            which `godwit fleet status` reads. Exits 0 only when every target has its job; \
            `godwit worker --targets` runs them.

            Example: godwit fleet enqueue jobs/backfill_title.sql --targets tenants.txt
            """)

    @Argument(help: "The batched job file (jobs/*.sql).") var file: String
    @OptionGroup var targetOptions: FleetTargetOptions
    /// -D: the control database, for the record and --targets-query.
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions

    @Option(help: "Targets enqueued at once.")
    var parallel = 4

    @Option(help: "The jobs' name (default: the name directive, or the file name).")
    var name: String?

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        guard targetOptions.given else { throw ValidationError("give --targets FILE or --targets-query SQL") }
    }

    /// Whether the run is recorded: only with a control database given on the command line.
    private var records: Bool { connection.databaseURL != nil || connection.databaseURLFile != nil }

    func run() async throws {
        try await withCLIErrors {
            let logger = makeLogger(queueOptions.logLevel)
            guard let text = try? String(contentsOfFile: Console.current.opened(file), encoding: .utf8) else {
                throw CLIError("\(file): cannot read the file")
            }
            var definition = try BatchedJobDefinition.parse(text, file: file)
            if let name { definition.name = name }
            let targets = try await targetOptions.load(control: connection, logger: logger)
            var enqueuer = FleetEnqueuer(
                definition: definition, file: file, schema: QueueSchema.withJobs(name: queueOptions.schema))
            enqueuer.parallel = parallel
            enqueuer.connectTimeout = .milliseconds(Int(connection.connectTimeout * 1000))
            let results: [FleetEnqueuer.Result]
            if records {
                // Over a session with search_path pinned: the record's statements are Godwit's own.
                results = try await connection.withQueueConnection(logger: logger) { control in
                    let record = try await FleetEnqueueRecord.start(
                        on: control, schema: queueOptions.schema, file: file, jobText: text,
                        options: FleetEnqueueRecord.Options(parallel: parallel, name: name), targets: targets)
                    output("fleet run \(record.runID)")
                    let results = try await Self.enqueue(
                        targets.targets, with: enqueuer, recordedIn: record, control: control)
                    await record.records.unlock(run: record.runID, on: control)
                    return results
                }
            } else {
                results = await enqueuer.enqueue(on: targets.targets, onResult: { Self.report($0) })
            }
            let failed = results.filter { $0.jobID == nil }
            guard failed.isEmpty else {
                throw FleetError(
                    .targetsFailed,
                    "\(failed.count) of \(results.count) targets failed: \(failed.map(\.target.name).joined(separator: ", "))"
                )
            }
            output("enqueued on all \(results.count) targets")
        }
    }

    /// Enqueues on `targets`, each one's start and end recorded in `record` as it happens and
    /// reported on a line, then ends the run: succeeded when every one of the run's targets
    /// has its job. The caller holds the run's lock. `lastAttempts` is `FleetEnqueuer`'s, for a
    /// resumed run.
    static func enqueue(
        _ targets: [FleetTarget], with enqueuer: FleetEnqueuer, recordedIn record: FleetEnqueueRecord,
        control: Connection, lastAttempts: [String: String] = [:]
    ) async throws -> [FleetEnqueuer.Result] {
        let results = await enqueuer.enqueue(
            on: targets, lastAttempts: lastAttempts,
            onStart: { target in try? await record.started(target.name, on: control) },
            onResult: { result in
                Self.report(result)
                try? await record.finished(
                    result.target.name, jobID: result.jobID, error: result.error, on: control)
            })
        let all = try await record.records.targets(run: record.runID, on: control)
        try await record.records.finishRun(
            run: record.runID, state: all.allSatisfy { $0.state == .succeeded } ? .succeeded : .failed, on: control)
        return results
    }

    /// One line a target, as each ends: its job's id on stdout, or its error on stderr.
    private static func report(_ result: FleetEnqueuer.Result) {
        for warning in result.warnings { printWarning("target \(result.target.name): \(warning)") }
        if let id = result.jobID {
            output(
                "\(result.target.name): job \(id)\(result.foundEnqueued ? " (enqueued before the run was interrupted)" : "")"
            )
        } else {
            printError("target \(result.target.name): \(result.error ?? "failed")")
        }
    }
}
