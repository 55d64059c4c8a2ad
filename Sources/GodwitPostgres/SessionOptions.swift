import Foundation

/// How Godwit opens and keeps its own sessions.
///
/// The defaults suit a long-running worker on a network that may fail: a dead server or a cut
/// connection is noticed within about a minute (TCP keepalives and `tcp_user_timeout`) rather
/// than never, and an attempt to connect gives up after `connectTimeout`. Settings in the
/// connection string win over these, so a user's `keepalives=0` stays as written.
public struct SessionOptions: Sendable {
    /// Reported in `pg_stat_activity` unless the connection string sets its own.
    public var applicationName = "godwit"
    /// How long one attempt to connect may take, name lookup and authentication included; nil
    /// waits as long as it takes. By default `PGCONNECT_TIMEOUT` when the environment sets it,
    /// else 10 s; a `connect_timeout` in the connection string wins over this (see
    /// `connectBound(conninfo:)`).
    public var connectTimeout: Duration? = SessionOptions.defaultConnectTimeout
    /// Whether to turn TCP keepalives on (libpq's `keepalives`).
    public var keepalives = true
    /// Idle time before the first keepalive probe, then the interval between probes, and how
    /// many unanswered probes end the connection.
    public var keepalivesIdle: Duration = .seconds(30)
    public var keepalivesInterval: Duration = .seconds(10)
    public var keepalivesCount = 3
    /// How long sent data may stay unacknowledged before the connection is dropped (libpq's
    /// `tcp_user_timeout`; Linux). Nil leaves the system's default.
    public var tcpUserTimeout: Duration? = .seconds(60)
    /// For Godwit's own sessions: the server ends a session that sits idle inside a transaction
    /// this long (a worker stopped with SIGSTOP in the middle of a batch), which releases its
    /// locks. Nil leaves the server's setting.
    public var idleInTransactionSessionTimeout: Duration?
    /// For sessions that run only Godwit's own SQL (the worker's, the dashboard's): the
    /// session's `search_path`, fixed at login so that nothing planted in a schema the login
    /// searches (an operator on Godwit's enum in `public`, a function named like one of
    /// PostgreSQL's) is ever called by Godwit's statements. Set as a startup option after the
    /// connection string's own `options`, so it holds whatever the string says, and `RESET ALL`
    /// and `DISCARD ALL` come back to it. Nil leaves the login's default (sessions that run
    /// the user's SQL: migrations, a job's).
    public var pinnedSearchPath: String?
    /// Whether `Connection.close()` waits until the server's backend has exited (a
    /// "synchronous close": the server keeps the socket open until its process ends, so the
    /// end of the stream means the session is gone from `pg_stat_activity`). For connections
    /// counted against a budget (a fleet worker's), so that a session closed to make room is
    /// gone before the next one opens. Waits at most `connectTimeout`.
    public var waitsForBackendExit = false

    public init() {}

    /// `search_path = pg_catalog, pg_temp`: names resolve in PostgreSQL's own catalog first, and
    /// functions and operators never in `pg_temp`.
    public static let catalogSearchPath = "pg_catalog,pg_temp"

    /// The libpq keywords these options set, as defaults placed before the connection string.
    var libpqDefaults: [(String, String)] {
        // No connect_timeout: libpq ignores it in nonblocking connects, and `connectTimeout` is
        // enforced by the wait loop instead.
        var pairs: [(String, String)] = [("keepalives", keepalives ? "1" : "0")]
        if keepalives {
            pairs.append(("keepalives_idle", "\(max(1, Int(keepalivesIdle.seconds)))"))
            pairs.append(("keepalives_interval", "\(max(1, Int(keepalivesInterval.seconds)))"))
            pairs.append(("keepalives_count", "\(max(1, keepalivesCount))"))
        }
        if let tcpUserTimeout { pairs.append(("tcp_user_timeout", "\(max(1, Int(tcpUserTimeout.milliseconds)))")) }
        // As a startup option it is the session's default, so RESET ALL and DISCARD ALL keep it.
        if let idleInTransactionSessionTimeout {
            pairs.append(
                (
                    "options",
                    "-c idle_in_transaction_session_timeout=\(max(1, Int(idleInTransactionSessionTimeout.milliseconds)))"
                ))
        }
        return pairs
    }

    /// The `options` startup setting that pins `search_path`, to place after the connection
    /// string: the string's own `options` (or `PGOPTIONS`, or this session's default) with the
    /// pin last, where it wins.
    func pinningOptions(conninfo: String) -> (String, String)? {
        guard let pinnedSearchPath else { return nil }
        let given =
            (try? ConnectionString.options(conninfo))?["options"]
            ?? ProcessInfo.processInfo.environment["PGOPTIONS"]
            ?? libpqDefaults.first { $0.0 == "options" }?.1
        let pin = "-c search_path=\(pinnedSearchPath.replacingOccurrences(of: " ", with: ""))"
        return ("options", [given, pin].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " "))
    }
}
