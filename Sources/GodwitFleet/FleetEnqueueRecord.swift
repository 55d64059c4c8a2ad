import Foundation
import GodwitMigrations
import GodwitPostgres

/// A `fleet enqueue` run as the control database records it, through `FleetRecords`: a run of
/// command `enqueue` (its source the job file, its checksums the file's SHA-384), each target
/// `running` while its enqueue runs, then `succeeded` with its job's id (`fleet_targets.job_id`)
/// or `failed` with its one-line error. The run's advisory lock is held for the run's life, as
/// for every fleet run, so `fleet status` tells a live run from an interrupted one.
public struct FleetEnqueueRecord: Sendable {
    public let records: FleetRecords
    public let runID: Int64

    /// Installs the fleets' part when missing, and records a new run with every target
    /// `pending`. `jobText` is the job file's text.
    public static func start(
        on connection: Connection, schema: String, file: String, jobText: String, options: [String: Int],
        targets: FleetTargets
    ) async throws -> FleetEnqueueRecord {
        let records = FleetRecords(schema: schema)
        try await records.install(on: connection)
        let sha = Hex.encode(Migration.checksum(of: Array(jobText.utf8)))
        let optionsJSON =
            "{" + options.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        let runID = try await records.insertRun(
            command: "enqueue", source: file, checksums: #"{"sha384": "\#(sha)"}"#, options: optionsJSON,
            targetsOrigin: targets.origin, targets: targets.targets, canary: 0, on: connection)
        // Held until `finish` (or the session's end): the run is live while this process is.
        _ = try await records.tryLock(run: runID, on: connection)
        return FleetEnqueueRecord(records: records, runID: runID)
    }

    /// The target's enqueue has started; the fleet process is alive.
    public func started(_ target: String, on connection: Connection) async throws {
        try await records.startTarget(run: runID, name: target, on: connection)
        try await records.heartbeat(run: runID, on: connection)
    }

    /// The target's enqueue has ended: its job, or its one-line error.
    public func finished(_ target: String, jobID: Int64?, error: String?, on connection: Connection) async throws {
        try await records.finishTarget(
            run: runID, name: target, state: jobID == nil ? .failed : .succeeded, applied: [], error: error,
            lockWaitMs: nil, on: connection)
        if let jobID { try await records.setJob(run: runID, name: target, jobID: jobID, on: connection) }
    }

    /// The run has ended: succeeded when every target did. Its lock is let go.
    public func finish(succeeded: Bool, on connection: Connection) async throws {
        try await records.finishRun(run: runID, state: succeeded ? .succeeded : .failed, on: connection)
        await records.unlock(run: runID, on: connection)
    }
}
