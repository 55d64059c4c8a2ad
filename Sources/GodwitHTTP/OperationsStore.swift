import Foundation
import GodwitBackups
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// How many jobs are in each state, and how many running ones are stale.
typealias JobCounts = JobQueue.Counts

/// One page of the jobs list and where the next ones start.
typealias JobPage = JobQueue.Page

/// What a job does, from its payload, which only `job_details` shows, and only to its
/// enqueuer, a controller or the owner.
struct JobPayload: Sendable {
    /// Nil when the session may not see the payload.
    var fields: [(key: String, value: String)]?
}

/// One committed or failed batch of a batched job.
typealias BatchRow = BatchRecord

/// A recorded backup, its file only where this session may see it.
typealias BackupRow = BackupRecord

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
    /// What the queue is asked for.
    var query: JobQueue.PageQuery {
        JobQueue.PageQuery(state: state, kind: kind, search: search, before: before, after: after)
    }

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

    private var queue: JobQueue { JobQueue(schema: schema) }

    /// One page of at most `limit` jobs matching `filter` (see `JobQueue.page`).
    func jobs(_ filter: JobFilter, limit: Int = 200) async throws -> JobPage {
        try await pool.withConnection { connection in
            try await queue.page(filter.query, limit: limit, on: connection)
        }
    }

    /// Jobs by state, and the running ones that are stale, over the whole queue.
    func counts() async throws -> JobCounts {
        try await pool.withConnection { try await queue.counts(on: $0) }
    }

    /// The job's payload as its fields, when this session may see it (`job_details` shows the
    /// row only to the job's enqueuer, a controller or the owner).
    func payload(of id: Int64) async throws -> JobPayload {
        try await pool.withConnection { connection in
            let text: String?
            do {
                text = try await queue.payload(of: id, on: connection)
            } catch  where Self.permissionDenied(error) {
                return JobPayload(fields: nil)
            }
            return JobPayload(fields: text.map(Self.payloadFields))
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

    /// The job's failed attempts, newest first. `detail` (the server's DETAIL, which may quote
    /// rows) only when this session may see the job's details and read that column.
    func errors(of id: Int64, detail: Bool, limit: Int = 50) async throws -> [JobErrorRecord] {
        try await pool.withConnection { connection in
            try await queue.errors(of: id, newestFirst: true, limit: limit, detail: detail, on: connection)
        }
    }

    /// The workers, live ones first, then by their last heartbeat.
    func workers(limit: Int = 100) async throws -> [WorkerRecord] {
        try await pool.withConnection { try await queue.workers(limit: limit, byLastSeen: true, on: $0) }
    }

    /// Retries the failed jobs (at most `limit`, newest first; a split job's shards through their
    /// parent) that this session may retry, each on its own: the database refuses a job another
    /// role enqueued unless the session may act as that role.
    /// - Returns: how many were retried and how many the database refused.
    func retryFailed(limit: Int = 1000) async throws -> (retried: Int, refused: Int) {
        try await pool.withConnection { connection in
            let ids = try await queue.failedJobs(limit: limit, on: connection)
            var retried = 0
            var refused = 0
            for id in ids {
                do {
                    if try await queue.control(.retry, job: id, on: connection) { retried += 1 }
                } catch  where Self.permissionDenied(error) {
                    refused += 1
                }
            }
            return (retried, refused)
        }
    }

    /// The kinds to filter by: those this server knows, and any other among the newest
    /// thousand jobs.
    func kinds(known: [JobKind]) async throws -> [String] {
        let recent = try await pool.withConnection { try await queue.recentKinds(on: $0) }
        return Set(known + recent).map(\.rawValue).sorted().prefix(50).map { $0 }
    }

    func job(_ id: Int64) async throws -> JobRecord? {
        try await pool.withConnection { try await queue.find(id, details: false, on: $0) }
    }

    /// The shards of a split job (`batched_parallel`) in key order; none for any other job.
    func shards(of job: JobRecord) async throws -> [JobRecord] {
        try await pool.withConnection { try await queue.shards(of: job, on: $0) }
    }

    /// The newest `limit` batches of a job, oldest first (`BatchHistory`).
    func batches(of id: Int64, limit: Int = 300) async throws -> [BatchRow] {
        try await pool.withConnection { try await BatchHistory(schema: schema).newest(of: id, limit: limit, on: $0) }
    }

    /// The newest `limit` backups, newest first (`BackupRecords`); a file only where this
    /// session may see it.
    func backups(limit: Int = 100) async throws -> [BackupRow] {
        try await pool.withConnection { try await BackupRecords(schema: schema.name).newest(limit: limit, on: $0) }
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
            // Without a folder, the ledger's rows alone.
            let rows = try await LedgerReader(config: migrationConfig).entries(on: connection).map {
                MigrationRow(
                    version: $0.version, description: $0.description, state: $0.success ? "installed" : "failed",
                    installedOn: $0.installedOn, executionMS: $0.executionTime.map { Double($0) / 1e6 })
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
            try await queue.control(action, job: id, on: connection)
        }
    }
}
