import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// One row of `<schema>.progress`, as the dashboard shows it.
struct JobRow: Sendable {
    var id: Int64
    var name: String
    var kind: JobKind
    var state: JobState
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
    /// Why the governor chose `batchSize`, in the worker's words (`job_progress.size_reason`);
    /// nil before the first batch. A parallel job's: its running shards' reasons, distinct.
    var sizeReason: String?
    /// Sessions its batches made wait on their locks, and the longest wait (the governor's measure).
    var lockWaits: Int64
    var lockWaitMSMax: Double
    var control: JobControl?
    var workerID: String?
    var createdAt: String
    var startedAt: String?
    var finishedAt: String?
    /// Seconds from each timestamp to the database's `now()`, so that "3 min ago" does not
    /// depend on this host's clock.
    var createdAgo: Double
    var startedAgo: Double?
    var finishedAgo: Double?
    /// How long the job ran: to its finish, or until now while it runs.
    var ranSeconds: Double?
    /// A running job whose worker has not been seen for `stale_after()` (progress.stale).
    var stale: Bool
    /// Seconds since the job's worker was last seen (running jobs only).
    var workerSeenAgo: Double?
    /// The batched job's checkpoint (the last key done), which readers may see.
    var cursor: String?
    var parentID: Int64?

    init(_ row: PostgresRow) throws {
        id = try row.int64("id")
        name = try row.string("name")
        kind = JobKind(try row.string("kind"))
        state = try JobState(text: try row.string("state"), job: id)
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
        sizeReason = row["size_reason"]
        lockWaits = (try? row.int64("lock_waits")) ?? 0
        lockWaitMSMax = (try? row.double("lock_wait_ms_max")) ?? 0
        control = try JobControl(column: row["control"], job: id)
        workerID = row["worker_id"]
        createdAt = try row.string("created_at")
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        createdAgo = (try? row.double("created_ago")) ?? 0
        startedAgo = try? row.double("started_ago")
        finishedAgo = try? row.double("finished_ago")
        ranSeconds = try? row.double("ran_seconds")
        stale = (try? row.bool("stale")) ?? false
        workerSeenAgo = try? row.double("worker_seen_ago")
        cursor = row["cursor"]
        parentID = try? row.int64("parent_id")
    }
}

/// How many jobs are in each state, and how many running ones are stale.
struct JobCounts: Sendable, Equatable {
    var byState: [String: Int64]
    var stale: Int64
}

/// One page of the jobs list and where the next ones start: keyset pagination by id.
struct JobPage: Sendable {
    var jobs: [JobRow]
    /// `before` for the link to older jobs; nil when there are none.
    var olderThan: Int64?
    /// `after` for the link to newer jobs; nil on the newest page.
    var newerThan: Int64?
    /// Whether this is not the first page (a "newest" link leads back to it).
    var paged: Bool
}

/// What a job does, from its payload, which only `job_details` shows, and only to its
/// enqueuer, a controller or the owner.
struct JobPayload: Sendable {
    /// Nil when the session may not see the payload.
    var fields: [(key: String, value: String)]?
}

/// One failed attempt of a job, from `job_errors`.
struct JobErrorRow: Sendable {
    var attempt: Int
    var workerID: String?
    var error: String
    /// Only for a session that may see the job's details; nil otherwise.
    var detail: String?
    var at: String
    var ago: Double
}

/// One worker from `workers`: its heartbeat and whether it is running, stopped or stale.
struct WorkerRow: Sendable {
    var id: String
    var host: String?
    var pid: Int?
    var version: String?
    var concurrency: Int?
    var startedAt: String
    var startedAgo: Double
    var seenAt: String
    var seenAgo: Double
    var stoppedAgo: Double?
    /// `running`, `stopped` or `stale`.
    var status: String
    var runningJobs: Int64
}

/// One committed or failed batch of a batched job.
struct BatchRow: Sendable {
    var seq: Int64
    var rows: Int
    var batchSize: Int
    var durationMS: Double
    var error: String?
    /// Rows the batch's statement changed (0 for a failed attempt, whose changes rolled back).
    var rowsChanged: Int64 = 0
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
    var state: JobState?
    var kind: String?
    var search: String?
    /// Keyset pagination: jobs with an id below `before`, or above `after` (at most one).
    var before: Int64?
    var after: Int64?

    /// Nil when a parameter is malformed (an unknown state, an overlong search): a 400.
    init?(state: String?, kind: String?, search: String?) {
        let state = state.flatMap { $0.isEmpty ? nil : $0 }
        let kind = kind.flatMap { $0.isEmpty ? nil : $0 }
        let search = search.flatMap { $0.isEmpty ? nil : $0 }
        let known = state.map(JobState.init(rawValue:))
        if known == .some(nil) { return nil }
        if (kind?.count ?? 0) > 100 || (search?.count ?? 0) > 200 { return nil }
        self.state = known ?? nil
        self.kind = kind
        self.search = search
    }

    /// With the page's position; nil when `before` or `after` is not a positive id, or both come.
    init?(state: String?, kind: String?, search: String?, before: String?, after: String?) {
        self.init(state: state, kind: kind, search: search)
        func id(_ text: String?) -> Int64?? {
            guard let text, !text.isEmpty else { return .some(nil) }
            guard let value = Int64(text), value > 0 else { return nil }
            return .some(value)
        }
        guard let before = id(before), let after = id(after), before == nil || after == nil else { return nil }
        self.before = before
        self.after = after
    }

    /// The same filter on another page.
    func at(before: Int64? = nil, after: Int64? = nil) -> JobFilter {
        var filter = self
        filter.before = before
        filter.after = after
        return filter
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

    private var jobSelect: String {
        """
        SELECT p.id, p.name, p.kind, p.state::text AS state, p.percent::float8 AS percent, p.rows_done, p.rows_total,
            p.rows_per_second::float8 AS rows_per_second, extract(epoch FROM p.eta)::float8 AS eta, p.attempts,
            j.max_attempts, p.hold_reason, p.last_error, p.batch_size, p.size_reason, j.control, p.worker_id, p.lock_waits,
            p.lock_wait_ms_max::float8 AS lock_wait_ms_max,
            to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at,
            to_char(p.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS started_at,
            to_char(p.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS finished_at,
            extract(epoch FROM now() - p.created_at)::float8 AS created_ago,
            extract(epoch FROM now() - p.started_at)::float8 AS started_ago,
            extract(epoch FROM now() - p.finished_at)::float8 AS finished_ago,
            extract(epoch FROM coalesce(p.finished_at, CASE WHEN p.state = 'running' THEN now() END) - p.started_at)::float8
                AS ran_seconds,
            p.stale, extract(epoch FROM now() - p.worker_seen_at)::float8 AS worker_seen_ago, p.cursor, p.parent_id
        FROM \(schema.progress) p JOIN \(schema.jobs) j ON j.id = p.id
        """
    }

    /// One page of at most `limit` jobs matching `filter`. The first page shows running jobs first,
    /// then the newest; `filter.before` and `filter.after` page through all of them by id
    /// (keyset pagination). Each read goes by index newest first (running jobs by their partial
    /// index, the rest backwards by id), so the page and its refresh every two seconds cost the
    /// same on a table of millions of jobs.
    func jobs(_ filter: JobFilter, limit: Int = 200) async throws -> JobPage {
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
            if let before = filter.before {
                let rows = try await connection.query(
                    "\(jobSelect) WHERE p.id < $5 AND \(matching) ORDER BY p.id DESC LIMIT $4",
                    [filter.state?.rawValue, filter.kind, pattern, limit + 1, before]
                ).rows.map(JobRow.init)
                let shown = Array(rows.prefix(limit))
                return JobPage(
                    jobs: shown, olderThan: rows.count > limit ? shown.last?.id : nil,
                    newerThan: shown.first?.id ?? before, paged: true)
            }
            if let after = filter.after {
                let rows = try await connection.query(
                    "\(jobSelect) WHERE p.id > $5 AND \(matching) ORDER BY p.id LIMIT $4",
                    [filter.state?.rawValue, filter.kind, pattern, limit + 1, after]
                ).rows.map(JobRow.init)
                let shown = Array(rows.prefix(limit).reversed())
                return JobPage(
                    jobs: shown, olderThan: shown.last?.id ?? after + 1,
                    newerThan: rows.count > limit ? shown.first?.id : nil, paged: true)
            }
            let rows = try await connection.query(
                """
                SELECT * FROM (
                    (\(jobSelect) WHERE p.state = 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
                    UNION ALL
                    (\(jobSelect) WHERE p.state <> 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
                ) newest ORDER BY (state = 'running') DESC, id DESC LIMIT $4
                """, [filter.state?.rawValue, filter.kind, pattern, limit]
            ).rows.map(JobRow.init)
            // Older pages go on from the oldest job listed in id order (running jobs are pinned
            // above them here, and show again in their place on older pages).
            let listed = rows.filter { $0.state != .running }
            guard let last = (listed.isEmpty ? rows : listed).last?.id else {
                return JobPage(jobs: rows, olderThan: nil, newerThan: nil, paged: false)
            }
            let older = try await connection.query(
                "SELECT EXISTS (SELECT 1 FROM \(schema.progress) p WHERE p.id < $4 AND \(matching)) AS older",
                [filter.state?.rawValue, filter.kind, pattern, last]
            ).first?.bool("older") ?? false
            return JobPage(jobs: rows, olderThan: older ? last : nil, newerThan: nil, paged: false)
        }
    }

    /// Jobs by state, and the running ones that are stale, over the whole queue.
    func counts() async throws -> JobCounts {
        try await pool.withConnection { connection in
            var byState: [String: Int64] = [:]
            for row in try await connection.query("SELECT state::text AS state, count(*) AS n FROM \(schema.jobs) GROUP BY state").rows {
                byState[try row.string("state")] = try row.int64("n")
            }
            let stale = try await connection.query(
                "SELECT count(*) AS n FROM \(schema.progress) p WHERE p.state = 'running' AND p.stale"
            ).first?.int64("n") ?? 0
            return JobCounts(byState: byState, stale: stale)
        }
    }

    /// The job's payload as its fields, when this session may see it (`job_details` shows the
    /// row only to the job's enqueuer, a controller or the owner).
    func payload(of id: Int64) async throws -> JobPayload {
        try await pool.withConnection { connection in
            let row: PostgresRow?
            do {
                row = try await connection.query(
                    "SELECT d.payload::text AS payload FROM \(schema.jobDetails) d WHERE d.id = $1", [id]
                ).first
            } catch where Self.permissionDenied(error) {
                return JobPayload(fields: nil)
            }
            guard let row, let text: String = row["payload"] else { return JobPayload(fields: nil) }
            return JobPayload(fields: Self.payloadFields(text))
        }
    }

    /// A payload's top-level fields in a stable order: what the job does first (table, key,
    /// statement), then the rest by name; values as JSON text, strings unquoted.
    static func payloadFields(_ json: String) -> [(key: String, value: String)] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]),
            let dictionary = object as? [String: Any]
        else { return [("payload", json)] }
        let first = ["table", "key", "statement", "sql", "lower", "upper", "shard", "shards", "search_path"]
        let keys = first.filter { dictionary[$0] != nil } + dictionary.keys.filter { !first.contains($0) }.sorted()
        return keys.map { key in
            let value = dictionary[key]!
            if let string = value as? String { return (key, string) }
            if value is NSNull { return (key, "null") }
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
            return (key, data.flatMap { String(data: $0, encoding: .utf8) } ?? "\(value)")
        }
    }

    /// The job's failed attempts, newest first. `error_detail` (the server's DETAIL, which may
    /// quote rows) only when this session may see the job's details and read that column.
    func errors(of id: Int64, detail: Bool, limit: Int = 50) async throws -> [JobErrorRow] {
        try await pool.withConnection { connection in
            let table = schema.jobErrors
            let readable =
                detail
                ? try await connection.query(
                    "SELECT pg_catalog.has_column_privilege($1::text, 'error_detail', 'SELECT') AS ok", [table]
                ).first?.bool("ok") ?? false : false
            return try await connection.query(
                """
                SELECT e.attempt, e.worker_id, e.error, \(readable ? "e.error_detail" : "NULL::text") AS error_detail,
                    to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS at,
                    extract(epoch FROM now() - e.at)::float8 AS ago
                FROM \(table) e WHERE e.job_id = $1 ORDER BY e.id DESC LIMIT $2
                """, [id, limit]
            ).rows.map {
                JobErrorRow(
                    attempt: try $0.int("attempt"), workerID: $0["worker_id"], error: try $0.string("error"),
                    detail: $0["error_detail"], at: try $0.string("at"), ago: try $0.double("ago"))
            }
        }
    }

    /// The workers, live ones first, then by their last heartbeat.
    func workers(limit: Int = 100) async throws -> [WorkerRow] {
        try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT w.id, w.host, w.pid, w.version, w.concurrency,
                    to_char(w.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS started_at,
                    extract(epoch FROM now() - w.started_at)::float8 AS started_ago,
                    to_char(w.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS seen_at,
                    extract(epoch FROM now() - w.heartbeat_at)::float8 AS seen_ago,
                    extract(epoch FROM now() - w.stopped_at)::float8 AS stopped_ago,
                    CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                        WHEN w.heartbeat_at < now() - \(schema.staleAfter)() THEN 'stale'
                        ELSE 'running' END AS status,
                    (SELECT count(*) FROM \(schema.jobs) j WHERE j.worker_id = w.id AND j.state = 'running') AS running_jobs
                FROM \(schema.workers) w
                ORDER BY w.stopped_at IS NULL DESC, w.heartbeat_at DESC LIMIT $1
                """, [limit]
            ).rows.map {
                WorkerRow(
                    id: try $0.string("id"), host: $0["host"], pid: try? $0.int("pid"), version: $0["version"],
                    concurrency: try? $0.int("concurrency"), startedAt: try $0.string("started_at"),
                    startedAgo: try $0.double("started_ago"), seenAt: try $0.string("seen_at"),
                    seenAgo: try $0.double("seen_ago"), stoppedAgo: try? $0.double("stopped_ago"),
                    status: try $0.string("status"), runningJobs: try $0.int64("running_jobs"))
            }
        }
    }

    /// Retries the failed jobs (at most `limit`, newest first; a split job's shards through their
    /// parent) that this session may retry, each on its own: the database refuses a job another
    /// role enqueued unless the session may act as that role.
    /// - Returns: how many were retried and how many the database refused.
    func retryFailed(limit: Int = 1000) async throws -> (retried: Int, refused: Int) {
        try await pool.withConnection { connection in
            let ids = try await connection.query(
                "SELECT id FROM \(schema.jobs) WHERE state = 'failed' AND parent_id IS NULL ORDER BY id DESC LIMIT $1", [limit]
            ).rows.map { try $0.int64("id") }
            let queue = JobQueue(schema: schema)
            var retried = 0
            var refused = 0
            for id in ids {
                do {
                    if try await queue.control(.retry, job: id, on: connection) { retried += 1 }
                } catch where Self.permissionDenied(error) {
                    refused += 1
                }
            }
            return (retried, refused)
        }
    }

    /// The kinds to filter by: those this server knows, and any other among the newest
    /// thousand jobs (a bounded read, where `DISTINCT` over the table would scan all of it).
    func kinds(known: [JobKind]) async throws -> [String] {
        let recent = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT DISTINCT kind FROM (SELECT kind FROM \(schema.jobs) ORDER BY id DESC LIMIT 1000) newest"
            ).rows.compactMap { $0["kind"] }
        }
        return Array(Set(known.map(\.rawValue)).union(recent)).sorted().prefix(50).map { $0 }
    }

    func job(_ id: Int64) async throws -> JobRow? {
        try await pool.withConnection { connection in
            try await connection.query("\(jobSelect) WHERE p.id = $1", [id]).rows.first.map(JobRow.init)
        }
    }

    /// The shards of a split job (`batched_parallel`) in key order; none for any other job.
    func shards(of job: JobRow) async throws -> [JobRow] {
        guard job.kind == .batchedParallel else { return [] }
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
                    SELECT id, seq, rows, rows_changed, batch_size, duration_ms, error, lock_waiters,
                        lock_wait_ms::float8 AS lock_wait_ms
                    FROM \(schema.batches)
                    WHERE job_id = $1 ORDER BY id DESC LIMIT $2
                ) b ORDER BY seq, id
                """, [id, limit]
            ).rows.map {
                BatchRow(
                    seq: try $0.int64("seq"), rows: try $0.int("rows"), batchSize: try $0.int("batch_size"),
                    durationMS: try $0.double("duration_ms"), error: $0["error"],
                    rowsChanged: try $0.int64("rows_changed"), lockWaiters: try $0.int("lock_waiters"), lockWaitMS: try $0.double("lock_wait_ms"))
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
        if let error = error as? PostgresError { return error.sqlState == .insufficientPrivilege }
        if let error = error as? MigrationError { return error.underlying?.sqlState == .insufficientPrivilege }
        return false
    }

    func control(_ action: JobAction, job id: Int64) async throws -> Bool {
        try await pool.withConnection { connection in
            try await JobQueue(schema: schema).control(action, job: id, on: connection)
        }
    }
}
