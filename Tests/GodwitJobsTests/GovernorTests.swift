import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

@testable import GodwitJobs

/// Polls until `condition` holds, or fails the test naming what it waited for.
func waitUntil(
    _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws {
    guard try await eventually(timeout: timeout, condition) else {
        throw TestSetupError(message: "timed out waiting until \(what)")
    }
}

/// The backfill governor: batch sizes steered by the waits they cause, the health holds, and
/// what a batch costs in round trips.
@Suite("Backfill governor", .serialized)
struct GovernorTests {
    // MARK: Against PostgreSQL

    /// `items` 1...1000, with a `probe` column for the application's own updates.
    func createItemsWithProbe(_ conn: Connection) async throws {
        try await conn.execute(
            """
            CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0, probe int NOT NULL DEFAULT 0);
            INSERT INTO items (id) SELECT g FROM generate_series(1, 1000) g;
            """)
    }

    /// A session that keeps updating the first row of the batch in flight while each batch holds
    /// its rows for 100 ms: the batches see it waiting, record it, and shrink.
    @Test func aSessionWaitingOnABatchIsRecordedAndTheNextBatchIsSmaller() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await createItemsWithProbe(conn)
            let file = try dir.write(
                "jobs/slow.sql",
                """
                -- godwit:batched
                -- table: items
                -- key: id
                -- batch-size: 100
                -- min-batch-size: 25
                -- max-batch-size: 100
                -- max-lock-wait-ms: 10
                WITH u AS (UPDATE items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2 RETURNING id)
                SELECT count(*), pg_sleep(0.1) FROM u
                """)
            let id = try await enqueue(file, db.url)
            let probe = try await db.connect()
            // The row right after the checkpoint: the first of the batch in flight, if one is.
            let prober = Task {
                while !Task.isCancelled {
                    _ = try? await probe.query(
                        """
                        UPDATE items SET probe = probe + 1
                        WHERE id = (SELECT coalesce(cursor::bigint, 0) + 1 FROM godwit.job_progress WHERE job_id = $1)
                        """, [id])
                }
            }
            // The probe is running before the first batch is.
            try await waitUntil("the probe runs") {
                try await conn.query("SELECT sum(probe) AS n FROM items").first?.int("n") ?? 0 > 0
            }
            let output = try await drainWorker(db.url)
            prober.cancel()
            _ = await prober.result
            await probe.close()
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(try await counters(conn) == [1: 1000])
            let batches = try await conn.query(
                "SELECT seq, batch_size, lock_waiters, lock_wait_ms FROM godwit.batches WHERE job_id = $1 AND error IS NULL ORDER BY seq",
                [id]
            ).rows.map {
                (try $0.int("seq"), try $0.int("batch_size"), try $0.int("lock_waiters"), try $0.double("lock_wait_ms"))
            }
            let harmful = try #require(batches.firstIndex { $0.3 > 10 }, "no batch saw a wait: \(batches)")
            #expect(batches[harmful].2 >= 1)
            if harmful + 1 < batches.count {
                #expect(batches[harmful + 1].1 < batches[harmful].1, "\(batches)")
            }
            let progress = try #require(try await conn.query("SELECT * FROM godwit.progress WHERE id = $1", [id]).first)
            #expect(try progress.int("lock_waits") == batches.map(\.2).reduce(0, +))
            #expect(try progress.double("lock_wait_ms_max") == batches.map(\.3).max())
            #expect(try progress.double("lock_wait_ms_total") >= progress.double("lock_wait_ms_max"))
        }
    }

    /// An application transaction holds row 550 while the job runs. Instead of waiting for it
    /// with the rest of its batch locked (a convoy for every session that wants one of those
    /// rows), a batch gives up after max-lock-wait-ms, is halved and retried, down to one row:
    /// the job commits every row before 550 while 550 is held, and then waits for that row alone.
    @Test func aBatchGivesUpOnARowTheApplicationHoldsAndCommitsUpToIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await createItemsWithProbe(conn)
            let app = try await db.connect()
            defer { Task { await app.close() } }
            try await app.execute("BEGIN; UPDATE items SET probe = 1 WHERE id = 550")
            let id = try await enqueue(
                try counterJob(
                    dir, extra: ["batch-size: 100", "min-batch-size: 1", "max-lock-wait-ms: 10", "lock-timeout: 5s"]),
                db.url)
            // In-process: a failure before the end cancels the worker with the test's task.
            async let worker = drainWorker(db.url)
            try await waitUntil("the job has committed every row before the held one", timeout: .seconds(60)) {
                try await conn.query("SELECT cursor FROM godwit.job_progress WHERE job_id = $1", [id]).first?["cursor"]
                    == "549"
            }
            // Down to the held row alone, the batch waits longer each time (it holds no other row).
            try await waitUntil("a one-row batch waits for the held row") {
                try await conn.query("SELECT size_reason FROM godwit.progress WHERE id = $1", [id]).first?[
                    "size_reason"]?
                    .hasPrefix("1 row: at min-batch-size, waiting up to") == true
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM items WHERE counter = 1").first?.int("n") == 549)
            // No row before the held one is locked by the job: all of them can be taken at once.
            try await conn.execute(
                "BEGIN; SET LOCAL lock_timeout = '1s'; SELECT id FROM items WHERE id < 550 FOR UPDATE; ROLLBACK")
            let failed = try await conn.query(
                "SELECT batch_size, error FROM godwit.batches WHERE job_id = $1 AND error IS NOT NULL ORDER BY id", [id]
            ).rows.map { (try $0.int("batch_size"), $0["error"] ?? "") }
            #expect(!failed.isEmpty)
            #expect(failed.allSatisfy { $0.1.contains("lock timeout") }, "\(failed)")
            #expect(failed.contains { $0.0 == 1 }, "\(failed)")
            try await app.execute("COMMIT")
            let output = try await worker
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(try await counters(conn) == [1: 1000])
            #expect(
                try await conn.query("SELECT state FROM godwit.jobs WHERE id = $1", [id]).first?["state"] == "succeeded"
            )
        }
    }

    /// A batch looks at the lock table as it ends: another session holding the table to write
    /// (here an open transaction's ROW EXCLUSIVE lock) makes the job steer to the knee and say
    /// so; with nobody else there (after the attempt's first second) it climbs, and says that.
    @Test func theJobSaysWhetherOtherSessionsUseTheTable() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 100) g;
                CREATE TABLE others (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO others (id) SELECT g FROM generate_series(1, 1500) g;
                """)
            let app = try await db.connect()
            defer { Task { await app.close() } }
            try await app.execute("BEGIN; LOCK TABLE items IN ROW EXCLUSIVE MODE")
            let shared = try await enqueue(try counterJob(dir, extra: ["batch-size: 10"]), db.url)
            // Until a batch has seen someone, the table counts as shared for the attempt's first
            // second: this job takes longer (150 batches of 20 ms).
            let alone = try await enqueue(
                try dir.write(
                    "jobs/others.sql",
                    """
                    -- godwit:batched
                    -- table: others
                    -- key: id
                    -- batch-size: 10
                    -- min-batch-size: 10
                    -- max-batch-size: 10
                    WITH pause AS (SELECT pg_sleep(0.02))
                    UPDATE others SET counter = counter + 1 FROM pause WHERE id BETWEEN $1 AND $2
                    """), db.url)
            let output = try await drainWorker(db.url)
            try await app.execute("ROLLBACK")
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            func reason(_ id: Int64) async throws -> String {
                try await conn.query("SELECT size_reason FROM godwit.progress WHERE id = $1", [id]).first?[
                    "size_reason"] ?? "nil"
            }
            let sharedReason = try await reason(shared)
            let aloneReason = try await reason(alone)
            #expect(sharedReason.contains("other sessions are using the table"), "\(sharedReason)")
            #expect(aloneReason.contains("nobody else is using the table"), "\(aloneReason)")
        }
    }

    @Test func theWorkersHealthQueryHoldsTheJobWhileItIsFalse() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 200) g;
                CREATE TABLE maintenance (since timestamptz);
                INSERT INTO maintenance VALUES (now());
                """)
            let id = try await enqueue(try counterJob(dir, extra: ["batch-size: 20"]), db.url)
            let worker = inProcessWorker(
                db.url, ["--health-query", "SELECT NOT EXISTS (SELECT FROM public.maintenance)"])
            try await waitUntil("the job holds") {
                try await conn.query("SELECT hold_reason FROM godwit.progress WHERE id = $1", [id]).first?[
                    "hold_reason"]
                    == "the worker's health query returned false"
            }
            #expect(try await counters(conn) == [0: 200])
            #expect(try await jobState(id, conn) == "running")
            try await conn.execute("DELETE FROM maintenance")
            try await waitUntil("the job succeeds") { try await jobState(id, conn) == "succeeded" }
            #expect(try await counters(conn) == [1: 200])
            #expect(
                try await conn.query("SELECT hold_reason FROM godwit.progress WHERE id = $1", [id]).first?[
                    "hold_reason"] == nil)
            _ = await worker.stop()
        }
    }

    /// The job's own health query runs with the enqueuer's rights; while it fails, the job holds
    /// and says why.
    @Test func theJobsHealthQueryRunsAsItsEnqueuerAndHoldsWhileItFails() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 200) g;
                CREATE TABLE gate (open boolean);
                INSERT INTO gate VALUES (NULL);
                CREATE FUNCTION gate_open() RETURNS boolean LANGUAGE plpgsql AS $$
                BEGIN
                    IF (SELECT open FROM gate) IS NULL THEN RAISE EXCEPTION 'gate unknown'; END IF;
                    RETURN (SELECT open FROM gate);
                END $$;
                """)
            let file = try counterJob(
                dir,
                extra: ["batch-size: 20", "health-query: SELECT public.gate_open() AND current_user = session_user"])
            let id = try await enqueue(file, db.url)
            let worker = inProcessWorker(db.url)
            func holdReason() async throws -> String? {
                try await conn.query("SELECT hold_reason FROM godwit.progress WHERE id = $1", [id]).first?[
                    "hold_reason"]
            }
            let held = try await eventually { try await holdReason() == "the job's health query failed: gate unknown" }
            let reason = try await holdReason()
            #expect(held, "hold reason \(String(describing: reason)); worker: \(worker.currentStderr.suffix(1500))")
            try await conn.execute("UPDATE gate SET open = false")
            try await waitUntil("the job holds on false") {
                try await holdReason() == "the job's health query returned false"
            }
            #expect(try await counters(conn) == [0: 200])
            try await conn.execute("UPDATE gate SET open = true")
            try await waitUntil("the job succeeds") { try await jobState(id, conn) == "succeeded" }
            #expect(try await counters(conn) == [1: 200])
            _ = await worker.stop()
        }
    }

    @Test(arguments: [
        ("health-query: SELECT 1; SELECT 2", "`health-query` must be one query"),
        ("health-query: SELECT 1, 2", "subquery must return only one column"),
        ("health-query: SELECT no_such_column FROM items", "no_such_column"),
        ("max-lock-wait-ms: soon", "`max-lock-wait-ms` must be a whole number"),
    ])
    func badHealthQueriesAndLimitsAreRefusedAtEnqueue(directive: String, message: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0)")
            let output = try await GodwitCommand.run([
                "job", "enqueue", try counterJob(dir, extra: [directive]), "-D", db.url,
            ])
            #expect(output.status == 1)
            #expect(output.stderr.contains("count_items.sql:"), "\(output.stderr)")
            #expect(output.stderr.contains(message), "\(output.stderr)")
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
        }
    }

    /// WAL archiving that falls behind holds the job; once it catches up the job goes on.
    @Test func aWALArchiveBacklogHoldsTheJob() async throws {
        let archive = try TemporaryDirectory()
        defer { archive.delete() }
        // The server (the postgres OS user when we are root) writes the archive.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: archive.path)
        let stop = archive.path + "/stop"
        let cluster = try await PrivateCluster(settings: [
            "archive_mode = on",
            "archive_command = 'test ! -f \(stop) && cp %p \(archive.path)/%f'",
            "wal_level = replica",
        ])
        defer { Task { await cluster.destroy() } }
        let conn = try await Connection.connect(cluster.url)
        defer { Task { await conn.close() } }
        try await QueueSchema.withJobs().install(on: conn)
        try await conn.execute(
            """
            CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
            INSERT INTO items (id) SELECT g FROM generate_series(1, 100) g;
            """)
        // One segment archived, then archiving fails while three more fill up.
        try await conn.query("SELECT pg_switch_wal()")
        try await waitUntil("a segment is archived") {
            try await conn.query("SELECT last_archived_wal IS NOT NULL AS a FROM pg_stat_archiver").first?.bool("a")
                == true
        }
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        for _ in 0..<3 {
            try await conn.execute("CREATE TABLE filler AS SELECT 1 AS x; DROP TABLE filler")
            try await conn.query("SELECT pg_switch_wal()")
        }
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let id = try await enqueue(try counterJob(dir, extra: ["batch-size: 10"]), cluster.url)
        let worker = inProcessWorker(cluster.url, ["--max-archive-backlog", "2"])
        try await waitUntil("the job holds") {
            try await conn.query("SELECT hold_reason FROM godwit.progress WHERE id = $1", [id]).first?["hold_reason"]
                .map { $0.hasPrefix("WAL archiving is ") && $0.hasSuffix(" segments behind (more than 2)") } == true
        }
        #expect(try await counters(conn) == [0: 100])
        try FileManager.default.removeItem(atPath: stop)
        try await conn.query("SELECT pg_switch_wal()")  // wakes the archiver
        try await waitUntil("the job succeeds", timeout: .seconds(90)) { try await jobState(id, conn) == "succeeded" }
        #expect(try await counters(conn) == [1: 100])
        _ = await worker.stop()
    }

    /// Every batch is one round trip in the enqueuer's session: one message with the timeouts,
    /// the fence, the batch with its checkpoint, and the commit. Counted from the server's
    /// statement log.
    @Test func aBatchCostsOneRoundTrip() async throws {
        let cluster = try await PrivateCluster(settings: ["log_statement = 'all'", "log_line_prefix = '%p|'"])
        defer { Task { await cluster.destroy() } }
        let conn = try await Connection.connect(cluster.url)
        defer { Task { await conn.close() } }
        try await QueueSchema.withJobs().install(on: conn)
        try await conn.execute(
            """
            CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
            INSERT INTO items (id) SELECT g FROM generate_series(1, 3000) g;
            """)
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let id = try await enqueue(
            try counterJob(dir, extra: ["batch-size: 50", "min-batch-size: 50", "max-batch-size: 50"]), cluster.url)
        let output = try await drainWorker(cluster.url)
        #expect(output.status == 0, "\(output.stderr.suffix(1500))")
        #expect(try await counters(conn) == [1: 3000])
        let batches = try #require(
            try await conn.query("SELECT batches_done FROM godwit.progress WHERE id = $1", [id]).first?.int(
                "batches_done"))
        #expect(batches == 60)
        // Each message the job's session sent is one "statement:" or "execute" entry; an entry
        // starts with "pid|" and runs over the lines of its statement.
        var entries: [String] = []
        for line in try String(contentsOfFile: cluster.serverLog, encoding: .utf8).split(separator: "\n") {
            if line.prefix(while: \.isNumber).count > 0, line.drop(while: \.isNumber).first == "|" {
                entries.append(String(line))
            } else if !entries.isEmpty {
                entries[entries.count - 1] += "\n" + line
            }
        }
        let lines = entries.filter { $0.contains("LOG:  statement: ") || $0.contains("LOG:  execute ") }
        let batchLines = lines.filter { $0.contains("FROM pg_temp.godwit_batch(") }
        let pid = try #require(batchLines.first.map { $0.prefix { $0 != "|" } })
        let session = lines.filter { $0.hasPrefix(pid + "|") }
        let first = try #require(session.firstIndex { $0.contains("FROM pg_temp.godwit_batch(") })
        let last = try #require(session.lastIndex { $0.contains("FROM pg_temp.godwit_batch(") })
        #expect(batchLines.allSatisfy { $0.contains("SET LOCAL lock_timeout") && $0.hasSuffix("COMMIT") })
        // One a batch, nothing between them: the hold checks, the trims and the progress row go
        // over the worker's own connections.
        #expect(batchLines.count == 61, "60 batches and the empty one that ends the job")
        #expect(last - first + 1 == batchLines.count, "\(last - first + 1) messages for \(batchLines.count) batches")
    }

    // MARK: Refusals

    @Test func aStatementThatComparesTheKeyUnderAnotherCollationIsRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (k text COLLATE "C" PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (k) SELECT md5(g::text) FROM generate_series(1, 300) g;
                """)
            func file(_ condition: String) throws -> String {
                try dir.write(
                    "jobs/collate.sql",
                    "-- godwit:batched\n-- table: items\n-- key: k\nUPDATE items SET counter = counter + 1\nWHERE \(condition);\n"
                )
            }
            for condition in [
                #"k COLLATE "en-x-icu" BETWEEN $1 AND $2"#, #"k >= $1 COLLATE "en-x-icu" AND k <= $2"#,
                #"(k)::text COLLATE pg_catalog."en-x-icu" BETWEEN $1 AND $2"#,
            ] {
                let output = try await GodwitCommand.run(["job", "enqueue", try file(condition), "-D", db.url])
                #expect(output.status == 1, "\(condition)")
                #expect(output.stderr.contains("collate.sql:5: "), "\(output.stderr)")
                #expect(
                    output.stderr.contains(#"under collation "en-x-icu", not the key's own ("C")"#), "\(output.stderr)")
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
            for condition in [
                #"k COLLATE "C" BETWEEN $1 AND $2"#,
                #"k BETWEEN $1 AND $2 AND counter::text COLLATE "en-x-icu" <> 'x'"#,
            ] {
                let output = try await GodwitCommand.run(["job", "enqueue", try file(condition), "-D", db.url])
                #expect(output.status == 0, "\(condition): \(output.stderr)")
            }
            try await conn.execute("DELETE FROM godwit.jobs")
            // Enqueued from SQL, it is refused by the worker before any batch.
            let id = try await conn.query(
                #"SELECT godwit.enqueue_batched('collate', 'items', 'k', 'UPDATE items SET counter = counter + 1 WHERE k COLLATE "en-x-icu" BETWEEN $1 AND $2') AS id"#
            ).first!.int64("id")
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            let result = try await outcome(of: id, conn)
            #expect(result.state == "failed")
            #expect(result.error.contains(#"under collation "en-x-icu", not the key's own ("C")"#), "\(result.error)")
            #expect(try await counters(conn) == [0: 300])
        }
    }
}
