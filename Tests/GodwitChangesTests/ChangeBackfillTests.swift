import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The backfill writes the new side itself and the sync trigger skips its writes (and only
/// its writes): an application's write is synced whatever its session holds, a row that needs
/// nothing is not rewritten, and a new side the application wrote is never overwritten, between
/// batches or under a batch's feet.
@Suite("The backfill writes the new side itself")
struct ChangeBackfillTests {
    /// Bytes to kilobytes, lossy: a trigger that fired on the backfill's write of `size_kb`
    /// would rewrite `size_bytes` as `size_kb * 1024`, which the rows below never are.
    static let typeChange = """
        -- table: media
        -- add-column: size_kb bigint = size_bytes / 1024
        -- drop-column: size_bytes = size_kb * 1024
        """

    /// `media` with sizes that are no multiple of 1024 (`id * 1000 + 17`).
    static func createMedia(on conn: Connection, rows: Int = 200) async throws {
        try await ChangeTests.createMedia(on: conn, rows: rows)
        try await conn.execute("UPDATE media SET size_bytes = id * 1000 + 17")
    }

    static func xmins(_ ids: [Int], on conn: Connection) async throws -> [String] {
        try await conn.query(
            "SELECT xmin::text AS x FROM media WHERE id = ANY ($1::bigint[]) ORDER BY id",
            ["{\(ids.map(String.init).joined(separator: ","))}"]
        ).rows.map { try $0.string("x") }
    }

    static func count(_ condition: String, on conn: Connection) async throws -> Int {
        try await conn.query("SELECT count(*) AS n FROM media WHERE \(condition)").first!.int("n")
    }

    static func backfillStatement(_ name: String, on conn: Connection) async throws -> String {
        try await conn.query(
            """
            SELECT j.payload->>'statement' AS s FROM godwit.change_records c
            JOIN godwit.jobs j ON j.id = c.backfill_job_id WHERE c.name = $1
            """, [name]
        ).first!.string("s")
    }

    @Test func theTriggerSkipsTheBackfillsWritesButNotAnApplications() async throws {
        try await withChangesDatabase { _, conn in
            try await Self.createMedia(on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            // An application's old-only write, its session's setting unset, then another value.
            try await conn.query("UPDATE media SET size_bytes = 5000 WHERE id = 7")
            try await conn.query("SELECT set_config('godwit.change', 'another_change', false)")
            try await conn.query("UPDATE media SET size_bytes = 9000 WHERE id = 8")
            try await conn.query("SELECT set_config('godwit.change', '', false)")
            #expect(try await Self.count("id = 7 AND size_kb = 4", on: conn) == 1)
            #expect(try await Self.count("id = 8 AND size_kb = 8", on: conn) == 1)
            // A new-only write: the old side follows.
            try await conn.query("UPDATE media SET size_kb = 3 WHERE id = 9")
            #expect(try await Self.count("id = 9 AND size_bytes = 3072", on: conn) == 1)
            let written = try await Self.xmins([7, 8, 9], on: conn)

            try await ChangeTests.backfill("size_kb", on: conn)
            // Every new side filled, and no old side rewritten: the trigger did not fire.
            #expect(try await Self.count("size_kb IS NULL", on: conn) == 0)
            #expect(try await Self.count("size_kb IS DISTINCT FROM size_bytes / 1024", on: conn) == 0)
            #expect(try await Self.count("id NOT IN (7, 8, 9) AND size_bytes <> id * 1000 + 17", on: conn) == 0)
            // The rows that needed nothing were not rewritten (same tuple, no dead one).
            #expect(try await Self.xmins([7, 8, 9], on: conn) == written)
            let filled = try await Self.xmins(Array(1...200), on: conn)
            try await ChangeTests.backfill("size_kb", on: conn)
            #expect(try await Self.xmins(Array(1...200), on: conn) == filled, "a second pass rewrites nothing")
            #expect(try await ChangeTests.disagreeing("size_kb", on: conn) == 0)

            // A session that sets the change's own name skips the sync for its own writes; the
            // verification's count sees the row it left apart.
            try await conn.query("SELECT set_config('godwit.change', 'size_kb', false)")
            try await conn.query("UPDATE media SET size_bytes = 70000 WHERE id = 10")
            try await conn.query("SELECT set_config('godwit.change', '', false)")
            #expect(try await ChangeTests.disagreeing("size_kb", on: conn) == 1)
        }
    }

    /// Between two batches the application writes rows of the next batch, one side each: the
    /// backfill reaches them and leaves them as the application (and the trigger) left them.
    @Test func aRowTheApplicationWroteBetweenBatchesIsNotOverwritten() async throws {
        try await withChangesDatabase { _, conn in
            try await Self.createMedia(on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            let statement = try await Self.backfillStatement("size_kb", on: conn)
            try await conn.query(statement, [1, 100])
            try await conn.query("UPDATE media SET size_kb = 9 WHERE id = 150")
            try await conn.query("UPDATE media SET size_bytes = 7777 WHERE id = 160")
            let written = try await Self.xmins([150, 160], on: conn)
            try await conn.query(statement, [101, 200])
            #expect(try await Self.count("id = 150 AND size_kb = 9 AND size_bytes = 9216", on: conn) == 1)
            #expect(try await Self.count("id = 160 AND size_kb = 7 AND size_bytes = 7777", on: conn) == 1)
            #expect(try await Self.xmins([150, 160], on: conn) == written)
            #expect(try await Self.count("size_kb IS NULL", on: conn) == 0)
            #expect(try await ChangeTests.disagreeing("size_kb", on: conn) == 0)
        }
    }

    /// The application's transaction writes the new side of a row the batch is about to fill;
    /// the batch waits for its lock, then finds the row's new version filled and leaves it.
    @Test func aRowTheApplicationWritesUnderABatchIsNotOverwritten() async throws {
        try await withChangesDatabase { db, conn in
            try await Self.createMedia(on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            let statement = try await Self.backfillStatement("size_kb", on: conn)
            let application = try await db.connect()
            try await application.execute("BEGIN; UPDATE media SET size_kb = 11 WHERE id = 20")
            let backfill = try await db.connect()
            let pid = try await backfill.query("SELECT pg_backend_pid() AS p").first!.int("p")
            async let batch = backfill.query(statement, [1, 50])
            let waiting = try await eventually(timeout: .seconds(120)) {
                try await conn.query(
                    "SELECT coalesce(wait_event_type = 'Lock', false) AS w FROM pg_stat_activity WHERE pid = $1", [pid]
                ).first?.bool("w") == true
            }
            #expect(waiting, "the batch waits for the application's row lock")
            try await application.execute("COMMIT")
            _ = try await batch
            await application.close()
            await backfill.close()
            #expect(try await Self.count("id = 20 AND size_kb = 11 AND size_bytes = 11264", on: conn) == 1)
            #expect(try await Self.count("id <= 50 AND size_kb IS NULL", on: conn) == 0)
            #expect(try await Self.count("id <> 20 AND size_bytes <> id * 1000 + 17", on: conn) == 0)
        }
    }

    /// The whole backfill run by `godwit worker` as a batched job split into shards: every
    /// new side filled, no old side rewritten (the trigger skipped every batch's writes, in
    /// each shard's enqueuer session), and the change ready.
    @Test func theWorkersShardedBackfillSkipsTheTrigger() async throws {
        try await withChangesDatabase { db, conn in
            try await Self.createMedia(on: conn, rows: 600)
            try await conn.query("ANALYZE media")
            let started = try await ChangeTests.start(
                "size_kb", Self.typeChange + "\n-- batch-size: 40\n-- parallel: 3", on: conn)
            try await conn.query("UPDATE media SET size_kb = 3 WHERE id = 9")
            let written = try await Self.xmins([9], on: conn)
            let worker = changeWorker(db.url)
            let ready = try await eventually(timeout: .seconds(180)) {
                let phase = try await changePhase(conn, "size_kb")
                let finish = try await jobRow(started.finishJob, conn).string("state")
                return phase == "ready" && finish == "succeeded"
            }
            let output = await worker.stop()
            #expect(ready, "\(output.stderr.suffix(3000))")
            let shards = try await conn.query(
                "SELECT count(*) AS n FROM godwit.jobs WHERE parent_id = $1 AND state = 'succeeded'",
                [try #require(started.backfillJob)]
            ).first!.int("n")
            #expect(shards > 1)
            #expect(try await Self.count("size_kb IS DISTINCT FROM size_bytes / 1024", on: conn) == 0)
            #expect(try await Self.count("id <> 9 AND size_bytes <> id * 1000 + 17", on: conn) == 0)
            #expect(try await Self.xmins([9], on: conn) == written)
        }
    }
}
