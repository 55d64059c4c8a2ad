import GodwitPostgres

/// What the queue tells its readers: `godwit job list`, `show` and `watch`, the dashboard and
/// the metrics. Every job comes as a `JobRecord`, through one `SELECT` (`recordSelect`).
extension JobQueue {
    /// The newest jobs first; a parallel job's shards right beneath it, in order.
    public func list(states: [JobState] = [], limit: Int = 50, on connection: Connection) async throws -> [JobRecord] {
        let filter = states.isEmpty ? "" : "WHERE j.state::text = ANY($2::text[])"
        var parameters: [any PostgresParameter] = [limit]
        if !states.isEmpty { parameters.append(PostgresArray.literal(states.map(\.rawValue))) }
        return try await connection.query(
            "\(recordSelect()) \(filter) ORDER BY coalesce(j.parent_id, j.id) DESC, j.parent_id IS NOT NULL, j.id LIMIT $1",
            parameters
        ).rows.map(JobRecord.init)
    }

    /// One job, or nil when there is none. Without `details`, its payload, result and error
    /// detail are left out (nil): for readers that poll (`job watch`, the dashboard).
    public func find(_ id: Int64, details: Bool = true, on connection: Connection) async throws -> JobRecord? {
        try await connection.query("\(recordSelect(details: details)) WHERE j.id = $1", [id]).first.map(JobRecord.init)
    }

    /// The shards of a parallel job (`batched_parallel`) in key order; none for any other job.
    public func shards(of job: JobRecord, on connection: Connection) async throws -> [JobRecord] {
        guard job.kind == .batchedParallel else { return [] }
        return try await connection.query(
            "\(recordSelect(details: false)) WHERE j.parent_id = $1 ORDER BY j.id", [job.id]
        ).rows.map(JobRecord.init)
    }

    /// Which jobs a page of the dashboard's list shows.
    public struct PageQuery: Sendable, Equatable {
        public var state: JobState?
        public var kind: String?
        /// Part of the name, matched case-insensitively and literally (`%` and `_` too).
        public var search: String?
        /// Jobs with an id below `before`, or above `after` (at most one of them).
        public var before: Int64?
        public var after: Int64?

        public init(
            state: JobState? = nil, kind: String? = nil, search: String? = nil, before: Int64? = nil,
            after: Int64? = nil
        ) {
            self.state = state
            self.kind = kind
            self.search = search
            self.before = before
            self.after = after
        }
    }

    /// One page of jobs and where the next ones start: keyset pagination by id.
    public struct Page: Sendable {
        public var jobs: [JobRecord]
        /// `before` for the link to older jobs; nil when there are none.
        public var olderThan: Int64?
        /// `after` for the link to newer jobs; nil on the newest page.
        public var newerThan: Int64?
        /// Whether this is not the first page (a "newest" link leads back to it).
        public var paged: Bool
    }

    /// One page of at most `limit` jobs matching `query`, without their details. The first page
    /// shows running jobs first, then the newest; `before` and `after` page through all of them
    /// by id (keyset pagination). Each read goes by index newest first (running jobs by their
    /// partial index, the rest backwards by id), so the page and its refresh every two seconds
    /// cost the same on a table of millions of jobs.
    public func page(_ query: PageQuery, limit: Int = 200, on connection: Connection) async throws -> Page {
        // An ILIKE pattern with the user's %, _ and \ taken literally.
        let pattern = query.search.map {
            "%"
                + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_") + "%"
        }
        let matching = """
            ($1::text IS NULL OR p.state::text = $1) AND ($2::text IS NULL OR p.kind = $2)
                AND ($3::text IS NULL OR p.name ILIKE $3)
            """
        let select = recordSelect(details: false)
        let state = query.state?.rawValue
        if let before = query.before {
            let rows = try await connection.query(
                "\(select) WHERE p.id < $5 AND \(matching) ORDER BY p.id DESC LIMIT $4",
                [state, query.kind, pattern, limit + 1, before]
            ).rows.map(JobRecord.init)
            let shown = Array(rows.prefix(limit))
            return Page(
                jobs: shown, olderThan: rows.count > limit ? shown.last?.id : nil, newerThan: shown.first?.id ?? before,
                paged: true)
        }
        if let after = query.after {
            let rows = try await connection.query(
                "\(select) WHERE p.id > $5 AND \(matching) ORDER BY p.id LIMIT $4",
                [state, query.kind, pattern, limit + 1, after]
            ).rows.map(JobRecord.init)
            let shown = Array(rows.prefix(limit).reversed())
            return Page(
                jobs: shown, olderThan: shown.last?.id ?? after + 1,
                newerThan: rows.count > limit ? shown.first?.id : nil,
                paged: true)
        }
        let rows = try await connection.query(
            """
            SELECT * FROM (
                (\(select) WHERE p.state = 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
                UNION ALL
                (\(select) WHERE p.state <> 'running' AND \(matching) ORDER BY p.id DESC LIMIT $4)
            ) newest ORDER BY (state = 'running') DESC, id DESC LIMIT $4
            """, [state, query.kind, pattern, limit]
        ).rows.map(JobRecord.init)
        // Older pages go on from the oldest job listed in id order (running jobs are pinned
        // above them here, and show again in their place on older pages).
        let listed = rows.filter { $0.state != .running }
        guard let last = (listed.isEmpty ? rows : listed).last?.id else {
            return Page(jobs: rows, olderThan: nil, newerThan: nil, paged: false)
        }
        let older =
            try await connection.query(
                "SELECT EXISTS (SELECT 1 FROM \(schema.progress) p WHERE p.id < $4 AND \(matching)) AS older",
                [state, query.kind, pattern, last]
            ).first?.bool("older") ?? false
        return Page(jobs: rows, olderThan: older ? last : nil, newerThan: nil, paged: false)
    }

    /// How many jobs are in each state, and how many running ones are stale.
    public struct Counts: Sendable, Equatable {
        public var byState: [JobState: Int64]
        public var stale: Int64
    }

    /// Jobs by state, and the running ones that are stale, over the whole queue.
    public func counts(on connection: Connection) async throws -> Counts {
        var byState: [JobState: Int64] = [:]
        for row in try await connection.query(
            "SELECT state::text AS state, count(*) AS n FROM \(schema.jobs) GROUP BY state"
        ).rows {
            let text = try row.string("state")
            guard let state = JobState(rawValue: text) else {
                throw PostgresError(
                    code: .client,
                    message: "jobs are in state \"\(text)\", which this godwit does not know: upgrade godwit")
            }
            byState[state] = try row.int64("n")
        }
        let stale =
            try await connection.query(
                "SELECT count(*) AS n FROM \(schema.progress) p WHERE p.state = 'running' AND p.stale"
            ).first?.int64("n") ?? 0
        return Counts(byState: byState, stale: stale)
    }

    /// How many jobs there are of each state and kind, in one pass over the table (the metrics).
    public func countsByStateAndKind(
        on connection: Connection
    ) async throws -> [(state: String, kind: JobKind, count: Int64)] {
        try await connection.query(
            "SELECT state::text AS state, kind, count(*) AS n FROM \(schema.jobs) GROUP BY 1, 2"
        ).rows.map { (try $0.string("state"), JobKind(try $0.string("kind")), try $0.int64("n")) }
    }

    /// How many queued jobs are due now, and how long the oldest of them has waited (0 when none).
    public func depth(on connection: Connection) async throws -> (due: Int64, oldestSeconds: Double) {
        let row = try await connection.query(
            """
            SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS oldest
            FROM \(schema.jobs) WHERE state = 'queued' AND run_at <= now()
            """
        ).first
        return (try row?.int64("n") ?? 0, try row?.double("oldest") ?? 0)
    }

    /// The running jobs of `kind`, by id, at most `limit`, without their details.
    public func running(_ kind: JobKind, limit: Int, on connection: Connection) async throws -> [JobRecord] {
        try await connection.query(
            "\(recordSelect(details: false)) WHERE p.kind = $1 AND p.state = 'running' ORDER BY p.id LIMIT $2",
            [kind, limit]
        ).rows.map(JobRecord.init)
    }

    /// The kinds among the newest thousand jobs (a bounded read, where `DISTINCT` over the
    /// table would scan all of it).
    public func recentKinds(on connection: Connection) async throws -> [JobKind] {
        try await connection.query(
            "SELECT DISTINCT kind FROM (SELECT kind FROM \(schema.jobs) ORDER BY id DESC LIMIT 1000) newest"
        ).rows.compactMap { $0["kind"].map(JobKind.init(rawValue:)) }
    }

    /// Each attempt's error of a job, oldest first (`job show`), or the newest `limit` first
    /// (the job page). With `detail`, the server's DETAIL too, when this session may see the
    /// job's details (`job_details` shows it the row) and read the column.
    public func errors(
        of id: Int64, newestFirst: Bool = false, limit: Int? = nil, detail: Bool = false, on connection: Connection
    ) async throws -> [JobErrorRecord] {
        let readable =
            detail
            ? try await connection.query(
                "SELECT pg_catalog.has_column_privilege($1::text, 'error_detail', 'SELECT') AS ok", [schema.jobErrors]
            ).first?.bool("ok") ?? false : false
        return try await connection.query(
            """
            SELECT e.attempt, e.worker_id, e.error, \(readable ? "e.error_detail" : "NULL::text") AS error_detail,
                to_json(e.at)#>>'{}' AS at, extract(epoch FROM now() - e.at)::float8 AS ago
            FROM \(schema.jobErrors) e WHERE e.job_id = $1 ORDER BY e.id \(newestFirst ? "DESC" : "") LIMIT $2
            """, [id, limit]
        ).rows.map(JobErrorRecord.init)
    }

    /// The ids of failed jobs, newest first, at most `limit`; a parallel job's shards not apart
    /// from it (retrying the parent retries them).
    public func failedJobs(limit: Int, on connection: Connection) async throws -> [Int64] {
        try await connection.query(
            "SELECT id FROM \(schema.jobs) WHERE state = 'failed' AND parent_id IS NULL ORDER BY id DESC LIMIT $1",
            [limit]
        ).rows.map { try $0.int64("id") }
    }

    /// A job's payload as JSON text, when this session may see it (`job_details` shows the row
    /// only to the job's enqueuer, a controller or the owner); nil otherwise.
    public func payload(of id: Int64, on connection: Connection) async throws -> String? {
        try await connection.query(
            "SELECT d.payload::text AS payload FROM \(schema.jobDetails) d WHERE d.id = $1", [id]
        ).first?["payload"]
    }

    /// The one `SELECT` of a job (alias `j`, its `<schema>.progress` row `p`): every column of
    /// `JobRecord`. Timestamps come as ISO 8601 (`to_json` of a timestamptz), JSON columns as JSON
    /// text, ages as seconds from the database's `now()`. With `details`, the payload, result and
    /// error detail come from `job_details`, which shows them only to those who may read them
    /// (see `JobRecord`); without, they are NULL and the view is not read.
    func recordSelect(details: Bool = true) -> String {
        let stale = staleColumns
        return """
            SELECT j.id, j.kind, j.name, j.state::text AS state, j.priority, j.attempts, j.max_attempts,
                to_json(j.run_at)#>>'{}' AS run_at, j.last_error, j.worker_id, to_json(j.heartbeat_at)#>>'{}' AS heartbeat_at,
                to_json(j.created_at)#>>'{}' AS created_at, to_json(j.started_at)#>>'{}' AS started_at,
                to_json(j.finished_at)#>>'{}' AS finished_at, j.enqueued_by::text AS enqueued_by, j.control, j.parent_id,
                \(details ? "d.payload::text AS payload, d.result::text AS result, d.last_error_detail"
                    : "NULL::text AS payload, NULL::text AS result, NULL::text AS last_error_detail"),
                p.percent::float8 AS percent, p.rows_done, p.rows_total, p.rows_per_second::float8 AS rows_per_second,
                extract(epoch FROM p.eta)::float8 AS eta, p.batch_size, p.size_reason, p.hold_reason, p.cursor,
                p.lock_waits, p.lock_wait_ms_max::float8 AS lock_wait_ms_max,
                extract(epoch FROM now() - j.created_at)::float8 AS created_ago,
                extract(epoch FROM now() - j.started_at)::float8 AS started_ago,
                extract(epoch FROM now() - j.finished_at)::float8 AS finished_ago,
                extract(epoch FROM coalesce(j.finished_at, CASE WHEN j.state = 'running' THEN now() END) - j.started_at)::float8
                    AS ran_seconds,
                extract(epoch FROM now() - p.worker_seen_at)::float8 AS worker_seen_ago,
                \(stale.columns)
            FROM \(schema.jobs) j JOIN \(schema.progress) p ON p.id = j.id
            \(details ? "LEFT JOIN \(schema.jobDetails) d ON d.id = j.id" : "")
            \(stale.join)
            """
    }

    /// The columns `JobRecord` reads for the stale marker, given the job as `j` and its row of
    /// `<schema>.progress` as `p`: which running worker of the job was seen longest ago, and how
    /// long ago.
    private var staleColumns: (columns: String, join: String) {
        (
            "p.stale, to_json(p.worker_seen_at)#>>'{}' AS worker_seen_at, sw.stale_worker, "
                + "greatest(0, extract(epoch FROM now() - p.worker_seen_at))::float8 AS unseen_seconds",
            """
            LEFT JOIN LATERAL (
                SELECT r.worker_id AS stale_worker FROM \(schema.jobs) r
                LEFT JOIN \(schema.workers) w ON w.id = r.worker_id
                WHERE p.stale AND r.state = 'running' AND (r.id = j.id OR r.parent_id = j.id)
                ORDER BY CASE WHEN w.stopped_at IS NULL THEN greatest(w.heartbeat_at, r.heartbeat_at)
                    ELSE r.heartbeat_at END NULLS FIRST
                LIMIT 1
            ) sw ON true
            """
        )
    }
}
