import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

@testable import GodwitJobs

/// A parallel job's shards, in key order: id, state, bounds and progress.
struct Shard {
    var id: Int64
    var state: String
    var lower: String?
    var upper: String?
    var rowsDone: Int
}

func shards(of parent: Int64, _ conn: Connection) async throws -> [Shard] {
    try await conn.query(
        """
        SELECT j.id, j.state::text AS state, j.payload->>'lower' AS lower, j.payload->>'upper' AS upper, p.rows_done
        FROM godwit.jobs j JOIN godwit.progress p ON p.id = j.id WHERE j.parent_id = $1 ORDER BY (j.payload->>'shard')::int
        """, [parent]
    ).rows.map {
        Shard(
            id: try $0.int64("id"), state: try $0.string("state"), lower: $0["lower"], upper: $0["upper"],
            rowsDone: try $0.int("rows_done"))
    }
}

/// How many rows of `items` fall in each shard's key range, read with the key's own type.
func rowsPerShard(_ parent: Int64, type: String, _ conn: Connection) async throws -> [Int] {
    try await conn.query(
        """
        SELECT (SELECT count(*) FROM items i
                WHERE (j.payload->>'lower' IS NULL OR i.id > (j.payload->>'lower')::\(type))
                  AND (j.payload->>'upper' IS NULL OR i.id <= (j.payload->>'upper')::\(type))) AS n
        FROM godwit.jobs j WHERE j.parent_id = $1 ORDER BY (j.payload->>'shard')::int
        """, [parent]
    ).rows.map { try $0.int("n") }
}

/// A counter backfill of `items` split into `parallel` shards, enqueued with the CLI.
func enqueueParallel(
    _ dir: TemporaryDirectory, _ url: String, parallel: Int, extra: [String] = []
) async throws -> Int64 {
    try await enqueue(try counterJob(dir, extra: ["parallel: \(parallel)"] + extra), url)
}

@Suite("One backfill over many workers (parallel shards)", .serialized)
struct ShardTests {
    @Test(arguments: [
        ("smallint", "g::smallint"),
        ("integer", "g * 3"),
        ("bigint", "g::bigint * 1000003"),
        ("uuid", "gen_random_uuid()"),
        ("text", "md5(g::text)"),
        ("varchar", "('k' || g)::varchar"),
        ("timestamptz", "timestamptz '2024-01-01' + g * interval '1.5 second'"),
    ])
    func splitPointsFromASampleInKeyOrderOnEveryKeyType(type: String, value: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, queue in
            try await conn.execute(
                """
                CREATE TABLE items (id \(type) PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT \(value) FROM generate_series(1, 6000) g;
                ANALYZE items;
                """)
            // The caller's DateStyle does not reach the split points: they are read back in ISO.
            try await conn.execute("SET DateStyle = 'SQL, DMY'")
            let parent = try await enqueueParallel(dir, db.url, parallel: 3, extra: ["batch-size: 200"])
            let split = try await shards(of: parent, conn)
            #expect(split.count == 3)
            #expect(split.first?.lower == nil && split.last?.upper == nil)
            for (a, b) in zip(split, split.dropFirst()) { #expect(a.upper == b.lower) }
            // Contiguous, disjoint, and about a third each.
            let counts = try await rowsPerShard(parent, type: type, conn)
            #expect(counts.reduce(0, +) == 6000, "\(counts)")
            #expect(counts.allSatisfy { $0 > 1000 && $0 < 3000 }, "\(counts)")
            // The parent is never claimable: a claim takes shards only.
            #expect(try await jobState(parent, conn) == "running")
            let claimed = try await queue.claim(limit: 10, workerID: "probe", on: conn)
            #expect(Set(claimed.map(\.id)) == Set(split.map(\.id)))
            try await conn.execute(
                "UPDATE godwit.jobs SET state = 'queued', worker_id = NULL, attempts = 0 WHERE parent_id = \(parent)")
            // Two workers share the shards; drain ends when the shards are done.
            async let first = drainWorker(db.url, ["--concurrency", "2"])
            async let second = drainWorker(db.url, ["--concurrency", "2"])
            for output in try await [first, second] {
                #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            }
            #expect(try await counters(conn) == [1: 6000])
            #expect(try await jobState(parent, conn) == "succeeded")
            let done = try await shards(of: parent, conn)
            #expect(done.map(\.state) == ["succeeded", "succeeded", "succeeded"])
            #expect(done.map(\.rowsDone) == counts, "each shard did its own range and no more")
        }
    }

    @Test func aTinyTableMakesFewerShardsNeverOverlappingOnesAndAnEmptyShardSucceeds() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) VALUES (1), (2);
                ANALYZE items;
                """)
            // Four shards asked of two rows: the split points repeat, and repeats are dropped.
            let parent = try await enqueueParallel(dir, db.url, parallel: 4)
            let split = try await shards(of: parent, conn)
            #expect(split.count <= 3 && split.count >= 2, "\(split.map { ($0.lower, $0.upper) })")
            let uppers = split.compactMap(\.upper)
            #expect(Set(uppers).count == uppers.count)
            #expect(try await rowsPerShard(parent, type: "bigint", conn).reduce(0, +) == 2)
            // Rows added beyond the last split point after enqueue belong to the last shard.
            try await conn.execute("INSERT INTO items (id) VALUES (100), (101)")
            #expect(try await drainWorker(db.url).status == 0)
            #expect(try await counters(conn) == [1: 4])
            #expect(try await jobState(parent, conn) == "succeeded")
            let progress = try #require(
                try await conn.query("SELECT rows_done, percent FROM godwit.progress WHERE id = $1", [parent]).first)
            #expect(try progress.int("rows_done") == 4)
            #expect(try progress.double("percent") == 100)
        }
    }

    @Test func aShardWhoseRowsWereDeletedSucceedsEmpty() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 3000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(dir, db.url, parallel: 3)
            let middle = try await shards(of: parent, conn)[1]
            try await conn.query(
                "DELETE FROM items WHERE id > $1::bigint AND id <= $2::bigint", [middle.lower, middle.upper])
            #expect(try await drainWorker(db.url).status == 0)
            let done = try await shards(of: parent, conn)
            #expect(done.map(\.state) == ["succeeded", "succeeded", "succeeded"])
            #expect(done[1].rowsDone == 0)
            #expect(try await jobState(parent, conn) == "succeeded")
            #expect(try await counters(conn) == [1: 3000 - (Int(middle.upper!)! - Int(middle.lower!)!)])
        }
    }

    @Test func progressShowsTheParentAsTheSumOfItsShardsWithEachShardBeneathIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 9000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(
                dir, db.url, parallel: 3, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 50"])
            let worker = inProcessWorker(db.url, ["--concurrency", "3"])
            let sums = """
                SELECT p.rows_done, p.rows_total, p.batches_done, p.rows_changed,
                    (SELECT sum(s.rows_done) FROM godwit.progress s WHERE s.parent_id = p.id)::bigint AS shard_rows,
                    (SELECT sum(s.rows_total) FROM godwit.progress s WHERE s.parent_id = p.id)::bigint AS shard_total,
                    (SELECT sum(s.batches_done) FROM godwit.progress s WHERE s.parent_id = p.id)::bigint AS shard_batches,
                    (SELECT count(*) FROM godwit.progress s WHERE s.parent_id = p.id) AS n,
                    p.rows_per_second::float8 AS rate
                FROM godwit.progress p WHERE p.id = $1
                """
            #expect(
                try await eventually {
                    try await conn.query(sums, [parent]).first!.int("rows_done") >= 1500
                })
            // In the same snapshot, the parent's figures are its shards' sums.
            let mid = try #require(try await conn.query(sums, [parent]).first)
            #expect(try mid.int("n") == 3)
            #expect(try mid.int("rows_done") == mid.int("shard_rows"))
            #expect(try mid.int("rows_total") == mid.int("shard_total"))
            #expect(try mid.int("rows_total") == 9000)
            #expect(try mid.int("batches_done") == mid.int("shard_batches"))
            #expect(try mid.int("rows_done") < 9000)
            #expect(try mid.double("rate") > 0)
            #expect(try await eventually(timeout: .seconds(60)) { try await jobState(parent, conn) == "succeeded" })
            let end = try #require(try await conn.query(sums, [parent]).first)
            #expect(try end.int("rows_done") == 9000)
            #expect(try end.int("rows_changed") == 9000)
            let result = try #require(
                try await conn.query("SELECT result->>'rows_done' AS r FROM godwit.jobs WHERE id = $1", [parent]).first)
            #expect(result["r"] == "9000")
            // `job list` shows each shard right beneath its parallel job.
            let list = try await GodwitCommand.run(["job", "list", "-D", db.url, "--format", "json"])
            #expect(list.status == 0, "\(list.stderr)")
            let listed = try #require(
                try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            let shardIDs = try await shards(of: parent, conn).map(\.id)
            #expect(listed.compactMap { ($0["id"] as? NSNumber)?.int64Value } == [parent] + shardIDs)
            _ = await worker.stop()
        }
    }

    @Test func pauseAndResumeActOnTheParentAndEveryShard() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 9000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(
                dir, db.url, parallel: 3, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 30"])
            // Two shards run at once, the third waits in the queue.
            let worker = inProcessWorker(db.url, ["--concurrency", "2"])
            #expect(
                try await eventually {
                    try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [parent]).first!
                        .int("rows_done") >= 600
                })
            let pause = try await GodwitCommand.run(["job", "pause", "\(parent)", "-D", db.url])
            #expect(pause.status == 0, "\(pause.stderr)")
            #expect(try await eventually { try await jobState(parent, conn) == "paused" })
            let paused = try await shards(of: parent, conn)
            #expect(paused.map(\.state) == ["paused", "paused", "paused"])
            let done = paused.map(\.rowsDone).reduce(0, +)
            #expect(done > 0 && done < 9000)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await shards(of: parent, conn).map(\.rowsDone).reduce(0, +) == done)
            let resume = try await GodwitCommand.run(["job", "resume", "\(parent)", "-D", db.url])
            #expect(resume.status == 0, "\(resume.stderr)")
            #expect(try await jobState(parent, conn) == "running")
            #expect(try await eventually(timeout: .seconds(60)) { try await jobState(parent, conn) == "succeeded" })
            #expect(try await counters(conn) == [1: 9000])
            _ = await worker.stop()
        }
    }

    @Test func cancelStopsEveryShardAndRetryFinishesWhatWasLeft() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 6000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(
                dir, db.url, parallel: 3, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 30"])
            let worker = inProcessWorker(db.url, ["--concurrency", "1"])
            #expect(
                try await eventually {
                    try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [parent]).first!
                        .int("rows_done") >= 300
                })
            #expect(try await conn.query("SELECT godwit.cancel($1) AS c", [parent]).first?.bool("c") == true)
            #expect(try await eventually { try await jobState(parent, conn) == "cancelled" })
            #expect(try await shards(of: parent, conn).map(\.state) == ["cancelled", "cancelled", "cancelled"])
            let finished = try await conn.query(
                "SELECT finished_at IS NOT NULL AS f FROM godwit.jobs WHERE id = $1", [parent]
            ).first?.bool("f")
            #expect(finished == true)
            let partly = try await counters(conn)
            #expect(partly[0, default: 0] > 0 && partly[1, default: 0] > 0 && partly[2] == nil, "\(partly)")
            // A cancelled job is neither resumed nor paused; retry requeues every shard, each
            // from its own checkpoint.
            #expect(try await conn.query("SELECT godwit.resume($1) AS c", [parent]).first?.bool("c") == false)
            let retry = try await GodwitCommand.run(["job", "retry", "\(parent)", "-D", db.url])
            #expect(retry.status == 0, "\(retry.stderr)")
            #expect(try await eventually(timeout: .seconds(60)) { try await jobState(parent, conn) == "succeeded" })
            #expect(try await counters(conn) == [1: 6000])
            _ = await worker.stop()
        }
    }

    @Test func aFailingShardFailsTheParentWithItsKeyRangeOnceTheOthersStoppedAndRetryResumes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0 CHECK (counter < 2));
                INSERT INTO items (id) SELECT g FROM generate_series(1, 6000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(
                dir, db.url, parallel: 3,
                extra: ["batch-size: 50", "min-batch-size: 50", "max-batch-size: 50", "pause-ms: 40"])
            let middle = try await shards(of: parent, conn)[1]
            let lower = try #require(Int(middle.lower ?? ""))
            let upper = try #require(Int(middle.upper ?? ""))
            // A row early in the middle shard that its batch cannot update.
            let bad = lower + 120
            try await conn.query("UPDATE items SET counter = 1 WHERE id = $1", [bad])
            async let worker = drainWorker(db.url, ["--concurrency", "3"])
            // Whenever the parent is seen failed, no shard is still running.
            var sawFailedWhileRunning = false
            let ended = try await eventually(timeout: .seconds(60), every: .milliseconds(10)) {
                let row = try await conn.query(
                    """
                    SELECT j.state::text AS s,
                        (SELECT count(*) FROM godwit.jobs s WHERE s.parent_id = j.id AND s.state IN ('running', 'queued')) AS active
                    FROM godwit.jobs j WHERE j.id = $1
                    """, [parent]
                ).first!
                if try row.string("s") == "failed" && row.int("active") > 0 { sawFailedWhileRunning = true }
                return try row.string("s") == "failed"
            }
            #expect(ended)
            #expect(!sawFailedWhileRunning)
            let output = try await worker
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            let states = try await shards(of: parent, conn).map(\.state)
            #expect(states == ["paused", "failed", "paused"], "the others stopped at a checkpoint, not at the end")
            let error = try #require(
                try await conn.query("SELECT last_error FROM godwit.jobs WHERE id = $1", [parent]).first?["last_error"])
            #expect(error.contains("shard 2 of 3 (keys after \(lower) up to \(upper)) failed"), "\(error)")
            #expect(error.contains("SQLSTATE 23514"), "\(error)")
            #expect(error.contains("batch 3 (keys \(lower + 101)..\(lower + 150))"), "\(error)")
            // Resume refuses a failed job; retry requeues the failed shard and resumes the paused.
            #expect(try await conn.query("SELECT godwit.resume($1) AS c", [parent]).first?.bool("c") == false)
            try await conn.query("UPDATE items SET counter = 0 WHERE id = $1", [bad])
            #expect(try await conn.query("SELECT godwit.retry($1) AS c", [parent]).first?.bool("c") == true)
            #expect(try await jobState(parent, conn) == "running")
            let again = try await drainWorker(db.url, ["--concurrency", "3"])
            #expect(again.status == 0, "\(again.stderr.suffix(1500))")
            #expect(try await jobState(parent, conn) == "succeeded")
            #expect(try await counters(conn) == [1: 6000])
        }
    }

    /// Under READ COMMITTED each shard's completion would see the other still running; the
    /// derivation waits for the other's commit. Here both derivations are made to overlap by
    /// running them before either commits (SET CONSTRAINTS ... IMMEDIATE).
    @Test func twoShardsFinishingAtOnceLeaveTheParentSucceeded() async throws {
        try await withQueue { db, conn, queue in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 1000) g;
                ANALYZE items;
                """)
            let parent = try await conn.query(
                """
                SELECT godwit.enqueue_batched('two', 'items', 'id',
                    'UPDATE items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2', parallel => 2) AS id
                """
            ).first!.int64("id")
            let claimed = try await queue.claim(limit: 2, workerID: "w", on: conn)
            #expect(claimed.count == 2)
            let first = try await db.connect()
            let second = try await db.connect()
            try await first.execute(
                """
                BEGIN;
                UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = \(claimed[0].id);
                SET CONSTRAINTS godwit.jobs_shard_state IMMEDIATE;
                """)
            let secondDone = Task {
                _ = try await second.execute(
                    """
                    BEGIN;
                    UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = \(claimed[1].id);
                    SET CONSTRAINTS godwit.jobs_shard_state IMMEDIATE;
                    COMMIT;
                    """)
            }
            try await Task.sleep(for: .milliseconds(300))
            try await first.execute("COMMIT")
            _ = try await secondDone.value
            #expect(try await jobState(parent, conn) == "succeeded")
            await first.close()
            await second.close()
        }
    }

    @Test func killNineOfAnyWorkerAtAnyMomentStillChangesEveryRowOnce() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 180000) g;
                ANALYZE items;
                """)
            let parent = try await enqueueParallel(
                dir, db.url, parallel: 3,
                extra: ["batch-size: 300", "min-batch-size: 300", "max-batch-size: 300", "pause-ms: 30"])
            var workers = try (0..<3).map { _ in
                try startWorker(db.url, ["--lease-timeout", "1", "--concurrency", "1"])
            }
            var kills = 0
            var doneAtKill: [Int] = []
            while kills < 9 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 300...900)))
                if try await jobState(parent, conn) == "succeeded" { break }
                let victim = Int.random(in: 0..<workers.count)
                workers[victim].signal(SIGKILL)
                _ = try await workers[victim].wait()
                kills += 1
                doneAtKill.append(
                    try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [parent]).first!.int(
                        "rows_done"))
                workers[victim] = try startWorker(db.url, ["--lease-timeout", "1", "--concurrency", "1"])
            }
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    ["succeeded", "failed", "cancelled"].contains(try await jobState(parent, conn))
                })
            let lastError = try await conn.query("SELECT last_error FROM godwit.jobs WHERE id = $1", [parent]).first?[
                "last_error"]
            #expect(try await jobState(parent, conn) == "succeeded", "last error: \(lastError ?? "none")")
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers { _ = try await worker.wait() }
            #expect(kills == 9, "the job finished before nine kills: make it longer")
            #expect(Set(doneAtKill).count > 1, "kills landed at different points of the run")
            #expect(try await counters(conn) == [1: 180_000])
            let progress = try #require(
                try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [parent]).first)
            #expect(try progress.int("rows_done") == 180_000)
            let attempts = try await conn.query(
                "SELECT sum(attempts) AS a FROM godwit.jobs WHERE parent_id = $1", [parent]
            ).first!.int("a")
            #expect(attempts > 3, "some shard was rescued from a killed worker")
        }
    }

    @Test func shardsRunWithTheEnqueuersRightsAndNobodyElseMayAddShards() async throws {
        try await withRoles(["other"]) { roles in
            let other = roles[0]
            try await withEnqueuer { db, admin, low in
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [other.name])
                try await admin.execute(
                    """
                    CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                    INSERT INTO items (id) SELECT g FROM generate_series(1, 1000) g;
                    ANALYZE items;
                    GRANT SELECT, UPDATE ON items TO \(low.quoted);
                    """)
                let lowConn = try await low.connect(db)
                let parent = try await lowConn.query(
                    """
                    SELECT godwit.enqueue_batched('mine', 'public.items', 'id',
                        'UPDATE items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2', parallel => 2) AS id
                    """
                ).first!.int64("id")
                let roles = try await admin.query(
                    "SELECT DISTINCT enqueued_by::text AS r FROM godwit.jobs WHERE id = $1 OR parent_id = $1", [parent]
                ).rows.map { try $0.string("r") }
                #expect(roles == [low.name])
                // Another enqueuer cannot hang a shard, with its own rights, under this parent.
                let otherConn = try await other.connect(db)
                let refused = await #expect(throws: PostgresError.self) {
                    try await otherConn.query(
                        "INSERT INTO godwit.jobs (kind, name, payload, parent_id) VALUES ('batched', 'x', '{}', $1)",
                        [parent])
                }
                #expect(
                    refused?.message.contains("is not a parallel job of yours") == true, "\(refused?.message ?? "")")
                await otherConn.close()
                await lowConn.close()
                try await drain(db)
                #expect(try await jobState(parent, admin) == "succeeded")
                #expect(try await counters(admin) == [1: 1000])
            }
        }
    }

    @Test func parallelOutOfRangeIsRefusedWithFileAndLine() async throws {
        let text =
            "-- godwit:batched\n-- table: items\n-- key: id\n-- parallel: 0\nUPDATE items SET n = 1 WHERE id BETWEEN $1 AND $2;"
        let error = #expect(throws: BatchedJobError.self) {
            try BatchedJobDefinition.parse(text, file: "jobs/split.sql")
        }
        #expect(
            error?.description == "jobs/split.sql:4: `parallel` must be a whole number of shards from 1 to 256, not `0`"
        )
        #expect(throws: BatchedJobError.self) {
            try BatchedJobDefinition.parse(
                text.replacingOccurrences(of: "parallel: 0", with: "parallel: 257"), file: "f")
        }
        let three = try BatchedJobDefinition.parse(
            text.replacingOccurrences(of: "parallel: 0", with: "parallel: 3"), file: "f")
        #expect(three.parallel == 3)
        #expect(
            try BatchedJobDefinition.parse(text.replacingOccurrences(of: "-- parallel: 0\n", with: ""), file: "f")
                .parallel == 1)
    }
}
