import Foundation
import GodwitMigrations
import GodwitPostgres

/// A `fleet enqueue` run as the control database records it, in the fleet part's tables
/// (`<schema>.fleet_runs` with command `enqueue`, `<schema>.fleet_targets` with each target's
/// `job_id`).
///
/// All of fleet enqueue's writes to the control database are here, in one small type, so that
/// they can move onto the fleet records' shared type when it comes. Statements are qualified
/// (the caller's session pins search_path too); values are parameters; no password is stored.
public struct FleetEnqueueRecord: Sendable {
    public let schema: String
    public let runID: Int64

    private var runs: String { "\(quoteIdentifier(schema)).fleet_runs" }
    private var targets: String { "\(quoteIdentifier(schema)).fleet_targets" }

    /// Records a new run, `running`, with every target `pending`. `jobText` is the job file's
    /// text, whose SHA-384 goes in `checksums`.
    public static func start(
        on connection: Connection, schema: String, file: String, jobText: String, options: [String: Int],
        targets: FleetTargets
    ) async throws -> FleetEnqueueRecord {
        let quoted = quoteIdentifier(schema)
        let present = try await connection.query(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present", ["\(quoted).fleet_targets"]
        ).first?.bool("present")
        guard present == true else {
            throw FleetError(
                .notFound,
                "the control database has no fleet tables in schema \(quoted) (the fleet part is not installed)")
        }
        let sha = Hex.encode(Migration.checksum(of: Array(jobText.utf8)))
        let optionsJSON =
            "{" + options.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        return try await connection.withTransaction { conn in
            let runID = try await conn.query(
                """
                INSERT INTO \(quoted).fleet_runs (command, state, source, checksums, options, targets_origin, heartbeat_at)
                VALUES ('enqueue', 'running', $1, pg_catalog.jsonb_build_object('sha384', $2::text), $3::jsonb, $4, pg_catalog.now())
                RETURNING id
                """, [file, sha, optionsJSON, targets.origin]
            ).first!.int64("id")
            for (position, target) in targets.targets.enumerated() {
                try await conn.query(
                    """
                    INSERT INTO \(quoted).fleet_targets (run_id, position, name, connection, schema_name, database_key, state)
                    VALUES ($1, $2, $3, $4, $5, $6, 'pending')
                    """,
                    [
                        runID, position, target.name, Self.withoutPassword(target.connection), target.schema,
                        target.databaseKey,
                    ])
            }
            return FleetEnqueueRecord(schema: schema, runID: runID)
        }
    }

    /// The target's enqueue has started.
    public func started(_ target: String, on connection: Connection) async throws {
        try await connection.query(
            """
            UPDATE \(targets) SET state = 'running', started_at = pg_catalog.now(), attempts = attempts + 1
            WHERE run_id = $1 AND name = $2
            """, [runID, target])
        try await connection.query("UPDATE \(runs) SET heartbeat_at = pg_catalog.now() WHERE id = $1", [runID])
    }

    /// The target's enqueue has ended: its job, or its one-line error.
    public func finished(_ target: String, jobID: Int64?, error: String?, on connection: Connection) async throws {
        try await connection.query(
            """
            UPDATE \(targets) SET state = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'succeeded' END,
                job_id = $3, error = $4, finished_at = pg_catalog.now()
            WHERE run_id = $1 AND name = $2
            """, [runID, target, jobID, error])
    }

    /// The run has ended: succeeded when every target did.
    public func finish(succeeded: Bool, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(runs) SET state = $2, finished_at = pg_catalog.now(), heartbeat_at = pg_catalog.now() WHERE id = $1",
            [runID, succeeded ? "succeeded" : "failed"])
    }

    /// The connection string as stored: every setting but the password, as a `key=value`
    /// string (the password comes from .pgpass or the environment when it is used again).
    static func withoutPassword(_ conninfo: String) -> String {
        guard let options = try? ConnectionString.options(conninfo), options["password"] != nil else {
            return conninfo
        }
        return options.filter { $0.key != "password" && !$0.value.isEmpty }.sorted { $0.key < $1.key }.map {
            let value = $0.value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            return "\($0.key)='\(value)'"
        }.joined(separator: " ")
    }
}
