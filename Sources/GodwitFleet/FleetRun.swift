/// One row of `fleet_runs`: a fleet command's run, as the control database records it.
public struct FleetRun: Sendable, Equatable {
    public var id: Int64
    /// `migrate` or `enqueue`.
    public var command: String
    public var state: FleetRunState
    /// UTC, `2026-12-07 07:34:14`.
    public var startedAt: String
    public var finishedAt: String?
    public var startedBy: String
    /// The migrations folder (or job file) as given.
    public var source: String?
    /// `fleet_runs.checksums` as JSON text.
    public var checksums: String?
    /// `fleet_runs.options` as JSON text (`FleetMigrateOptions` for a migrate run).
    public var options: String
    public var targetsOrigin: String
    /// Seconds since the fleet process's last heartbeat; nil before the first.
    public var heartbeatAgeSeconds: Double?
    /// Set by the reader that checked the run's advisory lock: the run is `running` but no
    /// process holds its lock, so its process died (`fleet resume` finishes it).
    public var isInterrupted: Bool = false

    public init(
        id: Int64, command: String, state: FleetRunState, startedAt: String, finishedAt: String?, startedBy: String,
        source: String?, checksums: String?, options: String, targetsOrigin: String, heartbeatAgeSeconds: Double?
    ) {
        self.id = id
        self.command = command
        self.state = state
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.startedBy = startedBy
        self.source = source
        self.checksums = checksums
        self.options = options
        self.targetsOrigin = targetsOrigin
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
    }

    /// The state a person reads: `interrupted` for a running run whose process is gone.
    public var shownState: String { isInterrupted ? "interrupted" : state.rawValue }
}

/// One row of `fleet_targets`: a target of a run and how it went.
public struct FleetTargetRecord: Sendable, Equatable {
    public var runID: Int64
    public var position: Int
    public var name: String
    /// Without its password (`FleetTarget.storedConnection`).
    public var connection: String
    public var schema: String?
    public var databaseKey: String
    public var canary: Bool
    public var state: FleetTargetState
    public var appliedVersions: [Int64]
    public var error: String?
    public var startedAt: String?
    public var finishedAt: String?
    /// Seconds from start to finish (to now while it runs); nil before it starts.
    public var durationSeconds: Double?
    public var lockWaitMs: Double?
    public var attempts: Int
    public var jobID: Int64?

    public init(
        runID: Int64, position: Int, name: String, connection: String, schema: String?, databaseKey: String,
        canary: Bool, state: FleetTargetState, appliedVersions: [Int64] = [], error: String? = nil,
        startedAt: String? = nil, finishedAt: String? = nil, durationSeconds: Double? = nil, lockWaitMs: Double? = nil,
        attempts: Int = 0, jobID: Int64? = nil
    ) {
        self.runID = runID
        self.position = position
        self.name = name
        self.connection = connection
        self.schema = schema
        self.databaseKey = databaseKey
        self.canary = canary
        self.state = state
        self.appliedVersions = appliedVersions
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.durationSeconds = durationSeconds
        self.lockWaitMs = lockWaitMs
        self.attempts = attempts
        self.jobID = jobID
    }

    /// The target as a fleet command runs it again: its stored connection (no password) and
    /// schema, its line its position.
    public var target: FleetTarget {
        FleetTarget(name: name, connection: connection, schema: schema, line: position + 1)
    }
}
