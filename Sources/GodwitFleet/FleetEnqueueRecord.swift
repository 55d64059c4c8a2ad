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

    public init(records: FleetRecords, runID: Int64) {
        self.records = records
        self.runID = runID
    }

    /// What a `fleet enqueue` run was asked, recorded as the run's options so that `fleet
    /// resume` enqueues what the run did.
    public struct Options: Sendable, Equatable, Codable {
        /// Targets enqueued at once.
        public var parallel: Int
        /// The jobs' name when `--name` gave one (nil: the file's).
        public var name: String?

        public init(parallel: Int, name: String? = nil) {
            self.parallel = parallel
            self.name = name
        }

        public static func from(jsonText: String) throws -> Options {
            try JSONDecoder().decode(Options.self, from: Data(jsonText.utf8))
        }
    }

    /// The SHA-384 of a job file's text, as a run records it in `fleet_runs.checksums`.
    public static func checksums(of jobText: String) -> String {
        #"{"sha384": "\#(Hex.encode(Migration.checksum(of: Array(jobText.utf8))))"}"#
    }

    /// Installs the fleets' part when missing, and records a new run with every target
    /// `pending`. `jobText` is the job file's text.
    public static func start(
        on connection: Connection, schema: String, file: String, jobText: String, options: Options,
        targets: FleetTargets
    ) async throws -> FleetEnqueueRecord {
        let records = FleetRecords(schema: schema)
        try await records.install(on: connection)
        let optionsJSON = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        let runID = try await records.insertRun(
            command: "enqueue", source: file, checksums: checksums(of: jobText), options: optionsJSON,
            targetsOrigin: targets.origin, targets: targets.targets, canary: 0, on: connection)
        // Held until the caller lets it go (or the session ends): the run is live while this
        // process is.
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
}
