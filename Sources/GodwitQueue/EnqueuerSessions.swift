import Foundation
import GodwitPostgres
import Synchronization

/// Where a job's SQL runs: sessions that log in as the role that enqueued the job.
///
/// The promise of the queue is that a job runs with its enqueuer's rights and no more. The
/// boundary is PostgreSQL's own authentication: every statement a job's enqueuer controls (an
/// sql job's script, a batch, a health query, the parse that validates them, a migration) runs
/// over a connection whose `session_user` is the enqueuer. Whatever that SQL does, and whenever
/// PostgreSQL runs code of the enqueuer's (a deferred trigger at COMMIT, a domain's check at
/// parse time, an operator it planted), it can at most be the enqueuer, never the worker or
/// another role. The worker's own session is never lent to a job.
///
/// How the worker logs in as a role: the line for that role in its logins (`--enqueuer-logins
/// FILE`: `ROLE CONNECTION-STRING` a line) when there is one; else the worker's own connection
/// string with the user replaced and the password left out, so that libpq finds the role's
/// password in `.pgpass` (or `PGPASSFILE`) or the server accepts a client certificate, peer or
/// trust. The worker's own role logs in with the worker's own connection string. Jobs of a
/// role it cannot log in as fail at once, naming the role and what would let the worker log
/// in; there is no fallback to another identity.
///
/// One pool per role, up to the worker's concurrency each: a login per role, not per job.
/// Every session goes back to its pool reset (`DISCARD ALL`), whatever the job left in it.
public final class EnqueuerSessions: Sendable {
    public let workerURL: String
    /// Connection strings by role name, from the logins file.
    public let logins: [String: String]
    let options: SessionOptions
    let maximumConnections: Int
    let connectRetry: RetryPolicy
    /// Whether a session given back stays open for the role's next job (see
    /// `ConnectionPool.Configuration.keepsIdleConnections`).
    let keepsIdleSessions: Bool
    private let state = Mutex(State())

    private struct State {
        var pools: [String: ConnectionPool] = [:]
        /// The worker's own login role, once known.
        var workerRole: String?
        var closed = false
    }

    public init(
        workerURL: String, logins: [String: String] = [:], options: SessionOptions = SessionOptions(),
        maximumConnections: Int = 4, connectRetry: RetryPolicy = .connecting(for: .seconds(10)),
        workerRole: String? = nil, keepsIdleSessions: Bool = true
    ) {
        self.keepsIdleSessions = keepsIdleSessions
        self.workerURL = workerURL
        self.logins = logins
        var options = options
        options.pinnedSearchPath = nil
        self.options = options
        self.maximumConnections = maximumConnections
        self.connectRetry = connectRetry
        state.withLock { $0.workerRole = workerRole }
    }

    /// Tells the sessions which role the worker itself logs in as (`session_user` of its own
    /// connections): that role's jobs log in with the worker's connection string as it is.
    public func setWorkerRole(_ role: String) {
        state.withLock { $0.workerRole = role }
    }

    /// How the worker logs in as `role`, and where that came from (for messages).
    func login(for role: String) throws -> (conninfo: String, source: String) {
        if let given = logins[role] { return (given, "the enqueuer logins file") }
        if state.withLock({ $0.workerRole }) == role { return (workerURL, "the worker's own connection string") }
        return (
            try ConnectionString.loggingIn(as: role, from: workerURL),
            "the worker's connection string with user \(role)"
        )
    }

    /// Lends a session logged in as `job`'s enqueuer for the length of `body`, reset afterwards.
    ///
    /// Throws a permanent `JobFailure` naming the role when the worker cannot log in as it (or
    /// the login turns out to be another role); a server that cannot be reached is a transient
    /// `PostgresError`, retried like any other.
    public func withSession<T: Sendable>(for job: ClaimedJob, _ body: (Connection) async throws -> T) async throws -> T
    {
        let role = job.enqueuedBy
        let pool = try pool(for: role)
        var entered = false
        do {
            return try await pool.withConnection(discardingState: true) { connection in
                entered = true
                let user = try await connection.query("SELECT session_user AS u").first?
                    .string("u")
                guard user == role else {
                    throw JobFailure(
                        "job \(job.id) was enqueued by role \(role), but the worker's login for it (\(try login(for: role).source)) "
                            + "logs in as \(user ?? "?"): a job runs only in a session of its own enqueuer")
                }
                return try await body(connection)
            }
        } catch let error as PostgresError where !entered && !error.isTransient {
            throw JobFailure(
                "job \(job.id) was enqueued by role \(role), and the worker cannot log in as \(role) "
                    + "(\((try? login(for: role).source) ?? "its login")): \(error.message). Jobs run in a session that logs in "
                    + "as their enqueuer: give the worker a way in, with a line for \(role) in its password file (.pgpass or "
                    + "PGPASSFILE), a client certificate or pg_hba.conf rule, or a line \"\(role) CONNECTION-STRING\" in its "
                    + "--enqueuer-logins file")
        }
    }

    private func pool(for role: String) throws -> ConnectionPool {
        let conninfo = try login(for: role).conninfo
        return try state.withLock { state in
            if state.closed { throw ConnectionPool.ClosedError() }
            if let pool = state.pools[role] { return pool }
            var options = self.options
            options.applicationName = "godwit job"
            let pool = ConnectionPool(
                configuration: .init(
                    conninfo: conninfo, options: options, maximumConnections: maximumConnections,
                    connectRetry: connectRetry, keepsIdleConnections: keepsIdleSessions))
            state.pools[role] = pool
            return pool
        }
    }

    /// Closes every pool; sessions lent out are closed when they come back.
    public func close() async {
        let pools = state.withLock { state in
            state.closed = true
            return Array(state.pools.values)
        }
        for pool in pools { await pool.close() }
    }
}

/// The enqueuer logins file: `ROLE CONNECTION-STRING` a line, `#` comments and blank lines
/// ignored. It holds passwords, so like `.pgpass` it must not be readable by group or others.
public enum EnqueuerLogins {
    public struct Invalid: GodwitError {
        public var description: String
        public var code: String { "invalidLogins" }
    }

    /// Reads the file at `path` (opened inside `base` when relative; messages name it as given).
    public static func load(path: String, relativeTo base: WorkingDirectory = .process) throws -> [String: String] {
        let opened = base.resolve(path)
        var status = stat()
        guard stat(opened, &status) == 0 else {
            throw Invalid(
                description: "\(path): cannot read the enqueuer logins file (\(String(cString: strerror(errno))))")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw Invalid(
                description:
                    "\(path): the enqueuer logins file holds passwords and is readable by group or others: chmod 600 it"
            )
        }
        guard let data = FileManager.default.contents(atPath: opened) else {
            throw Invalid(description: "\(path): cannot read the enqueuer logins file")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws -> [String: String] {
        var logins: [String: String] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2 else {
                throw Invalid(description: "\(path):\(index + 1): expected ROLE CONNECTION-STRING")
            }
            let role = String(parts[0])
            let conninfo = parts[1].trimmingCharacters(in: .whitespaces)
            do {
                try ConnectionString.validate(conninfo)
            } catch {
                throw Invalid(description: "\(path):\(index + 1): role \(role): \(error)")
            }
            guard logins[role] == nil else {
                throw Invalid(description: "\(path):\(index + 1): role \(role) has a login already")
            }
            logins[role] = conninfo
        }
        return logins
    }
}
