import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// One row of `<schema>.progress`, as the dashboard shows it.
struct JobRow: Sendable {
    var id: Int64
    var name: String
    var kind: String
    var state: String
    var percent: Double
    var rowsDone: Int64?
    var rowsTotal: Int64?
    var rowsPerSecond: Double?
    var etaSeconds: Double?
    var attempts: Int
    var maxAttempts: Int
    var holdReason: String?
    var lastError: String?
    var batchSize: Int?
    /// Sessions its batches made wait on their locks, and the longest wait (the governor's measure).
    var lockWaits: Int64
    var lockWaitMSMax: Double
    var control: String?
    var workerID: String?
    var createdAt: String
    var startedAt: String?
    var finishedAt: String?

    init(_ row: PostgresRow) throws {
        id = try row.int64("id")
        name = try row.string("name")
        kind = try row.string("kind")
        state = try row.string("state")
        percent = (try? row.double("percent")) ?? 0
        rowsDone = try? row.int64("rows_done")
        rowsTotal = try? row.int64("rows_total")
        rowsPerSecond = try? row.double("rows_per_second")
        etaSeconds = try? row.double("eta")
        attempts = try row.int("attempts")
        maxAttempts = try row.int("max_attempts")
        holdReason = row["hold_reason"]
        lastError = row["last_error"]
        batchSize = try? row.int("batch_size")
        lockWaits = (try? row.int64("lock_waits")) ?? 0
        lockWaitMSMax = (try? row.double("lock_wait_ms_max")) ?? 0
        control = row["control"]
        workerID = row["worker_id"]
        createdAt = try row.string("created_at")
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
    }
}

/// One committed or failed batch of a batched job.
struct BatchRow: Sendable {
    var seq: Int64
    var rows: Int
    var batchSize: Int
    var durationMS: Double
    var error: String?
    /// Sessions that waited on the batch's locks as it committed, and the longest wait.
    var lockWaiters: Int = 0
    var lockWaitMS: Double = 0
}

struct BackupRow: Sendable {
    /// Nil for a dashboard role that may not see where backups are (`grant_read` only).
    var file: String?
    var sizeBytes: Int64
    var databaseName: String
    var ageSeconds: Double
    var verifiedAt: String
    var sha256: String
    /// Why it was taken ("before migration V (description)", "by hand"...); nil before schema step 4.
    var reason: String?
}

struct MigrationRow: Sendable {
    var version: Int64
    var description: String
    var state: String
    var installedOn: String?
    var executionMS: Double?
}

/// What the dashboard shows from the job list: filters from the query string, checked.
struct JobFilter: Sendable, Equatable {
    var state: String?
    var kind: String?
    var search: String?

    static let states = ["queued", "running", "paused", "succeeded", "failed", "cancelled"]

    /// Nil when a parameter is malformed (an unknown state, an overlong search): a 400.
    init?(state: String?, kind: String?, search: String?) {
        let state = state.flatMap { $0.isEmpty ? nil : $0 }
        let kind = kind.flatMap { $0.isEmpty ? nil : $0 }
        let search = search.flatMap { $0.isEmpty ? nil : $0 }
        if let state, !Self.states.contains(state) { return nil }
        if (kind?.count ?? 0) > 100 || (search?.count ?? 0) > 200 { return nil }
        self.state = state
        self.kind = kind
        self.search = search
    }
}

/// The dashboard's reads and controls, on a small pool of its own so that it never takes a
/// connection the worker needs. Values are always parameters; names come quoted from
/// `QueueSchema`.
struct OperationsStore: Sendable {
    /// Sessions with `search_path` pinned to `pg_catalog, pg_temp`, for the queue.
    let pool: ConnectionPool
    let schema: QueueSchema
    let migrationsDirectory: String?
    /// sqlx.toml's settings: which table is the ledger, and how files are checksummed.
    let migrationConfig: MigrationConfig
    /// For the migrations ledger, which resolves through the login's own search_path as sqlx's
    /// does: a session of its own for each read, since the pool's are pinned.
    let databaseURL: String

    private var progress: String { schema.qualified("progress") }
    private var jobs: String { schema.qualified("jobs") }

    private var jobSelect: String {
        """
        SELECT p.id, p.name, p.kind, p.state::text AS state, p.percent::float8 AS percent, p.rows_done, p.rows_total,
            p.rows_per_second::float8 AS rows_per_second, extract(epoch FROM p.eta)::float8 AS eta, p.attempts,
            j.max_attempts, p.hold_reason, p.last_error, p.batch_size, j.control, p.worker_id, p.lock_waits,
            p.lock_wait_ms_max::float8 AS lock_wait_ms_max,
            to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at,
            to_char(p.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS started_at,
            to_char(p.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS finished_at
        FROM \(progress) p JOIN \(jobs) j ON j.id = p.id
        """
    }

    /// The newest `limit` jobs matching `filter`, running ones first. Each half is read newest
    /// first by index (running jobs by their partial index, the rest backwards by id), so the
    /// page and its refresh every two seconds cost the same on a table of millions of jobs.
    func jobs(_ filter: JobFilter, limit: Int = 200) async throws -> [JobRow] {
        // An ILIKE pattern with the user's %, _ and \ taken literally.
        let pattern = filter.search.map {
            "%" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_") + "%"
        }
        let matching = """
            ($1::text IS NULL OR p.state::text = $1) AND ($2::text IS NULL OR p.kind = $2)
                AND ($3::text IS NULL OR p.name ILIKE $3)
            """
        return try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT * FROM (
                    (\(jobSelect) WHERE p.state = 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
                    UNION ALL
                    (\(jobSelect) WHERE p.state <> 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
                ) newest ORDER BY (state = 'running') DESC, id DESC LIMIT $4
                """, [filter.state, filter.kind, pattern, limit]
            ).rows.map(JobRow.init)
        }
    }

    /// The kinds to filter by: those this server knows, and any other among the newest
    /// thousand jobs (a bounded read, where `DISTINCT` over the table would scan all of it).
    func kinds(known: [String]) async throws -> [String] {
        let recent = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT DISTINCT kind FROM (SELECT kind FROM \(jobs) ORDER BY id DESC LIMIT 1000) newest"
            ).rows.compactMap { $0["kind"] }
        }
        return Array(Set(known).union(recent)).sorted().prefix(50).map { $0 }
    }

    func job(_ id: Int64) async throws -> JobRow? {
        try await pool.withConnection { connection in
            try await connection.query("\(jobSelect) WHERE p.id = $1", [id]).rows.first.map(JobRow.init)
        }
    }

    /// The shards of a split job (`batched_parallel`) in key order; none for any other job.
    func shards(of job: JobRow) async throws -> [JobRow] {
        guard job.kind == "batched_parallel" else { return [] }
        return try await pool.withConnection { connection in
            try await connection.query("\(jobSelect) WHERE p.parent_id = $1 ORDER BY p.id", [job.id]).rows.map(JobRow.init)
        }
    }

    /// The newest `limit` batches of a job, oldest first.
    func batches(of id: Int64, limit: Int = 300) async throws -> [BatchRow] {
        try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT * FROM (
                    SELECT seq, rows, batch_size, duration_ms, error, lock_waiters, lock_wait_ms::float8 AS lock_wait_ms
                    FROM \(schema.qualified("batches"))
                    WHERE job_id = $1 ORDER BY id DESC LIMIT $2
                ) b ORDER BY seq
                """, [id, limit]
            ).rows.map {
                BatchRow(
                    seq: try $0.int64("seq"), rows: try $0.int("rows"), batchSize: try $0.int("batch_size"),
                    durationMS: try $0.double("duration_ms"), error: $0["error"],
                    lockWaiters: try $0.int("lock_waiters"), lockWaitMS: try $0.double("lock_wait_ms"))
            }
        }
    }

    func backups(limit: Int = 100) async throws -> [BackupRow] {
        try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT f.file, b.size_bytes, b.database_name, extract(epoch FROM now() - b.created_at)::float8 AS age,
                    b.sha256, to_char(b.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS verified_at, b.reason
                FROM \(schema.qualified("backups")) b
                LEFT JOIN \(schema.qualified("backup_files")) f ON f.id = b.id
                ORDER BY b.id DESC LIMIT $1
                """, [limit]
            ).rows.map {
                BackupRow(
                    file: $0["file"], sizeBytes: try $0.int64("size_bytes"),
                    databaseName: try $0.string("database_name"), ageSeconds: try $0.double("age"),
                    verifiedAt: try $0.string("verified_at"), sha256: try $0.string("sha256"), reason: $0["reason"])
            }
        }
    }

    /// Applied migrations from the ledger (sqlx.toml's `table-name`, `_sqlx_migrations` by
    /// default), and pending ones when a folder was given;
    /// with `linting`, also `migrate lint`'s catalog check of the pending ones (the rules on
    /// their text, told by the target's catalog which tables exist, a changed column's type and
    /// the sizes; catalog reads only, nothing of the migrations runs), or why the linter could
    /// not read them. One folder load and one ledger read on one connection.
    func migrations(linting: Bool = false) async throws
        -> (rows: [MigrationRow], lint: Result<LintReport, MigrationError>?)
    {
        var options = SessionOptions()
        options.applicationName = "godwit http (migrations)"
        options.connectTimeout = .seconds(5)
        return try await Connection.withConnection(databaseURL, options: options) { connection in
            if let directory = migrationsDirectory {
                let migrator = try Migrator(directory: directory, config: migrationConfig)
                let statuses = try await migrator.status(on: connection)
                let rows = statuses.map {
                    MigrationRow(
                        version: $0.version, description: $0.description, state: $0.state.rawValue,
                        installedOn: $0.installedOn, executionMS: $0.executionTime.map { Double($0) / 1e6 })
                }
                guard linting else { return (rows, nil) }
                let pending = Set(statuses.filter { $0.state == .pending }.map(\.version))
                do {
                    let report = try await MigrationLinter(source: migrator.source).lint(
                        migrator.source.upMigrations.filter { pending.contains($0.version) }, on: connection)
                    return (rows, .success(report))
                } catch let error as MigrationError where error.underlying == nil {
                    return (rows, .failure(error))
                }
            }
            // table-name is a checked SQL name (plain or quoted identifiers), as sqlx reads it.
            let ledger = migrationConfig.tableName
            let present = try await connection.query(
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present", [ledger]
            ).first?.bool("present") ?? false
            guard present else { return ([], nil) }
            let rows = try await connection.query(
                """
                SELECT version, description, success, execution_time,
                    to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS installed_on
                FROM \(ledger) ORDER BY version
                """
            ).rows.map {
                MigrationRow(
                    version: try $0.int64("version"), description: try $0.string("description"),
                    state: (try $0.bool("success")) ? "installed" : "failed", installedOn: $0["installed_on"],
                    executionMS: (try? $0.double("execution_time")).map { $0 / 1e6 })
            }
            return (rows, nil)
        }
    }

    /// The role this server connects as, for telling a person what to grant it.
    func currentRole() async throws -> String {
        try await pool.withConnection { connection in
            try await connection.query("SELECT current_user::text AS role").first?.string("role") ?? "?"
        }
    }

    /// Whether `error` is PostgreSQL refusing this server's role (SQLSTATE 42501), as for a
    /// dashboard role with `grant_read` only: no right to the migrations ledger or the controls.
    static func permissionDenied(_ error: any Error) -> Bool {
        if let error = error as? PostgresError { return error.sqlState == "42501" }
        if let error = error as? MigrationError { return error.underlying?.sqlState == "42501" }
        return false
    }

    func control(_ action: JobQueue.Control, job id: Int64) async throws -> Bool {
        try await pool.withConnection { connection in
            try await JobQueue(schema: schema).control(action, job: id, on: connection)
        }
    }
}
