import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("Connection")
struct ConnectionTests {
    @Test func parameterisedQueryReturnsTypedRows() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let result = try await conn.query(
                "SELECT $1::int + 1 AS n, $2::text AS s, $3::text IS NULL AS null_param, $4::bool AS b",
                [41, "it's \"quoted\"", String?.none, true])
            let row = try #require(result.first)
            #expect(try row.int("n") == 42)
            #expect(try row.string("s") == "it's \"quoted\"")
            #expect(try row.bool("null_param"))
            #expect(try row.bool("b"))
            #expect(result.columns == ["n", "s", "null_param", "b"])
            await conn.close()
        }
    }

    @Test func byteaRoundTrip() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let bytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xff, 0x5c]
            let row = try #require(
                try await conn.query("SELECT $1::bytea AS b, length($1::bytea) AS n", [ByteaParameter(bytes)]).first)
            #expect(try row.bytes("b") == bytes)
            #expect(try row.int("n") == bytes.count)
        }
    }

    @Test func multiStatementScriptRunsInOrder() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let results = try await conn.execute(
                "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2); SELECT count(*) AS n FROM t;")
            #expect(results.count == 3)
            #expect(results[1].affectedRows == 2)
            #expect(try results[2].first?.int("n") == 2)
        }
    }

    @Test func serverErrorCarriesSQLStatePositionAndHint() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            do {
                try await conn.execute("SELECT 1;\nSELECT nosuchcolumn FROM pg_class;")
                Issue.record("expected an error")
            } catch let error as PostgresError {
                #expect(error.code == .server)
                #expect(error.sqlState == .undefinedColumn)
                #expect(error.message.contains("nosuchcolumn"))
                #expect(error.position == 18)
                #expect(error.description.contains("SQLSTATE 42703"))
            }
            // The connection stays usable after an error.
            #expect(try await conn.query("SELECT 1 AS one").first?.int("one") == 1)
        }
    }

    @Test func noticesAreCollectedNotPrinted() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$")
            let notices = await conn.takeNotices()
            #expect(notices.map(\.message) == ["hello 42", "careful"])
            #expect(notices.map(\.severity) == ["NOTICE", "WARNING"])
            #expect(await conn.takeNotices().isEmpty)
        }
    }

    /// Uncancelled, the query would sleep for an hour: the time limit fails a cancel that does
    /// not reach the server, and the server itself shows the session idle again.
    @Test(.timeLimit(.minutes(3))) func cancellingTheTaskCancelsTheQuery() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let observer = try await db.connect()
            let pid = await conn.backendPID
            let task = Task { try await conn.query("SELECT pg_sleep(3600)") }
            #expect(
                try await eventually {
                    try await observer.query(
                        "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'",
                        [pid]
                    ).first != nil
                })
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(
                try await eventually {
                    try await observer.query("SELECT state FROM pg_stat_activity WHERE pid = $1", [pid]).first?.string(
                        "state")
                        == "idle"
                })
            // The session is usable.
            #expect(try await conn.query("SELECT 2 AS two").first?.int("two") == 2)
            await observer.close()
        }
    }

    @Test func aCancelledTaskDoesNotStartItsQuery() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE marks (n int)")
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await conn.query("INSERT INTO marks VALUES (1)")
            }
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await conn.query("SELECT count(*) AS n FROM marks").first?.int("n") == 0)
        }
    }

    @Test func listenReceivesNotificationsAndTimesOut() async throws {
        try await withTestDatabase { db in
            let listener = try await db.connect()
            let sender = try await db.connect()
            try await listener.listen("godwit test")
            #expect(try await listener.notifications(timeout: .milliseconds(50)).isEmpty)
            try await sender.query("SELECT pg_notify('godwit test', $1)", ["payload-1"])
            let received = try await listener.notifications(timeout: .seconds(10))
            #expect(received.map(\.payload) == ["payload-1"])
            #expect(received.first?.channel == "godwit test")
            #expect(received.first?.senderPID == (await sender.backendPID))
        }
    }

    @Test func theNotificationSequenceHandsOutEachInOrder() async throws {
        try await withTestDatabase { db in
            let listener = try await db.connect()
            let sender = try await db.connect()
            try await listener.listen("godwit test")
            // Three in one transaction arrive together; the sequence hands them out one by one.
            try await sender.execute(
                "BEGIN; SELECT pg_notify('godwit test', 'a'); SELECT pg_notify('godwit test', 'b'); "
                    + "SELECT pg_notify('godwit test', 'c'); COMMIT")
            var payloads: [String] = []
            for try await notification in listener.notifications(pingingAfter: .milliseconds(100)) {
                payloads.append(notification.payload)
                if payloads.count == 3 { break }
            }
            #expect(payloads == ["a", "b", "c"])
        }
    }

    @Test func theNotificationSequenceEndsWithAnErrorWhenItsQuietSessionDies() async throws {
        try await withTestDatabase { db in
            let listener = try await db.connect()
            let admin = try await db.connect()
            try await listener.listen("nobody_sends")
            let pid = await listener.backendPID
            try await admin.query("SELECT pg_terminate_backend($1)", [pid])
            // Nothing ever arrives: only the ping after 100 ms of quiet finds the session gone.
            await #expect(throws: PostgresError.self) {
                for try await _ in listener.notifications(pingingAfter: .milliseconds(100)) {}
            }
        }
    }

    @Test func waitingForNotificationsEndsOnCancellation() async throws {
        try await withTestDatabase { db in
            let listener = try await db.connect()
            try await listener.listen("nobody_sends")
            let task = Task { try await listener.notifications(timeout: nil) }
            try await Task.sleep(for: .milliseconds(100))
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
        }
    }

    @Test func terminatedBackendIsReportedAsConnectionLost() async throws {
        try await withTestDatabase { db in
            let victim = try await db.connect()
            let killer = try await db.connect()
            try await killer.query("SELECT pg_terminate_backend($1)", [await victim.backendPID])
            do {
                try await victim.query("SELECT 1")
                Issue.record("expected the query to fail")
            } catch let error as PostgresError {
                #expect(error.code == .connectionLost || error.sqlState == .adminShutdown)
                #expect(error.isTransient)
            }
        }
    }

    @Test func passwordNeverAppearsInErrors() async throws {
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let secret = "s3cret-\(UInt32.random(in: 0...UInt32.max))"
            let role = "pw_\(UInt32.random(in: 0...UInt32.max))"
            try await admin.execute("CREATE ROLE \(quoteIdentifier(role)) LOGIN PASSWORD \(quoteLiteral(secret))")
            defer { Task { try? await admin.execute("DROP ROLE IF EXISTS \(quoteIdentifier(role))") } }
            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = secret + "-wrong"
            let wrongURL = try #require(components.string)
            do {
                _ = try await Connection.connect(wrongURL)
                Issue.record("expected authentication to fail")
            } catch let error as PostgresError {
                #expect(error.code == .connectionFailed)
                #expect(!error.description.contains(secret))
                #expect(error.description.contains("password authentication failed"))
            }
            components.password = secret
            let goodURL = try #require(components.string)
            let conn = try await Connection.connect(goodURL)
            #expect(try await conn.query("SELECT current_user AS u").first?.string("u") == role)
            await conn.close()
            #expect(!ConnectionString.redacted(goodURL).contains(secret))
            #expect(ConnectionString.redacted("host=x password=\(secret) dbname=y").contains("********"))
        }
    }

    @Test func connectRetriesUntilTheTimeout() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        // A port nothing listens on: every attempt is refused at once, so only the retry loop
        // can make this take time.
        await #expect(throws: PostgresError.self) {
            _ = try await Connection.connect(
                "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=1", retryingFor: .milliseconds(700))
        }
        #expect(clock.now - started >= .milliseconds(300))
    }

    @Test func libpqCallsDoNotBlockTheCooperativePool() async throws {
        // Four sleeping queries at once on a machine whose pool has two threads: if the
        // libpq calls ran on the pool, the probe task below could not run until they finish.
        // What is compared is order, not time: the probe must run while all four still sleep,
        // which a loaded machine delays but does not reverse.
        try await withTestDatabase { db in
            var connections: [Connection] = []
            for _ in 0..<4 { connections.append(try await db.connect()) }
            let finished = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for conn in connections {
                    group.addTask {
                        try await conn.query("SELECT pg_sleep(5)")
                        finished.add()
                    }
                }
                try await Task.sleep(for: .milliseconds(200))
                let probe = Task { finished.value }
                let finishedWhenProbeRan = await probe.value
                #expect(finishedWhenProbeRan == 0, "the probe waited for the sleeping queries")
                try await group.waitForAll()
            }
        }
    }
}
