import ArgumentParser
import GodwitFleet
import GodwitPostgres
import GodwitQueue

/// What `fleet status` adds for an enqueue run: each target's backfill as it stands in the
/// target's own queue (`FleetBackfillProgress`), and an exit status that says whether every
/// target has its job and every job succeeded.
enum FleetBackfillReport {
    /// Prints a line per target with a job (`NAME  job 42  running  1200/5000 rows  24.0%`),
    /// then throws the run's error line unless every target was enqueued and every job
    /// succeeded.
    static func show(
        _ run: FleetRun, _ targets: [FleetTargetRecord], schema: String, connectTimeout: Duration
    ) async throws {
        let jobs = targets.compactMap { target in
            target.jobID.map {
                (
                    target: FleetTarget(name: target.name, connection: target.connection, schema: target.schema),
                    jobID: $0
                )
            }
        }
        let progress = await FleetBackfillProgress.read(
            jobs, schema: QueueSchema(name: schema), connectTimeout: connectTimeout)
        if !progress.isEmpty {
            let width = max(6, progress.map(\.target.count).max() ?? 0) + 2
            output("BACKFILL")
            for item in progress {
                let name = item.target + String(repeating: " ", count: width - item.target.count)
                output(TerminalText.escaped("\(name)job \(item.jobID)  \(item.summary)", keepingNewlines: false))
            }
        }
        if run.state == .running && !run.isInterrupted {
            throw FleetError(.wrongState, "run \(run.id) is still enqueueing")
        }
        let unqueued = targets.filter { $0.jobID == nil }.map(\.name)
        if !unqueued.isEmpty {
            throw FleetError(
                .targetsFailed,
                "run \(run.id): \(unqueued.count) of \(targets.count) targets have no job (\(listed(unqueued))); godwit fleet resume \(run.id) enqueues on them"
            )
        }
        let unfinished = progress.filter { $0.state != "succeeded" }
        guard !unfinished.isEmpty else { return }
        var byState: [String] = []
        for state in Set(unfinished.map { $0.state ?? "unknown" }).sorted() {
            byState.append("\(state): \(listed(unfinished.filter { ($0.state ?? "unknown") == state }.map(\.target)))")
        }
        throw FleetError(
            .targetsFailed,
            "run \(run.id): \(unfinished.count) of \(targets.count) backfills have not succeeded (\(byState.joined(separator: "; ")))"
        )
    }

    private static func listed(_ names: [String]) -> String {
        names.prefix(10).joined(separator: ", ") + (names.count > 10 ? ", ..." : "")
    }
}
