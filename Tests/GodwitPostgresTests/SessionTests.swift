import Foundation
import GodwitPostgres
import GodwitTestSupport
import Synchronization
import Testing

/// Counts how many borrowers hold a connection at once.
final class Peak: Sendable {
    private let state = Mutex((now: 0, max: 0))
    func enter() {
        state.withLock {
            $0.now += 1
            $0.max = max($0.max, $0.now)
        }
    }
    func leave() { state.withLock { $0.now -= 1 } }
    var highest: Int { state.withLock { $0.max } }
}

@Suite("Sessions: connecting, clean-up and the pool")
struct SessionTests {
    @Test func aCancelledTransactionIsRolledBackAndTheConnectionStaysUsable() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE t (id int)")
            let task = Task {
                try await conn.withTransaction { conn in
                    try await conn.execute("INSERT INTO t VALUES (1)")
                    try await conn.query("SELECT pg_sleep(30)")
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            // The ROLLBACK went out although the task was cancelled: no transaction is left open
            // and the insert is gone.
            #expect(await conn.transactionStatus == .idle)
            #expect(try await conn.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
            await conn.close()
        }
    }

    @Test func cleanupIsSentFromACancelledTask() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let observer = try await db.connect()
            let key: Int64 = 424_242
            let pid = await conn.backendPID
            _ = pid
            let task = Task {
                try await conn.query("SELECT pg_advisory_lock($1)", [key])
                withUnsafeCurrentTask { $0?.cancel() }
                // A cancelled task cannot start a statement...
                await #expect(throws: CancellationError.self) { try await conn.query("SELECT 1") }
                // ...but it can always clean up.
                await conn.cleanup("SELECT pg_advisory_unlock(\(key))")
            }
            try await task.value
            let held = try await observer.query(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", [Int(pid)]
            ).first?.int("n")
            #expect(held == 0)
            await conn.close()
            await observer.close()
        }
    }

    /// libpq's own connect never times out here, and the retry window is an hour: only the
    /// cancel can end the wait before the time limit fails the test.
    @Test(.timeLimit(.minutes(3))) func aConnectToAServerThatNeverAnswersCanBeCancelled() async throws {
        let server = try SilentServer()
        let task = Task {
            try await Connection.connect("postgres://nobody@127.0.0.1:\(server.port)/x", retryingFor: .seconds(3600))
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }

    @Test func aConnectToAServerThatNeverAnswersTimesOut() async throws {
        let server = try SilentServer()
        var options = SessionOptions()
        options.connectTimeout = .milliseconds(500)
        do {
            _ = try await Connection.connect("postgres://nobody@127.0.0.1:\(server.port)/x", options: options)
            Issue.record("connected to a server that never answers")
        } catch let error as PostgresError {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("connect timeout"))
        }
    }

    /// libpq applies `connect_timeout` only to a connect that blocks, which Godwit's never do:
    /// Godwit reads it from the string itself, and it wins over the session's own bound.
    @Test(.timeLimit(.minutes(2))) func theConnectionStringsConnectTimeoutBoundsTheAttempt() async throws {
        let server = try SilentServer()
        defer { withExtendedLifetime(server) {} }
        var options = SessionOptions()
        options.connectTimeout = .seconds(3600)
        do {
            _ = try await Connection.connect(
                "postgres://nobody@127.0.0.1:\(server.port)/x?connect_timeout=2", options: options)
            Issue.record("connected to a server that never answers")
        } catch let error as PostgresError {
            #expect(error.code == .connectionFailed)
            #expect(error.message == "could not connect within 2 s (connect timeout)", "\(error.message)")
        }
        // A value libpq would refuse is refused before any wait, in one line.
        await #expect {
            _ = try await Connection.connect(
                "postgres://nobody@127.0.0.1:\(server.port)/x?connect_timeout=soon", options: options)
        } throws: { error in
            (error as? PostgresError)?.message
                == "invalid integer value \"soon\" for connection option \"connect_timeout\""
        }
    }

    @Test func anAuthenticationFailureIsNotRetried() async throws {
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let role = "godwit_wrongpass_\(UInt32.random(in: 0...UInt32.max))"
            try await admin.execute("CREATE ROLE \(role) LOGIN PASSWORD 'right-password'")

            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = "wrong-password"
            let url = try #require(components.string)
            let error = try await #require(throws: PostgresError.self) {
                _ = try await Connection.connect(url, retryingFor: .seconds(60))
            }
            #expect(!error.isTransient)
            #expect(error.message.contains("password authentication failed"))
            #expect(!error.description.contains("wrong-password"))
            try await admin.execute("DROP ROLE \(role)")
            await admin.close()
        }
    }

    @Test func describeParsesWithoutRunningAndRefusesASecondStatement() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE t (id bigint, label text)")
            let description = try await conn.describe("INSERT INTO t VALUES ($1, $2) RETURNING id")
            #expect(description.parameterTypes == [20, 25])
            #expect(description.columns == ["id"])
            #expect(try await conn.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
            let error = try await #require(throws: PostgresError.self) {
                _ = try await conn.describe("INSERT INTO t VALUES (1, 'a'); DROP TABLE t")
            }
            #expect(error.sqlState == .syntaxError)
            #expect(try await conn.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
            await conn.close()
        }
    }

    @Test func thePoolBoundsItsConnectionsAndHandsThemOver() async throws {
        try await withTestDatabase { db in
            let pool = ConnectionPool(configuration: .init(conninfo: db.url, maximumConnections: 3))
            let peak = Peak()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await pool.withConnection { conn in
                            peak.enter()
                            // Held until three are held at once (a bound, not a measure: on a
                            // loaded machine a fixed sleep ended before the third was opened).
                            let deadline = ContinuousClock.now + .seconds(20)
                            while peak.highest < 3 && ContinuousClock.now < deadline {
                                try await conn.query("SELECT pg_sleep(0.01)")
                            }
                            peak.leave()
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(peak.highest == 3)
            #expect(pool.openConnections == 3)
            await pool.close()
            #expect(pool.openConnections == 0)
            await #expect(throws: ConnectionPool.ClosedError.self) { try await pool.withConnection { _ in } }
        }
    }

    /// A transaction opened with its settings in the same message (`begin:`) whose setting is
    /// refused: the error is thrown, the body never runs, and no aborted transaction is left.
    @Test func aBeginWithSettingsThatFailsLeavesNoTransaction() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let inside = try await conn.withTransaction(begin: "BEGIN; SET LOCAL lock_timeout = '2s'") { conn in
                try await conn.query("SELECT current_setting('lock_timeout') AS v").first?["v"]
            }
            #expect(inside == "2s")
            #expect(await conn.transactionStatus == .idle)
            await #expect(throws: PostgresError.self) {
                try await conn.withTransaction(begin: "BEGIN; SET LOCAL lock_timeout = 'soon'") { _ in
                    Issue.record("the body ran")
                }
            }
            #expect(await conn.transactionStatus == .idle)
            #expect(try await conn.query("SELECT current_setting('lock_timeout') AS v").first?["v"] == "0")
            await conn.close()
        }
    }

    @Test func thePoolRollsBackResetsAndReplacesBrokenConnections() async throws {
        try await withTestDatabase { db in
            let admin = try await db.connect()
            try await admin.execute("CREATE TABLE t (id int)")
            let pool = ConnectionPool(configuration: .init(conninfo: db.url, maximumConnections: 1))
            // A transaction left open by the borrower is rolled back on return.
            try await pool.withConnection { try await $0.execute("BEGIN; INSERT INTO t VALUES (1)") }
            #expect(try await admin.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
            // withTransaction commits when the body returns and rolls back when it throws.
            try await pool.withTransaction { try await $0.execute("INSERT INTO t VALUES (2)") }
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await pool.withTransaction { conn in
                    try await conn.execute("INSERT INTO t VALUES (3)")
                    throw Refused()
                }
            }
            #expect(try await admin.query("SELECT array_agg(id)::text AS ids FROM t").first?["ids"] == "{2}")
            // Session state is reset when asked.
            try await pool.withConnection(discardingState: true) { conn in
                try await conn.execute("SET application_name = 'changed'; CREATE TEMP TABLE scratch (x int)")
            }
            let reset = try await pool.withConnection { conn in
                try await conn.query(
                    "SELECT current_setting('application_name') AS name, to_regclass('pg_temp.scratch') IS NULL AS gone"
                ).first!
            }
            #expect(reset["name"] != "changed")
            #expect(try reset.bool("gone"))
            // A connection the server ended (a restart, a terminated backend) is replaced before
            // it is lent: the next lease works at once, and no statement fails on a dead session.
            let pid = try await pool.withConnection { await $0.backendPID }
            try await admin.query("SELECT pg_terminate_backend($1, 30000)", [Int(pid)])
            let next = try await pool.withConnection { conn -> Int32 in
                try await conn.query("SELECT 1")
                return await conn.backendPID
            }
            #expect(next != pid)
            #expect(pool.openConnections == 1)
            await pool.close()
            await admin.close()
        }
    }

    @Test func aCancelledWaiterLeavesThePool() async throws {
        try await withTestDatabase { db in
            let pool = ConnectionPool(configuration: .init(conninfo: db.url, maximumConnections: 1))
            let holder = Task { try await pool.withConnection { try await $0.query("SELECT pg_sleep(1)") } }
            try await Task.sleep(for: .milliseconds(200))
            let waiter = Task { try await pool.withConnection { _ in } }
            try await Task.sleep(for: .milliseconds(100))
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
            _ = try await holder.value
            // The slot is free again for the next borrower.
            try await pool.withConnection { try await $0.query("SELECT 1") }
            await pool.close()
        }
    }

    @Test func retryPolicyRetriesOnlyTransientFailures() async throws {
        let attempts = Counter()
        let policy = RetryPolicy(backoff: Backoff(base: .milliseconds(1), max: .milliseconds(2)), maxAttempts: 3)
        await #expect(throws: PostgresError.self) {
            try await policy.run {
                attempts.add()
                throw PostgresError(code: .server, message: "deadlock", sqlState: .deadlockDetected)
            }
        }
        #expect(attempts.value == 3)
        attempts.reset()
        await #expect(throws: PostgresError.self) {
            try await policy.run {
                attempts.add()
                throw PostgresError(code: .connectionFailed, message: "password authentication failed for user \"x\"")
            }
        }
        #expect(attempts.value == 1)
    }
}

final class Counter: Sendable {
    private let state = Mutex(0)
    func add() { state.withLock { $0 += 1 } }
    func reset() { state.withLock { $0 = 0 } }
    var value: Int { state.withLock { $0 } }
}
