import Foundation
import GodwitPostgres
import GodwitQueue

/// A fleet enqueue's job as it stands in one target's queue: what `godwit fleet status` shows
/// for each target of an enqueue run, read from the target's own `<schema>.progress`.
public struct FleetBackfillProgress: Sendable, Equatable {
    /// The target's name.
    public var target: String
    /// The job in the target's queue (`fleet_targets.job_id`).
    public var jobID: Int64
    /// The job's state (queued, running, succeeded, failed, ...); nil when it could not be read.
    public var state: String?
    public var rowsDone: Int64?
    public var rowsTotal: Int64?
    /// 0 to 100; 100 once the job succeeded.
    public var percent: Double?
    /// The job's last error, or why its progress could not be read (one line either way).
    public var error: String?

    public init(target: String, jobID: Int64) {
        self.target = target
        self.jobID = jobID
    }

    /// What a status table shows for it: `running  1200/5000 rows  24.0%`, or why it is unknown.
    public var summary: String {
        guard let state else { return "unknown: \(error ?? "not read")" }
        var parts = [state]
        if let rowsDone { parts.append("\(rowsDone)\(rowsTotal.map { "/\($0)" } ?? "") rows") }
        if let percent { parts.append(String(format: "%.1f%%", percent)) }
        if let error, state != "succeeded" { parts.append(error) }
        return parts.joined(separator: "  ")
    }

    /// Reads the progress of `jobID` in `target`'s queue, over a short session of its own
    /// (`search_path` pinned: only Godwit's view is read). A target that cannot be reached, or
    /// whose queue has no such job, gives a progress with `state` nil and the reason.
    public static func read(
        target: FleetTarget, jobID: Int64, schema: QueueSchema = QueueSchema(), connectTimeout: Duration = .seconds(10)
    ) async -> FleetBackfillProgress {
        var progress = FleetBackfillProgress(target: target.name, jobID: jobID)
        var options = SessionOptions()
        options.applicationName = "godwit fleet status"
        options.connectTimeout = connectTimeout
        options.pinnedSearchPath = SessionOptions.catalogSearchPath
        do {
            let row = try await Connection.withConnection(target.connection, options: options) { conn in
                try await conn.query(
                    """
                    SELECT state::text AS state, rows_done, rows_total, percent::float8 AS percent, last_error
                    FROM \(schema.qualified("progress")) WHERE id = $1
                    """, [jobID]
                ).first
            }
            guard let row else {
                progress.error = "no job \(jobID) in the target's queue"
                return progress
            }
            progress.state = try row.string("state")
            progress.rowsDone = row["rows_done"].flatMap { Int64($0) }
            progress.rowsTotal = row["rows_total"].flatMap { Int64($0) }
            progress.percent = row["percent"].flatMap { Double($0) }
            progress.error = row["last_error"].map(FleetEnqueuer.oneLine)
        } catch let error as PostgresError {
            progress.error = FleetEnqueuer.oneLine(error.summary)
        } catch {
            progress.error = FleetEnqueuer.oneLine(String(describing: error))
        }
        return progress
    }

    /// Reads the progress of many targets' jobs, `parallel` targets at a time; in the order given.
    public static func read(
        _ jobs: [(target: FleetTarget, jobID: Int64)], schema: QueueSchema = QueueSchema(), parallel: Int = 8,
        connectTimeout: Duration = .seconds(10)
    ) async -> [FleetBackfillProgress] {
        await jobs.concurrentMap(atMost: parallel) { job in
            await read(target: job.target, jobID: job.jobID, schema: schema, connectTimeout: connectTimeout)
        }
    }
}
