import Foundation
import GodwitPostgres

/// Reads and writes the fleets' part on the control database (`fleet_runs`, `fleet_targets`):
/// a run and its targets recorded before anything runs, each target's state as it changes, the
/// fleet process's heartbeat, and the run's end.
///
/// Every statement names its tables schema-qualified and its functions in `pg_catalog`, so a
/// session with a pinned `search_path` (`SessionOptions.catalogSearchPath`) runs them as any
/// other. Each write is one statement, so that targets running at once may record on one shared
/// control connection without a transaction of one of them spanning another's write.
public struct FleetRecords: Sendable {
    /// The schema of the part, unquoted (`godwit`).
    public let schema: String

    public init(schema: String = "godwit") {
        self.schema = schema
    }

    var quoted: String { quoteIdentifier(schema) }
    var runs: String { "\(quoted).fleet_runs" }
    var targets: String { "\(quoted).fleet_targets" }

    /// Installs or upgrades the fleets' part of the schema, and nothing else. Safe to call from
    /// many processes at once.
    public func install(on connection: Connection) async throws {
        try await SchemaInstaller(schema: schema, parts: [.fleet]).install(on: connection)
    }

    // MARK: A run's life

    /// Records a new run, `running`, with every target `pending` in the order given (the first
    /// `canary` marked canary), in one statement; returns its id. Connections are stored without
    /// their passwords (`FleetTarget.storedConnection`).
    public func insertRun(
        command: String, source: String?, checksums: String?, options: String, targetsOrigin: String,
        targets fleet: [FleetTarget], canary: Int, on connection: Connection
    ) async throws -> Int64 {
        struct Row: Encodable {
            var position: Int
            var name: String
            var connection: String
            var schemaName: String?
            var databaseKey: String
            var canary: Bool

            enum CodingKeys: String, CodingKey {
                case position, name, connection, canary
                case schemaName = "schema_name"
                case databaseKey = "database_key"
            }
        }
        let rows = fleet.enumerated().map { index, target in
            Row(
                position: index, name: target.name, connection: target.storedConnection, schemaName: target.schema,
                databaseKey: target.databaseKey, canary: index < canary)
        }
        let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
        let result = try await connection.query(
            """
            WITH run AS (
                INSERT INTO \(runs) (command, state, source, checksums, options, targets_origin, heartbeat_at)
                VALUES ($1, 'running', $2, $3::pg_catalog.jsonb, $4::pg_catalog.jsonb, $5, pg_catalog.now())
                RETURNING id
            ), inserted AS (
                INSERT INTO \(targets) (run_id, position, name, connection, schema_name, database_key, canary, state)
                SELECT run.id, t.position, t.name, t.connection, t.schema_name, t.database_key, t.canary, 'pending'
                FROM run, pg_catalog.jsonb_to_recordset($6::pg_catalog.jsonb) AS t(
                    position integer, name text, connection text, schema_name text, database_key text,
                    canary boolean)
            )
            SELECT id FROM run
            """, [command, source, checksums, options, targetsOrigin, json])
        guard let id = try result.first?.int64("id") else {
            throw PostgresError(code: .client, message: "recording the fleet run returned no id")
        }
        return id
    }

    /// Takes the run's session advisory lock without waiting: true when this session now holds
    /// it. The fleet process holds it for the run's life, so a run whose lock is free has no
    /// process at work on it.
    public func tryLock(run: Int64, on connection: Connection) async throws -> Bool {
        try await connection.query(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext($1), ($2::pg_catalog.int8 % 2147483648)::pg_catalog.int4) AS locked",
            [lockName, run]
        ).first?.bool("locked") == true
    }

    /// Releases the run's lock taken by `tryLock`.
    public func unlock(run: Int64, on connection: Connection) async {
        await connection.cleanup(
            "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext(\(quoteLiteral(lockName))), (\(run)::pg_catalog.int8 % 2147483648)::pg_catalog.int4)"
        )
    }

    /// Whether a process holds the run's lock (it is at work on it). Takes the lock and lets it
    /// go again when it is free.
    public func isLive(run: Int64, on connection: Connection) async throws -> Bool {
        guard try await tryLock(run: run, on: connection) else { return true }
        await unlock(run: run, on: connection)
        return false
    }

    /// The lock's first key: the schema's, so two control schemas in one database do not share
    /// run locks. The second is the run's id (modulo 2^31).
    var lockName: String { "godwit-fleet-run:\(schema)" }

    /// The fleet process is alive: `heartbeat_at` now.
    public func heartbeat(run: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(runs) SET heartbeat_at = pg_catalog.now() WHERE id = $1", [run])
    }

    /// Marks `name` running: started now, one more attempt, last attempt's error and times cleared.
    public func startTarget(run: Int64, name: String, on connection: Connection) async throws {
        try await connection.query(
            """
            UPDATE \(targets) SET state = 'running', started_at = pg_catalog.clock_timestamp(), finished_at = NULL,
                error = NULL, lock_wait_ms = NULL, attempts = attempts + 1
            WHERE run_id = $1 AND name = $2
            """, [run, name])
    }

    /// Records how `name` ended: its state, the versions this attempt applied (added to those
    /// recorded already: `addApplied`'s, earlier attempts'), its one-line error, and how long it
    /// waited for sqlx's lock.
    public func finishTarget(
        run: Int64, name: String, state: FleetTargetState, applied: [Int64], error: String?, lockWaitMs: Double?,
        on connection: Connection
    ) async throws {
        try await connection.query(
            """
            UPDATE \(targets) SET state = $3, finished_at = pg_catalog.clock_timestamp(),
                applied_versions = \(Self.union("$4")), error = $5, lock_wait_ms = $6
            WHERE run_id = $1 AND name = $2
            """,
            [run, name, state.rawValue, Self.arrayLiteral(applied), error, lockWaitMs])
    }

    /// Adds to each target's applied versions those `versions` names for it (target name to
    /// versions), in one statement, so that the record holds them even when the fleet process
    /// dies before the target ends.
    ///
    /// The commit does not wait for its WAL to reach the disk (`synchronous_commit` off, for
    /// this transaction only): the record follows the targets' ledgers, which are the truth. A
    /// server crash can lose the last of these writes, never a target's state, which
    /// `finishTarget` commits as usual.
    public func addApplied(run: Int64, versions: [String: [Int64]], on connection: Connection) async throws {
        let pending = versions.filter { !$0.value.isEmpty }
        guard !pending.isEmpty else { return }
        let json = String(decoding: try JSONEncoder().encode(pending), as: UTF8.self)
        try await connection.query(
            """
            UPDATE \(targets) t SET applied_versions = \(Self.union("n.versions"))
            FROM (SELECT e.key AS name,
                         pg_catalog.array_agg(v::pg_catalog.int8) AS versions
                  FROM pg_catalog.jsonb_each($2::pg_catalog.jsonb) AS e
                  CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(e.value) AS v
                  GROUP BY e.key) n
            WHERE t.run_id = $1 AND t.name = n.name
                AND (SELECT pg_catalog.set_config('synchronous_commit', 'off', true)) IS NOT NULL
            """,
            [run, json])
    }

    /// `applied_versions` with the versions of the `int8[]` parameter added, each once, in
    /// order: recording a version twice (as it is applied, then as the attempt ends) is harmless.
    static func union(_ parameter: String) -> String {
        """
        (SELECT COALESCE(pg_catalog.array_agg(DISTINCT v ORDER BY v), '{}')
         FROM pg_catalog.unnest(applied_versions || \(parameter)::pg_catalog.int8[]) AS v)
        """
    }

    static func arrayLiteral(_ versions: [Int64]) -> String {
        "{" + versions.map(String.init).joined(separator: ",") + "}"
    }

    /// Marks every target of the run still `pending` as `skipped` (a canary failed, or a target
    /// under `--on-error stop`); returns how many.
    @discardableResult
    public func skipPending(run: Int64, on connection: Connection) async throws -> Int {
        try await connection.query(
            "UPDATE \(targets) SET state = 'skipped' WHERE run_id = $1 AND state = 'pending'", [run]
        ).affectedRows ?? 0
    }

    /// Ends the run: its state, and when.
    public func finishRun(run: Int64, state: FleetRunState, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(runs) SET state = $2, finished_at = pg_catalog.now(), heartbeat_at = pg_catalog.now() WHERE id = $1",
            [run, state.rawValue])
    }

    /// Opens a run again for `fleet resume`: `running` again, and the targets `names` `pending`
    /// (their last error kept until they start).
    public func reopenRun(run: Int64, names: [String], on connection: Connection) async throws {
        try await connection.query(
            """
            WITH reopened AS (
                UPDATE \(runs) SET state = 'running', finished_at = NULL, heartbeat_at = pg_catalog.now()
                WHERE id = $1 RETURNING id
            )
            UPDATE \(targets) SET state = 'pending'
            WHERE run_id = (SELECT id FROM reopened) AND name = ANY ($2::text[])
            """, [run, PostgresArray.literal(names)])
    }

    /// Records the folder's checksums anew (`fleet resume --force-changed-source`).
    public func setChecksums(run: Int64, checksums: String, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(runs) SET checksums = $2::pg_catalog.jsonb WHERE id = $1", [run, checksums])
    }

    // MARK: Reading

    /// The run `id`, or nil when there is none (or the part is not installed).
    public func run(_ id: Int64, on connection: Connection) async throws -> FleetRun? {
        guard try await isInstalled(on: connection) else { return nil }
        return try await runs(where: "id = $1", [id], on: connection).first
    }

    /// The newest run (by start), or nil when there is none.
    public func latestRun(on connection: Connection) async throws -> FleetRun? {
        guard try await isInstalled(on: connection) else { return nil }
        return try await runs(where: "true ORDER BY started_at DESC, id DESC LIMIT 1", [], on: connection).first
    }

    /// Whether `fleet_runs` exists in the schema.
    public func isInstalled(on connection: Connection) async throws -> Bool {
        try await connection.query(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present", ["\(quoted).fleet_runs"]
        ).first?.bool("present") == true
    }

    private func runs(where condition: String, _ parameters: [any PostgresParameter], on connection: Connection)
        async throws -> [FleetRun]
    {
        let result = try await connection.query(
            """
            SELECT \(Self.runColumns("r"))
            FROM \(runs) r WHERE \(condition)
            """, parameters)
        return try result.rows.map(Self.run(from:))
    }

    /// A `fleet_runs` row as `runColumns` selects it.
    static func run(from row: PostgresRow) throws -> FleetRun {
        guard let state = FleetRunState(rawValue: try row.string("state")) else {
            throw PostgresError(code: .client, message: "fleet_runs holds an unknown state")
        }
        return FleetRun(
            id: try row.int64("id"), command: try row.string("command"), state: state,
            startedAt: try row.string("started_at"), finishedAt: row["finished_at"],
            startedBy: try row.string("started_by"), source: row["source"], checksums: row["checksums"],
            options: try row.string("options"), targetsOrigin: try row.string("targets_origin"),
            heartbeatAgeSeconds: row["heartbeat_age"].flatMap(Double.init))
    }

    /// The columns `run(from:)` reads, of `fleet_runs` as `alias`.
    static func runColumns(_ alias: String) -> String {
        """
        \(alias).id, \(alias).command, \(alias).state, \(utc("\(alias).started_at")) AS started_at,
            \(utc("\(alias).finished_at")) AS finished_at, \(alias).started_by, \(alias).source,
            \(alias).checksums::text AS checksums, \(alias).options::text AS options, \(alias).targets_origin,
            pg_catalog.date_part('epoch', pg_catalog.now() - \(alias).heartbeat_at) AS heartbeat_age
        """
    }

    /// The run's targets, in their order.
    public func targets(run: Int64, on connection: Connection) async throws -> [FleetTargetRecord] {
        let result = try await connection.query(
            """
            SELECT run_id, position, name, connection, schema_name, database_key, canary, state,
                pg_catalog.array_to_string(applied_versions, ',') AS applied, error,
                \(Self.utc("started_at")) AS started_at, \(Self.utc("finished_at")) AS finished_at,
                pg_catalog.date_part('epoch', COALESCE(finished_at, pg_catalog.now()) - started_at) AS duration,
                lock_wait_ms, attempts, job_id
            FROM \(targets) WHERE run_id = $1 ORDER BY position
            """, [run])
        return try result.rows.map { row in
            guard let state = FleetTargetState(rawValue: try row.string("state")) else {
                throw PostgresError(code: .client, message: "fleet_targets holds an unknown state")
            }
            let applied = (row["applied"] ?? "").split(separator: ",").compactMap { Int64($0) }
            return FleetTargetRecord(
                runID: try row.int64("run_id"), position: try row.int("position"), name: try row.string("name"),
                connection: try row.string("connection"), schema: row["schema_name"],
                databaseKey: try row.string("database_key"), canary: try row.bool("canary"), state: state,
                appliedVersions: applied, error: row["error"], startedAt: row["started_at"],
                finishedAt: row["finished_at"], durationSeconds: row["duration"].flatMap(Double.init),
                lockWaitMs: row["lock_wait_ms"].flatMap(Double.init), attempts: try row.int("attempts"),
                jobID: row["job_id"].flatMap(Int64.init))
        }
    }

    /// A timestamp column as UTC text, `2026-12-07 07:34:14`.
    static func utc(_ column: String) -> String {
        "pg_catalog.to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    }
}
