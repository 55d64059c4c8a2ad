import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

@testable import GodwitJobs

/// Writes a batched job file that increments `counter` for each row of `table`.
func counterJob(
    _ dir: TemporaryDirectory, table: String = "items", key: String = "id", extra: [String] = []
) throws -> String {
    try dir.write(
        "jobs/count_\(table).sql",
        (["-- godwit:batched", "-- table: \(table)", "-- key: \(key)"] + extra.map { "-- \($0)" } + [
            "UPDATE \(table) SET counter = counter + 1 WHERE \(key) BETWEEN $1 AND $2;"
        ]).joined(separator: "\n"))
}

func enqueue(_ file: String, _ url: String) async throws -> Int64 {
    let output = try await GodwitCommand.run(["job", "enqueue", file, "-D", url])
    guard output.status == 0, let id = Int64(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw TestSetupError(message: "enqueue failed: \(output.stderr)")
    }
    return id
}

func counters(_ conn: Connection, _ table: String = "items") async throws -> [Int: Int] {
    var histogram: [Int: Int] = [:]
    for row in try await conn.query("SELECT counter, count(*) AS n FROM \(table) GROUP BY counter").rows {
        histogram[try row.int("counter")] = try row.int("n")
    }
    return histogram
}

@Suite("Batched data migrations", .serialized)
struct BatchedJobTests {
    @Test(arguments: [
        ("bigint", "g::bigint * 7"),
        ("integer", "g"),
        ("uuid", "gen_random_uuid()"),
        ("text", "md5(g::text)"),
        ("timestamptz", "timestamptz '2024-01-01' + g * interval '1 second'"),
    ])
    func everyRowOnceForEachKeyType(type: String, value: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id \(type) PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT \(value) FROM generate_series(1, 5000) g;
                ANALYZE items;
                """)
            let id = try await enqueue(try counterJob(dir, extra: ["batch-size: 300", "target-batch-ms: 50"]), db.url)
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(try await counters(conn) == [1: 5000])
            let progress = try #require(try await conn.query("SELECT * FROM godwit.progress WHERE id = $1", [id]).first)
            #expect(try progress.string("state") == "succeeded")
            #expect(try progress.double("percent") == 100)
            #expect(try progress.int("rows_done") == 5000)
            #expect(try progress.int("rows_changed") == 5000)
            #expect(try progress.int("rows_total") == 5000)
            let batches = try await conn.query(
                "SELECT count(*) AS n, sum(rows) AS rows, count(*) FILTER (WHERE error IS NOT NULL) AS errors FROM godwit.batches WHERE job_id = $1",
                [id]
            ).first!
            #expect(try batches.int("rows") == 5000)
            #expect(try batches.int("errors") == 0)
            #expect(try batches.int("n") > 1)
        }
    }

    /// The batch function's own parameters and results (`job_id`, `lease`, `n`, `after_key`, ...)
    /// share a namespace with the table's columns in its bounds query: a key named like one of
    /// them is still the key.
    @Test(arguments: ["job_id", "n", "after_key", "batch_size"])
    func aKeyNamedLikeTheBatchFunctionsOwnNames(key: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (\(key) bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (\(key)) SELECT g FROM generate_series(1, 500) g;
                """)
            _ = try await enqueue(
                try counterJob(dir, key: key, extra: ["batch-size: 70", "max-batch-size: 70"]), db.url)
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(try await counters(conn) == [1: 500])
        }
    }

    @Test func anEmptyTableSucceedsAtOnce() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0)")
            let id = try await enqueue(try counterJob(dir), db.url)
            #expect(try await drainWorker(db.url).status == 0)
            let row = try #require(
                try await conn.query(
                    "SELECT state::text AS s, percent, rows_done FROM godwit.progress WHERE id = $1", [id]
                ).first)
            #expect(try row.string("s") == "succeeded")
            #expect(try row.double("percent") == 100)
            #expect(try row.int("rows_done") == 0)
        }
    }

    @Test func aTableThatGrowsDuringTheRun() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, counter int NOT NULL DEFAULT 0,
                                    original boolean NOT NULL DEFAULT false);
                INSERT INTO items (original) SELECT true FROM generate_series(1, 20000);
                """)
            let id = try await enqueue(
                try counterJob(dir, extra: ["batch-size: 200", "max-batch-size: 400", "pause-ms: 5"]), db.url)
            async let worker = drainWorker(db.url)
            let writer = try await db.connect()
            for _ in 0..<40 {
                try await writer.execute("INSERT INTO items (original) SELECT false FROM generate_series(1, 50)")
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await worker.status == 0)
            #expect(try await jobState(id, conn) == "succeeded")
            // Every row that was there at the start ran exactly once; none ran twice.
            #expect(
                try await conn.query("SELECT count(*) AS n FROM items WHERE original AND counter <> 1").first?.int("n")
                    == 0)
            #expect(try await conn.query("SELECT max(counter) AS m FROM items").first?.int("m") == 1)
            await writer.close()
        }
    }

    @Test func theCrashTestEveryRowExactlyOnceThroughTenKills() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 200000) g;
                ANALYZE items;
                """)
            let id = try await enqueue(
                try counterJob(
                    dir, extra: ["batch-size: 500", "target-batch-ms: 20", "max-batch-size: 1000", "pause-ms: 20"]),
                db.url)
            var kills = 0
            var batchesAtKill: [Int] = []
            while kills < 10 {
                let worker = try startWorker(db.url, ["--lease-timeout", "1"])
                // Wait until this worker holds the job (after rescuing it from the last one) and
                // has committed a batch of its own, then kill it at a random moment.
                let before = batchesAtKill.last ?? 0
                _ = try await eventually(timeout: .seconds(120)) {
                    let row = try await conn.query(
                        "SELECT j.state::text AS s, j.worker_id, p.batches_done FROM godwit.jobs j JOIN godwit.job_progress p ON p.job_id = j.id WHERE j.id = $1",
                        [id]
                    ).first!
                    let ours = row["worker_id"]?.contains(":\(worker.pid):") == true
                    let progressed = try row.int("batches_done") > before
                    return row["s"] == "succeeded" || (ours && progressed)
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
                if try await jobState(id, conn) == "succeeded" {
                    worker.signal(SIGTERM)
                    _ = try await worker.wait()
                    break
                }
                worker.signal(SIGKILL)
                _ = try await worker.wait()
                kills += 1
                batchesAtKill.append(
                    try await conn.query("SELECT batches_done FROM godwit.job_progress WHERE job_id = $1", [id]).first!
                        .int("batches_done"))
            }
            // In-process, with a lease of 10 s, not 30: it rescues the last killed worker's job
            // 10 s after its last heartbeat. Should its own heartbeat be held up as long, it
            // rescues and claims its own job again, which changes no row twice either.
            let finisher = inProcessWorker(db.url, ["--lease-timeout", "10"])
            // Until the job has ended: between the rescue of the last killed worker's job and the
            // finisher's claim it is briefly queued, which is not an end.
            _ = try await eventually(timeout: .seconds(120)) {
                ["succeeded", "failed", "cancelled"].contains(try await jobState(id, conn))
            }
            let lastError = try await conn.query("SELECT last_error FROM godwit.jobs WHERE id = $1", [id]).first?[
                "last_error"]
            let endState = try await jobState(id, conn)
            #expect(endState == "succeeded", "last error: \(lastError ?? "none")")
            _ = await finisher.stop()
            #expect(kills == 10, "the job finished before ten kills: make it longer")
            #expect(Set(batchesAtKill).count > 1, "kills landed at different points of the run")
            #expect(try await counters(conn) == [1: 200_000])
            let progress = try #require(
                try await conn.query("SELECT rows_done, attempts FROM godwit.progress WHERE id = $1", [id]).first)
            #expect(try progress.int("rows_done") == 200_000)
            #expect(try progress.int("attempts") >= 2)
        }
    }

    @Test func aStaleWorkersLateCheckpointChangesNothing() async throws {
        try await withQueue { db, conn, queue in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 100) g;
                """)
            let id = try await conn.query(
                "SELECT godwit.enqueue_batched('stale', 'items', 'id', 'UPDATE items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2', 10) AS id"
            ).first!.int64("id")
            let stale = try #require(try await queue.claim(limit: 1, workerID: "presumed-dead", on: conn).first)
            try await conn.execute("UPDATE godwit.jobs SET heartbeat_at = now() - interval '1 hour'")
            #expect(try await queue.rescueExpired(leaseTimeout: .seconds(30), on: conn) == [id])
            let current = try #require(try await queue.claim(limit: 1, workerID: "alive", on: conn).first)
            #expect(current.leaseToken > stale.leaseToken)
            // The stale holder wakes up and runs its next batch: the fence refuses it.
            let pool = ConnectionPool(configuration: .init(conninfo: db.url))
            let sessions = EnqueuerSessions(workerURL: db.url, workerRole: "postgres")
            let context = JobContext(
                job: stale, logger: .init(label: "test"), queue: queue, pool: pool, sessions: sessions,
                databaseURL: db.url)
            await #expect(throws: JobInterruption.leaseLost) { try await BatchedJob().run(context) }
            #expect(try await counters(conn) == [0: 100])
            let progress = try #require(
                try await conn.query("SELECT cursor, batches_done FROM godwit.job_progress WHERE job_id = $1", [id])
                    .first)
            #expect(progress["cursor"] == nil)
            #expect(try progress.int("batches_done") == 0)
            // The current holder runs the whole job.
            let fresh = JobContext(
                job: current, logger: .init(label: "test"), queue: queue, pool: pool, sessions: sessions,
                databaseURL: db.url)
            _ = try await BatchedJob().run(fresh)
            #expect(try await counters(conn) == [1: 100])
            await pool.close()
            await sessions.close()
        }
    }

    @Test func aHeldRowLockMakesTheBatchShrinkAndRetryUntilReleased() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 3000) g;
                """)
            let locker = try await db.connect()
            try await locker.execute("BEGIN; SELECT * FROM items WHERE id = 1500 FOR UPDATE;")
            let id = try await enqueue(
                try counterJob(dir, extra: ["batch-size: 1000", "lock-timeout: 100ms", "max-attempts: 50"]), db.url)
            async let worker = drainWorker(db.url)
            #expect(
                try await eventually {
                    try await conn.query(
                        "SELECT count(*) AS n FROM godwit.batches WHERE job_id = $1 AND error IS NOT NULL", [id]
                    )
                    .first!.int("n") >= 3
                })
            try await locker.execute("COMMIT")
            #expect(try await worker.status == 0)
            #expect(try await jobState(id, conn) == "succeeded")
            #expect(try await counters(conn) == [1: 3000])
            let failed = try await conn.query(
                "SELECT batch_size, error FROM godwit.batches WHERE job_id = $1 AND error IS NOT NULL ORDER BY id", [id]
            ).rows
            #expect(try failed.allSatisfy { try $0.string("error").contains("55P03") })
            let sizes = try failed.map { try $0.int("batch_size") }
            #expect(sizes.first! > sizes.last!, "the batch shrank: \(sizes)")
            await locker.close()
        }
    }

    @Test func aBatchThatKeepsFailingFailsTheJobWithItsBoundsAndRetryResumes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0 CHECK (counter < 2));
                INSERT INTO items (id) SELECT g FROM generate_series(1, 1000) g;
                UPDATE items SET counter = 1 WHERE id = 700;
                """)
            let id = try await enqueue(try counterJob(dir, extra: ["batch-size: 100", "max-batch-size: 100"]), db.url)
            _ = try await drainWorker(db.url)
            let row = try #require(
                try await conn.query("SELECT state::text AS s, last_error FROM godwit.jobs WHERE id = $1", [id]).first)
            #expect(try row.string("s") == "failed")
            #expect(try row.string("last_error").contains("batch 7 (keys 601..700)"), "\(row["last_error"] ?? "")")
            #expect(try row.string("last_error").contains("SQLSTATE 23514"))
            // Batches before the failing one are done and stay done.
            #expect(
                try await conn.query("SELECT count(*) AS n FROM items WHERE id <= 600 AND counter = 1").first?.int("n")
                    == 600)
            // Fix the data, retry: it resumes from the checkpoint, and nothing runs twice.
            try await conn.execute("UPDATE items SET counter = 0 WHERE id = 700")
            #expect(try await conn.query("SELECT godwit.retry($1) AS r", [id]).first?.bool("r") == true)
            _ = try await drainWorker(db.url)
            #expect(try await jobState(id, conn) == "succeeded")
            #expect(try await counters(conn) == [1: 1000])
        }
    }

    @Test func pauseAndResumeBetweenBatchesContinueFromTheCheckpoint() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 4000) g;
                """)
            let id = try await enqueue(
                try counterJob(dir, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 30"]), db.url)
            let worker = inProcessWorker(db.url)
            #expect(
                try await eventually {
                    try await conn.query("SELECT batches_done FROM godwit.job_progress WHERE job_id = $1", [id]).first!
                        .int("batches_done") >= 3
                })
            #expect(try await conn.query("SELECT godwit.pause($1) AS c", [id]).first?.bool("c") == true)
            #expect(try await eventually { try await jobState(id, conn) == "paused" })
            let done = try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [id]).first!.int(
                "rows_done")
            #expect(done > 0 && done < 4000)
            try await Task.sleep(for: .milliseconds(300))
            #expect(
                try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [id]).first!.int(
                    "rows_done") == done)
            let watch = GodwitCommand.start(["job", "watch", "\(id)", "-D", db.url, "--interval", "0.2"])
            #expect(try await conn.query("SELECT godwit.resume($1) AS c", [id]).first?.bool("c") == true)
            let watched = await watch.wait()
            #expect(watched.status == 0)
            #expect(watched.stdout.contains("succeeded  100.0%"), "\(watched.stdout)")
            #expect(try await counters(conn) == [1: 4000])
            _ = await worker.stop()
        }
    }

    @Test func badDefinitionsAreRefusedAtEnqueueAndNothingIsEnqueued() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, tag text, counter int NOT NULL DEFAULT 0);
                CREATE TABLE events (at timestamptz, counter int);
                CREATE VIEW items_view AS SELECT * FROM items;
                """)
            let header = "-- godwit:batched\n"
            let cases: [(String, String, String)] = [
                (
                    "missing_table",
                    header + "-- table: nope\n-- key: id\nUPDATE nope SET counter = 1 WHERE id BETWEEN $1 AND $2;",
                    "relation \"nope\" does not exist"
                ),
                (
                    "missing_key",
                    header + "-- table: items\n-- key: uid\nUPDATE items SET counter = 1 WHERE id BETWEEN $1 AND $2;",
                    "table items has no column \"uid\""
                ),
                (
                    "not_unique",
                    header + "-- table: items\n-- key: tag\nUPDATE items SET counter = 1 WHERE tag BETWEEN $1 AND $2;",
                    "key column \"tag\" of items is not unique"
                ),
                (
                    "no_index",
                    header + "-- table: events\n-- key: at\nUPDATE events SET counter = 1 WHERE at BETWEEN $1 AND $2;",
                    "key column \"at\" of events is not unique"
                ),
                (
                    "a_view",
                    header
                        + "-- table: items_view\n-- key: id\nUPDATE items SET counter = 1 WHERE id BETWEEN $1 AND $2;",
                    "items_view is a view, not a table"
                ),
                (
                    "syntax",
                    header
                        + "-- table: items\n-- key: id\n\nUPDATE items\nSETT counter = 1\nWHERE id BETWEEN $1 AND $2;",
                    "syntax.sql:6: syntax error at or near \"counter\""
                ),
                (
                    "third_param",
                    header + "-- table: items\n-- key: id\nUPDATE items SET counter = $3 WHERE id BETWEEN $1 AND $2;",
                    "the statement must use $1 and $2"
                ),
                (
                    "missing_column",
                    header + "-- table: items\n-- key: id\nUPDATE items SET countr = 1 WHERE id BETWEEN $1 AND $2;",
                    "column \"countr\" of relation \"items\" does not exist"
                ),
            ]
            for (name, text, expected) in cases {
                let file = try dir.write("jobs/\(name).sql", text)
                let output = try await GodwitCommand.run(["job", "enqueue", file, "-D", db.url])
                #expect(output.status == 1, "\(name)")
                #expect(output.stderr.hasPrefix("error: \(file):"), "\(name): \(output.stderr)")
                #expect(output.stderr.contains(expected), "\(name): \(output.stderr)")
                #expect(output.stderr.split(separator: "\n").count == 1)
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
            // The same checks guard the SQL function.
            await #expect(throws: PostgresError.self) {
                try await conn.query(
                    "SELECT godwit.enqueue_batched('x', 'items', 'tag', 'UPDATE items SET counter = 1 WHERE tag BETWEEN $1 AND $2')"
                )
            }
            let only1 = await #expect(throws: PostgresError.self) {
                try await conn.query(
                    "SELECT godwit.enqueue_batched('x', 'items', 'id', 'UPDATE items SET counter = 1 WHERE id >= $1')")
            }
            #expect(only1?.message.contains("must use $1 and $2") == true)
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
        }
    }
}
