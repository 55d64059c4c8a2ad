internal import CLibPQ
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One PostgreSQL connection, owned by its own thread.
///
/// The actor's executor is a dedicated thread (`ThreadExecutor`), so every libpq call runs
/// there and never on Swift's cooperative pool. Methods are `async` only to hop onto that
/// thread; while a statement runs, the owner thread waits in `poll()` on the server socket and
/// on a `CancelSignal`, so cancelling the awaiting task sends the server a cancel request.
/// Connecting waits the same way (`PQconnectStartParams` and `PQconnectPoll`), so it too ends
/// when the task is cancelled or `SessionOptions.connectTimeout` passes.
///
/// Clean-up (`ROLLBACK`, releasing an advisory lock) goes through `cleanup(_:)`, which is
/// sent even from a cancelled task: a cancelled caller must never leave an open transaction
/// or a held lock behind on a connection that lives on.
///
/// Server notices are collected (see `takeNotices()`), never printed. Notifications that
/// arrive while a statement runs are kept for the next `notifications(timeout:)`.
public actor Connection {
    /// The connection's own thread (internal for the exit tests).
    nonisolated let executor: ThreadExecutor
    /// Its number in `ConnectionThreads`.
    nonisolated let registration: Int
    private let cancelSignal = CancelSignal()
    /// Only touched on the owner thread. `nil` once closed.
    private var conn: OpaquePointer?
    private var cancelHandle: OpaquePointer?
    private let noticeSink = NoticeSink()
    private var pendingNotifications: [PostgresNotification] = []
    /// The connection string, for libpq.
    private let conninfo: String
    /// Everything secret in the connection string, scrubbed from every message.
    private let secrets: [String]
    /// How long `close()` waits for the server's backend to exit; nil: it does not wait
    /// (`SessionOptions.waitsForBackendExit`).
    private var backendExitWait: Duration?

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    private init(conninfo: String) {
        let executor = ThreadExecutor(name: "godwit-pq")
        self.executor = executor
        self.conninfo = conninfo
        self.secrets = ConnectionString.secrets(in: conninfo)
        let registration = ConnectionThreads.nextRegistration()
        self.registration = registration
        // Known to the process, so that it exits only once this thread is done (`finishAll`).
        ConnectionThreads.register(self, id: registration, executor: executor)
    }

    /// Runs on the owner thread (an isolated deinit), the only thread that touches the handle.
    isolated deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        if let conn { PQfinish(conn) }
        executor.shutdown()
    }

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - conninfo: a `postgres://` URL or `key=value` string; empty means libpq's defaults
    ///     (PG* variables).
    ///   - options: the session's settings; see `SessionOptions`.
    public static func connect(_ conninfo: String, options: SessionOptions = SessionOptions()) async throws
        -> Connection
    {
        try ConnectionString.validate(conninfo)
        let connection = Connection(conninfo: conninfo)
        try await connection.open(options)
        return connection
    }

    /// Opens another session with this one's connection string, reported as `applicationName`:
    /// for watching this session from outside while it waits.
    public nonisolated func connectSibling(applicationName: String) async throws -> Connection {
        try await Self.connect(conninfo, applicationName: applicationName)
    }

    /// Opens a connection reported as `applicationName` in `pg_stat_activity`.
    public static func connect(_ conninfo: String, applicationName: String) async throws -> Connection {
        var options = SessionOptions()
        options.applicationName = applicationName
        return try await connect(conninfo, options: options)
    }

    /// Opens a connection, retrying failures to connect that may pass by themselves (the
    /// server is starting or unreachable) with backoff until `timeout` has passed. Failures
    /// that will not pass (a bad URL, authentication, a missing database) fail at once, and
    /// so does cancelling the task.
    public static func connect(
        _ conninfo: String, options: SessionOptions = SessionOptions(), retryingFor timeout: Duration
    ) async throws -> Connection {
        try await RetryPolicy.connecting(for: timeout).run { try await connect(conninfo, options: options) }
    }

    private func open(_ options: SessionOptions) async throws {
        let operation = cancelSignal.begin()
        try await withTaskCancellationHandler {
            try openOnOwnerThread(options)
        } onCancel: { [cancelSignal] in
            cancelSignal.cancel(operation)
        }
    }

    private func openOnOwnerThread(_ options: SessionOptions) throws {
        // Settings before "dbname" are defaults that the connection string overrides; the
        // fallback application name after it applies only when the string names none.
        var pairs = options.libpqDefaults
        pairs.append(("dbname", conninfo))
        if let pin = options.pinningOptions(conninfo: conninfo) { pairs.append(pin) }
        pairs.append(("fallback_application_name", options.applicationName))
        let handle: OpaquePointer? = withArrayOfCStrings(pairs.map(\.0)) { keys in
            withArrayOfCStrings(pairs.map(\.1)) { vals in
                PQconnectStartParams(keys, vals, 1)
            }
        }
        guard let handle else {
            throw PostgresError(code: .connectionFailed, message: "out of memory while connecting")
        }
        func fail(_ message: String) -> PostgresError {
            PQfinish(handle)
            return PostgresError(code: .connectionFailed, message: ConnectionString.scrub(message, secrets: secrets))
        }
        guard PQstatus(handle) != CONNECTION_BAD else {
            throw fail(String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines)
        }
        let bound: Duration?
        do {
            bound = try options.connectBound(conninfo: conninfo)
        } catch {
            PQfinish(handle)
            throw error
        }
        let clock = ContinuousClock()
        let deadline = bound.map { clock.now + $0 }
        var state = PGRES_POLLING_WRITING
        while state != PGRES_POLLING_OK {
            if state == PGRES_POLLING_FAILED {
                throw fail(String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines)
            }
            let left = deadline.map { $0 - clock.now }
            if let left, let bound, left <= .zero {
                throw fail("could not connect within \(String(format: "%g", bound.seconds)) s (connect timeout)")
            }
            let socket = PQsocket(handle)
            if socket < 0 { throw fail(String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines) }
            let events = Int16(state == PGRES_POLLING_READING ? POLLIN : POLLOUT)
            var fds = [
                pollfd(fd: socket, events: events, revents: 0),
                pollfd(fd: cancelSignal.fd, events: Int16(POLLIN), revents: 0),
            ]
            let count = poll(&fds, 2, left?.pollMilliseconds ?? -1)
            if count < 0 && errno != EINTR {
                throw fail("poll failed while connecting: \(String(cString: strerror(errno)))")
            }
            if fds[1].revents != 0 || cancelSignal.isCancelled || Task.isCancelled {
                PQfinish(handle)
                throw CancellationError()
            }
            if count > 0 { state = PQconnectPoll(handle) }
        }
        conn = handle
        backendExitWait = options.waitsForBackendExit ? (options.connectTimeout ?? .seconds(10)) : nil
        cancelHandle = PQgetCancel(handle)
        PQsetNoticeReceiver(handle, noticeReceiver, Unmanaged.passUnretained(noticeSink).toOpaque())
    }

    /// Closes the connection. Later calls fail with `PostgresError.Code.closed`.
    ///
    /// With `SessionOptions.waitsForBackendExit`, returns only once the server's backend has
    /// exited (or the connect timeout passed): the socket is kept open past `PQfinish` (a
    /// duplicate of it), and read until the server closes its end, which it does only when its
    /// process ends. This blocks the connection's own thread, never the cooperative pool.
    public func close() {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        cancelHandle = nil
        guard let handle = conn else { return }
        conn = nil
        let socket = backendExitWait == nil ? -1 : PQsocket(handle)
        let kept = socket >= 0 ? dup(socket) : -1
        PQfinish(handle)
        guard kept >= 0, let wait = backendExitWait else { return }
        defer { closeDescriptor(kept) }
        let clock = ContinuousClock()
        let deadline = clock.now + wait
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let left = deadline - clock.now
            if left <= .zero { return }
            var fds = [pollfd(fd: kept, events: Int16(POLLIN), revents: 0)]
            let count = poll(&fds, 1, left.pollMilliseconds)
            if count < 0 && errno != EINTR { return }
            guard count > 0 else { continue }
            // The end of the stream (0), or an error such as a reset: the backend is gone.
            let got = read(kept, &buffer, buffer.count)
            if got <= 0 && !(got < 0 && (errno == EINTR || errno == EAGAIN)) { return }
        }
    }

    /// Whether the connection is open and usable.
    public var isOpen: Bool {
        guard let conn else { return false }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// Whether an idle connection can still be used: reads whatever the server sent since the
    /// last statement, without waiting, so that a session the server has ended (a restart, a
    /// terminated backend: it closes the socket) is found out before it is lent, not by the next
    /// statement's failure.
    public var isUsable: Bool {
        guard let conn, PQstatus(conn) == CONNECTION_OK else { return false }
        // One read returns what has arrived (a FATAL message of an ended session); the next
        // finds the end of the stream behind it. Neither waits.
        for _ in 0..<2 {
            guard PQconsumeInput(conn) == 1 else { return false }
            _ = PQisBusy(conn)
        }
        return PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    /// The server's process id for this session (as in `pg_backend_pid()`).
    public var backendPID: Int32 {
        guard let conn else { return 0 }
        return PQbackendPID(conn)
    }

    /// Server notices received since the last call.
    public func takeNotices() -> [PostgresNotice] { noticeSink.take() }

    // MARK: Statements

    /// Runs one statement with parameters (extended protocol, text format).
    ///
    /// Parameters travel separately from the SQL, so values never need quoting.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresParameter] = []) async throws -> QueryResult {
        let texts = parameters.map(\.postgresText)
        let results = try await run { conn in
            withArrayOfOptionalCStrings(texts) { values in
                PQsendQueryParams(conn, sql, Int32(texts.count), nil, values, nil, nil, 0)
            }
        }
        return results.last ?? QueryResult(columns: [], rows: [], commandTag: "", affectedRows: nil)
    }

    /// Runs a script that may hold several statements (simple protocol), as psql does with a
    /// file. Without an explicit transaction in the script, the server runs all of it in one
    /// implicit transaction. Returns one result a statement.
    @discardableResult
    public func execute(_ script: String) async throws -> [QueryResult] {
        try await run { conn in PQsendQuery(conn, script) }
    }

    /// Runs `body` inside BEGIN ... COMMIT. If `body` throws, or the task is cancelled, the
    /// transaction is rolled back: the ROLLBACK is sent even from a cancelled task.
    ///
    /// `body` runs in the caller's isolation (postgres-nio's `isolation: #isolation` form), not
    /// the connection's: it may read and change the caller's state, needs not be `Sendable`,
    /// and reaches the connection with `await` like any other caller.
    ///
    /// `begin` is what opens the transaction, sent as one message: `BEGIN`, or `BEGIN` with the
    /// transaction's own settings after it (`BEGIN; SET LOCAL lock_timeout = '2s'`), which
    /// saves a round trip. When it fails, what it opened is rolled back.
    public func withTransaction<T>(
        begin: String = "BEGIN", isolation: isolated (any Actor)? = #isolation, _ body: (Connection) async throws -> T
    ) async throws -> T {
        do {
            try await execute(begin)
        } catch {
            if begin != "BEGIN" { await cleanup("ROLLBACK") }
            throw error
        }
        do {
            let value = try await body(self)
            try await execute("COMMIT")
            return value
        } catch {
            await cleanup("ROLLBACK")
            throw error
        }
    }

    /// Sends a clean-up statement (`ROLLBACK`, `SELECT pg_advisory_unlock(...)`, `DISCARD ALL`)
    /// even when the calling task has been cancelled, waiting at most `timeout` for it. Errors
    /// are not thrown: when the statement cannot be run, the connection is closed instead, so
    /// the server ends the session and with it whatever the statement was to release.
    ///
    /// A statement of the caller's that is still running (cancelled, but not yet stopped) is
    /// waited for first, as part of the same bounded wait.
    public func cleanup(_ sql: String, timeout: Duration = .seconds(10)) async {
        guard let conn else { return }
        let ok: Bool
        do {
            ok = try cleanupOnOwnerThread(conn, sql, timeout: timeout)
        } catch {
            ok = false
        }
        if !ok { close() }
    }

    private func cleanupOnOwnerThread(_ conn: OpaquePointer, _ sql: String, timeout: Duration) throws -> Bool {
        guard PQstatus(conn) == CONNECTION_OK, PQsendQuery(conn, sql) == 1 else { return false }
        let deadline = ContinuousClock.now + timeout
        var failed = false
        while true {
            while PQisBusy(conn) == 1 {
                let left = deadline - ContinuousClock.now
                if left <= .zero { return false }
                // The cancel signal is not watched: this statement is the clean-up.
                let socket = PQsocket(conn)
                guard socket >= 0 else { return false }
                var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
                let count = poll(&fds, 1, left.pollMilliseconds)
                if count < 0 && errno != EINTR { return false }
                if count > 0, PQconsumeInput(conn) != 1 { return false }
            }
            guard let result = PQgetResult(conn) else { break }
            if PQresultStatus(result) == PGRES_FATAL_ERROR { failed = true }
            PQclear(result)
        }
        collectNotifications(conn)
        return !failed && PQstatus(conn) == CONNECTION_OK
    }

    /// Readies the connection for its next user, in one hop to its thread: rolls back a
    /// transaction left open, resets the session when asked (`DISCARD ALL`), and answers
    /// whether it can be used again (open, and idle outside any transaction).
    public func prepareForReuse(discardingState: Bool) async -> Bool {
        guard let conn, PQstatus(conn) == CONNECTION_OK else { return false }
        if PQtransactionStatus(conn) != PQTRANS_IDLE { await cleanup("ROLLBACK") }
        if discardingState, isOpen { await cleanup("DISCARD ALL") }
        guard let conn = self.conn else { return false }
        return PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    /// Where the session stands between statements, as libpq tracks it.
    public enum TransactionStatus: Sendable {
        case idle, inTransaction, failedTransaction, busy, unknown
    }

    public var transactionStatus: TransactionStatus {
        guard let conn else { return .unknown }
        switch PQtransactionStatus(conn) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failedTransaction
        case PQTRANS_ACTIVE: return .busy
        default: return .unknown
        }
    }

    /// Parses and analyses one statement without running it (the extended protocol's Parse and
    /// Describe, in libpq `PQsendPrepare` and `PQsendDescribePrepared`), and returns the types
    /// the server inferred for its parameters.
    ///
    /// Nothing is executed: this is how Godwit validates SQL it is given. The server refuses a
    /// string that holds more than one statement (SQLSTATE 42601). The statement is prepared
    /// unnamed, so it is replaced by the next one and needs no DEALLOCATE.
    public func describe(_ sql: String) async throws -> PreparedStatementDescription {
        _ = try await run { conn in PQsendPrepare(conn, "", sql, 0, nil) }
        var description = PreparedStatementDescription(parameterTypes: [], columns: [])
        _ = try await run({ conn in PQsendDescribePrepared(conn, "") }) { result in
            description.parameterTypes = (0..<PQnparams(result)).map { UInt32(PQparamtype(result, $0)) }
            description.columns = (0..<PQnfields(result)).map { String(cString: PQfname(result, $0)) }
        }
        return description
    }

    // MARK: LISTEN / NOTIFY

    /// Starts listening on `channel` (the name is quoted as an identifier).
    public func listen(_ channel: String) async throws {
        try await execute("LISTEN \(quoteIdentifier(channel))")
    }

    /// Waits until at least one notification arrives, or `timeout` passes (nil waits forever),
    /// and returns what arrived. Cancelling the task ends the wait with `CancellationError`.
    public func notifications(timeout: Duration?) async throws -> [PostgresNotification] {
        let operation = cancelSignal.begin()
        return try await withTaskCancellationHandler {
            try waitForNotifications(timeout: timeout)
        } onCancel: { [cancelSignal] in
            cancelSignal.cancel(operation)
        }
    }

    private func waitForNotifications(timeout: Duration?) throws -> [PostgresNotification] {
        let conn = try requireOpen()
        collectNotifications(conn)
        if !pendingNotifications.isEmpty { return takePending() }
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        while true {
            if cancelSignal.isCancelled || Task.isCancelled { throw CancellationError() }
            var waitMs: Int32 = -1
            if let deadline {
                let left = deadline - clock.now
                if left <= .zero { return [] }
                waitMs = Int32(
                    clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            }
            let ready = try waitReadable(conn, timeoutMs: waitMs)
            if ready.cancel { continue }
            if ready.socket {
                guard PQconsumeInput(conn) == 1 else { throw connectionError(conn) }
                collectNotifications(conn)
                if !pendingNotifications.isEmpty { return takePending() }
            }
        }
    }

    private func takePending() -> [PostgresNotification] {
        defer { pendingNotifications.removeAll() }
        return pendingNotifications
    }

    private func collectNotifications(_ conn: OpaquePointer) {
        while let notify = PQnotifies(conn) {
            pendingNotifications.append(
                PostgresNotification(
                    channel: String(cString: notify.pointee.relname),
                    payload: String(cString: notify.pointee.extra),
                    senderPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
    }

    // MARK: The wait loop

    private func requireOpen() throws -> OpaquePointer {
        guard let conn else { throw PostgresError(code: .closed, message: "the connection is closed") }
        return conn
    }

    /// Sends with `send`, then waits for and collects every result, answering task
    /// cancellation with a server-side cancel. Throws the first error result.
    private func run(
        _ send: (OpaquePointer) -> Int32, inspect: ((OpaquePointer) -> Void)? = nil
    ) async throws -> [QueryResult] {
        let operation = cancelSignal.begin()
        return try await withTaskCancellationHandler {
            try runOnOwnerThread(send, inspect: inspect)
        } onCancel: { [cancelSignal] in
            cancelSignal.cancel(operation)
        }
    }

    private func runOnOwnerThread(
        _ send: (OpaquePointer) -> Int32, inspect: ((OpaquePointer) -> Void)?
    ) throws -> [QueryResult] {
        let conn = try requireOpen()
        if Task.isCancelled { throw CancellationError() }
        guard send(conn) == 1 else { throw connectionError(conn) }
        var cancelSent = false
        var results: [QueryResult] = []
        var firstError: PostgresError?
        while true {
            while PQisBusy(conn) == 1 {
                let ready = try waitReadable(conn, timeoutMs: cancelSent ? 1000 : -1)
                if ready.cancel || (cancelSent && !ready.socket) {
                    // Either the first request, or a repeat in case the first one reached the
                    // server before the statement did and was ignored.
                    sendCancel()
                    cancelSent = true
                }
                if ready.socket, PQconsumeInput(conn) != 1 { throw connectionError(conn) }
            }
            guard let result = PQgetResult(conn) else { break }
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_FATAL_ERROR:
                if firstError == nil {
                    firstError = serverError(result)
                    firstError?.statementIndex = results.count
                }
            case PGRES_COPY_IN:
                _ = PQputCopyEnd(conn, "COPY FROM STDIN is not supported here")
            case PGRES_COPY_OUT:
                var buffer: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(conn, &buffer, 0) > 0 { PQfreemem(buffer) }
            default:
                inspect?(result)
                results.append(copyResult(result))
            }
        }
        collectNotifications(conn)
        if PQstatus(conn) != CONNECTION_OK { throw connectionError(conn) }
        if let firstError {
            if cancelSent && firstError.sqlState == .queryCanceled { throw CancellationError() }
            throw firstError
        }
        return results
    }

    /// Blocks the owner thread until the socket is readable, the cancel signal fires, or the
    /// timeout (ms, -1 for none) passes.
    private func waitReadable(_ conn: OpaquePointer, timeoutMs: Int32) throws -> (socket: Bool, cancel: Bool) {
        let socket = PQsocket(conn)
        guard socket >= 0 else { throw connectionError(conn) }
        var fds = [
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: cancelSignal.fd, events: Int16(POLLIN), revents: 0),
        ]
        let count = poll(&fds, 2, timeoutMs)
        if count < 0 {
            if errno == EINTR { return (false, false) }
            throw PostgresError(code: .client, message: "poll failed: \(String(cString: strerror(errno)))")
        }
        let cancel = fds[1].revents != 0
        if cancel { cancelSignal.drain() }
        return (fds[0].revents != 0, cancel)
    }

    private func sendCancel() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buffer, Int32(buffer.count))
    }

    // MARK: Converting results

    private func copyResult(_ result: OpaquePointer) -> QueryResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let tuples = String(cString: PQcmdTuples(result))
        return QueryResult(
            columns: columns, rows: rows, commandTag: String(cString: PQcmdStatus(result)),
            affectedRows: Int(tuples))
    }

    private func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let message = field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines
        func scrubbed(_ text: String?) -> String? { text.map { ConnectionString.scrub($0, secrets: secrets) } }
        return PostgresError(
            code: .server, message: ConnectionString.scrub(message, secrets: secrets),
            sqlState: field("C").map(SQLState.init(rawValue:)), severity: field("V") ?? field("S"),
            detail: scrubbed(field("D")), hint: scrubbed(field("H")),
            position: field("P").flatMap { Int($0) }, context: scrubbed(field("W")))
    }

    private func connectionError(_ conn: OpaquePointer) -> PostgresError {
        let message = ConnectionString.scrub(
            String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines, secrets: secrets)
        let lost = PQstatus(conn) != CONNECTION_OK
        return PostgresError(
            code: lost ? .connectionLost : .client,
            message: message.isEmpty ? "the connection to the server was lost" : message)
    }
}

extension PostgresError {
    /// A failure to connect that may go away by itself (server starting, network), rather than
    /// one that will not (authentication, unknown database).
    var isRetryableConnect: Bool {
        guard code == .connectionFailed else { return false }
        let permanent = [
            "password authentication failed", "does not exist", "no password supplied", "invalid",
            "authentication failed", "permission denied", "no pg_hba.conf entry", "pg_hba.conf rejects",
            "role is not permitted to log in", "too many connections for role", "server does not support SSL",
            "SSL is not enabled", "certificate", "GSSAPI", "requires a valid client", "could not translate host name",
        ]
        return !permanent.contains { message.contains($0) }
    }
}

// MARK: - Notices

/// Collects notices from libpq's notice receiver. The receiver runs on the owner thread,
/// inside whichever libpq call read the notice, so the sink needs no lock.
private final class NoticeSink {
    var notices: [PostgresNotice] = []

    func take() -> [PostgresNotice] {
        defer { notices.removeAll() }
        return notices
    }
}

private func noticeReceiver(_ context: UnsafeMutableRawPointer?, _ result: OpaquePointer?) {
    guard let context, let result else { return }
    let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
    func field(_ code: Character) -> String? {
        guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
        return String(cString: value)
    }
    // A connection that nobody drains must not grow without bound.
    if sink.notices.count >= 1000 { sink.notices.removeFirst() }
    sink.notices.append(
        PostgresNotice(
            severity: field("V") ?? field("S") ?? "NOTICE", sqlState: field("C").map(SQLState.init(rawValue:)),
            message: field("M") ?? "", detail: field("D"), hint: field("H")))
}

// MARK: - C strings

private func withArrayOfCStrings<R>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R
) -> R {
    var pointers: [UnsafePointer<CChar>?] = strings.map { UnsafePointer(strdup($0)) }
    pointers.append(nil)
    defer { for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) } }
    return body(pointers)
}

private func withArrayOfOptionalCStrings<R>(
    _ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R
) -> R {
    let pointers: [UnsafePointer<CChar>?] = strings.map { $0.map { UnsafePointer(strdup($0)) } ?? nil }
    defer { for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}

extension Connection {
    /// Opens a connection for the length of `body` and closes it afterwards, whether `body`
    /// returns or throws.
    @discardableResult
    public static func withConnection<T>(
        _ conninfo: String, options: SessionOptions = SessionOptions(), retryingFor timeout: Duration? = nil,
        _ body: (Connection) async throws -> T
    ) async throws -> T {
        let connection =
            if let timeout {
                try await connect(conninfo, options: options, retryingFor: timeout)
            } else {
                try await connect(conninfo, options: options)
            }
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// Closes a file descriptor (`close(2)`), from where `close` means the actor's method.
private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}
