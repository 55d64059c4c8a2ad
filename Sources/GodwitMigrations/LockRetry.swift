import GodwitPostgres
import Logging
import Synchronization

/// How a migration takes its locks without stalling the application.
///
/// Every lock is taken under a short `lock_timeout`, so a migration that must wait behind a
/// long transaction waits alone instead of queueing every application query behind its own
/// ACCESS EXCLUSIVE request. When the timeout fires the migration's transaction rolls back
/// (for a `-- no-transaction` file: only the statement that timed out), Godwit waits with
/// exponential backoff and jitter, and tries again, `retries` times before giving up.
///
/// A file that sets its own `lock_timeout` keeps it: Godwit's is set before the file's SQL
/// runs. `statement_timeout` is never imposed, since long DDL (a concurrent index build) is
/// legitimate.
public struct LockTimeoutPolicy: Sendable {
    /// The `lock_timeout` for every statement; nil leaves the session's (usually none).
    public var lockTimeout: Duration?
    /// How many times to try again after a lock timeout (so up to `retries + 1` tries).
    public var retries: Int
    /// The wait between tries. The default makes 30 retries last about four minutes.
    public var backoff: Backoff

    public init(
        lockTimeout: Duration? = .seconds(2), retries: Int = 30,
        backoff: Backoff = Backoff(base: .milliseconds(500), max: .seconds(10))
    ) {
        self.lockTimeout = lockTimeout.flatMap { $0 > .zero ? $0 : nil }
        self.retries = max(0, retries)
        self.backoff = backoff
    }

    /// A 2 s lock timeout, 30 retries.
    public static let `default` = LockTimeoutPolicy()
    /// As sqlx: no lock timeout, no retries.
    public static let off = LockTimeoutPolicy(lockTimeout: nil, retries: 0)

    /// `SET` value for `lock_timeout`, in whole milliseconds (at least 1).
    var lockTimeoutSetting: String? {
        lockTimeout.map { "\(max(1, Int64($0.milliseconds.rounded(.up))))ms" }
    }

    static func isLockTimeout(_ error: PostgresError) -> Bool {
        error.sqlState == .lockNotAvailable
    }
}

/// A session that holds a lock another one waits for, as `pg_stat_activity` shows it.
public struct LockHolder: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    /// `application_name`, or the role when there is none.
    public var who: String
    public var state: String
    /// How long it has been in `state`.
    public var inStateFor: Duration
    /// The start of its current or last statement, cut before the first literal, so that no
    /// value (a password in `ALTER ROLE`) is ever shown.
    public var query: String

    /// `pid 4242 (app, idle in transaction for 6 min: SELECT count(*) FROM media)`.
    public var description: String {
        var text = "pid \(pid) (\(who), \(state) for \(inStateFor.roundedDescription)"
        if !query.isEmpty { text += ": \(query)" }
        return text + ")"
    }

    /// The statement's text up to its first string literal, quoted identifier aside, on one
    /// line, at most 60 characters.
    static func shown(_ query: String) -> String {
        var kept = ""
        for character in query {
            if character == "'" || character == "$" {
                kept += "…"
                break
            }
            kept.append(character.isWhitespace ? " " : character)
        }
        kept = kept.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        if kept.count > 60 { kept = String(kept.prefix(59)) + "…" }
        return kept
    }
}

/// What a waiting statement waited for, and who held it, seen from another session.
public struct LockWait: Sendable, Equatable {
    /// `table media`, `index media_pkey`, or the lock type (`transactionid`) for others.
    public var target: String
    /// The mode requested, `AccessExclusiveLock`.
    public var mode: String
    public var holders: [LockHolder]

    /// `pid 4242 (...) holds it`, or `pids 1, 2 hold it`.
    public var holdersDescription: String {
        switch holders.count {
        case 0: return "its holder had already gone when looked at"
        case 1: return "\(holders[0]) holds it"
        default: return holders.map(\.description).joined(separator: "; ") + " hold it"
        }
    }
}

/// Watches one session from a second one while a statement runs, and remembers the last
/// lock wait it saw: once the lock timeout has fired, the waiting is over and
/// `pg_blocking_pids` no longer knows who was in the way.
///
/// One watch serves every try of a statement. Its session is opened only when a statement is
/// still running after half the lock timeout, so a migration that is not blocked opens none;
/// once open it stays for the later tries, which are watched from a quarter of the timeout on.
final class LockWatch: Sendable {
    private let seen = Mutex<LockWait?>(nil)
    private let watcher = Mutex<Connection?>(nil)
    private let lockTimeout: Duration

    init(lockTimeout: Duration) {
        self.lockTimeout = lockTimeout
    }

    var lastSeen: LockWait? { seen.withLock { $0 } }

    /// Runs `body` on `connection` while watching it.
    func during<T>(_ connection: Connection, _ body: () async throws -> T) async throws -> T {
        let pid = await connection.backendPID
        let every = max(lockTimeout / 4, .milliseconds(20))
        let observer = Task(priority: .high) {
            try? await Task.sleep(for: watcher.withLock { $0 } == nil ? lockTimeout / 2 : every)
            while !Task.isCancelled {
                guard let session = await self.session(like: connection) else { return }
                if let wait = try? await Self.lockWait(of: pid, on: session) {
                    // The wait and its holders are two reads: a timeout that fires between them
                    // leaves no holder, and must not replace a look that saw one.
                    seen.withLock { current in
                        if !wait.holders.isEmpty || current?.holders.isEmpty ?? true { current = wait }
                    }
                }
                try? await Task.sleep(for: every)
            }
        }
        defer { observer.cancel() }
        return try await body()
    }

    private func session(like connection: Connection) async -> Connection? {
        if let open = watcher.withLock({ $0 }) { return open }
        guard let opened = try? await connection.connectSibling(applicationName: "godwit lock watch") else {
            return nil
        }
        if let raced = watcher.withLock({ current -> Connection? in
            if let current { return current }
            current = opened
            return nil
        }) {
            await opened.close()
            return raced
        }
        return opened
    }

    /// Closes the watching session, if one was opened.
    func close() async {
        if let open = watcher.withLock({ current -> Connection? in
            defer { current = nil }
            return current
        }) {
            await open.close()
        }
    }

    /// What `pid` waits for right now, or nil when it waits for no lock. Who blocks it is read
    /// in the same statement as the wait, so a lock timeout that fires just after still leaves
    /// the holders known (their details come next, from `pg_stat_activity`).
    static func lockWait(of pid: Int32, on connection: Connection) async throws -> LockWait? {
        guard
            let row = try await connection.query(
                """
                SELECT CASE WHEN l.locktype = 'relation' THEN
                           CASE c.relkind WHEN 'i' THEN 'index ' WHEN 'I' THEN 'index ' WHEN 'S' THEN 'sequence '
                               WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view ' ELSE 'table ' END
                           || l.relation::regclass::text
                       ELSE l.locktype END AS target,
                       l.mode, pg_catalog.pg_blocking_pids($1)::text AS blockers
                FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation
                WHERE l.pid = $1 AND NOT l.granted
                LIMIT 1
                """, [pid]
            ).first
        else { return nil }
        let holders = try await connection.query(
            """
            SELECT a.pid,
                   coalesce(nullif(a.application_name, ''), a.usename::text, 'unknown') AS who,
                   coalesce(a.state, 'unknown') AS state,
                   extract(epoch FROM now() - coalesce(
                       CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END, now()))::float8 AS secs,
                   coalesce(a.query, '') AS query
            FROM pg_catalog.pg_stat_activity a
            WHERE a.pid = ANY ($1::int[])
            ORDER BY a.pid
            """, [try row.string("blockers")]
        ).rows.map { row in
            LockHolder(
                pid: Int32(try row.int("pid")), who: try row.string("who"), state: try row.string("state"),
                inStateFor: .milliseconds(Int64(try row.double("secs") * 1000)),
                query: LockHolder.shown(try row.string("query")))
        }
        return LockWait(target: try row.string("target"), mode: try row.string("mode"), holders: holders)
    }
}
