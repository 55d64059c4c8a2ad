import Foundation
import GodwitFleet
import GodwitJobs
import GodwitPostgres
import GodwitQueue

extension FleetCommand.Resume {
    /// Enqueues the run's job again on its targets that have none, holding the run's lock: the
    /// job file the run recorded (or --source), unchanged since (or --force-changed-source),
    /// with the run's options.
    func resumeEnqueue(_ run: FleetRun, given: FleetTargets?, records: FleetRecords, control: Connection) async throws {
        let recorded = try await records.targets(run: run.id, on: control)
        let planned = try Self.plan(recorded, given: given, run: run.id).map(\.target)
        guard !planned.isEmpty else {
            printNote("run \(run.id): every target has its job already; nothing to resume")
            return
        }
        let options: FleetEnqueueRecord.Options
        do {
            options = try FleetEnqueueRecord.Options.from(jsonText: run.options)
        } catch {
            throw FleetError(.wrongState, "run \(run.id): its recorded options cannot be read: \(error)")
        }
        guard let file = source ?? run.source else {
            throw FleetError(.wrongState, "run \(run.id) recorded no job file: name it with --source FILE")
        }
        guard let text = try? String(contentsOfFile: Console.current.opened(file), encoding: .utf8) else {
            throw CLIError("\(file): cannot read the file")
        }
        let checksums = FleetEnqueueRecord.checksums(of: text)
        if Self.sha384(checksums) != run.checksums.flatMap(Self.sha384) {
            guard forceChangedSource else {
                throw FleetError(
                    .wrongState,
                    "run \(run.id): \(file) changed since the run (its SHA-384 differs); nothing was resumed: --force-changed-source resumes with the file as it is now"
                )
            }
            printWarning("run \(run.id): resuming with \(file) as it is now")
            try await records.setChecksums(run: run.id, checksums: checksums, on: control)
        }
        var definition = try BatchedJobDefinition.parse(text, file: file)
        if let name = options.name { definition.name = name }
        // Each target's last attempt, which may have enqueued the job before the run died.
        var lastAttempts: [String: String] = [:]
        for target in recorded where target.state.needsResume {
            if let started = target.startedAt { lastAttempts[target.name] = started }
        }
        try await records.reopenRun(run: run.id, names: planned.map(\.name), on: control)
        printNote(
            "run \(run.id): resuming \(planned.count) of \(recorded.count) targets (\(planned.map(\.name).prefix(10).joined(separator: ", "))\(planned.count > 10 ? ", ..." : ""))"
        )
        var enqueuer = FleetEnqueuer(
            definition: definition, file: file, schema: QueueSchema.withJobs(name: schemaOptions.schema))
        enqueuer.parallel = options.parallel
        enqueuer.connectTimeout = .milliseconds(Int(connection.connectTimeout * 1000))
        _ = try await FleetEnqueue.enqueue(
            planned, with: enqueuer, recordedIn: FleetEnqueueRecord(records: records, runID: run.id), control: control,
            lastAttempts: lastAttempts)
    }

    /// The SHA-384 a run's `checksums` JSON records for its job file.
    private static func sha384(_ json: String) -> String? {
        (try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)))?["sha384"]
    }
}
