import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A restore rewinds a batched job's table but not its checkpoint (Godwit's schema is not in
/// backups): it must refuse while such a job goes on, and name the jobs it leaves stale.
@Suite("godwit backup restore under batched jobs", .serialized)
struct RestoreUnderJobsTests {
    /// `items` with `rows` counters at 0, and a backup of it; returns the backup file.
    func itemsAndBackup(_ db: TestDatabase, _ conn: Connection, _ backups: TemporaryDirectory, rows: Int = 2000)
        async throws -> String
    {
        try await conn.execute(
            """
            CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
            INSERT INTO items (id) SELECT g FROM generate_series(1, \(rows)) g;
            CREATE TABLE marker (label text);
            INSERT INTO marker VALUES ('in the backup');
            """)
        let created = try await GodwitCommand.run(["backup", "create", "--dir", backups.path, "-D", db.url])
        guard created.status == 0 else { throw TestSetupError(message: "backup failed: \(created.stderr)") }
        try await conn.execute("UPDATE marker SET label = 'after the backup'")
        return String(created.stdout.split(separator: " ").first ?? "")
    }

    func marker(_ conn: Connection) async throws -> String? {
        try await conn.query("SELECT label FROM marker").first?.string("label")
    }

    @Test func aRestoreRefusesWhileABatchedJobRunsAndPauseJobsPausesItThenNamesIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            let file = try await itemsAndBackup(db, conn, dir, rows: 4000)
            let job = try counterJob(dir, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 1000"])
            let id = try await enqueue(job, db.url)
            let worker = inProcessWorker(db.url)
            #expect(
                try await eventually {
                    try await conn.query("SELECT batches_done FROM godwit.job_progress WHERE job_id = $1", [id])
                        .first!.int("batches_done") >= 2
                })

            let refused = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.hasPrefix(
                    "error: restore of \(file) refused (nothing was changed): batched job \(id) (count_items, running) on the schemas it replaces would go on from checkpoints ahead of the restored rows; pause them (SELECT godwit.pause(ID), or run again with --pause-jobs)"
                ), "\(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
            // Nothing was restored: the row changed after the backup is as it was, and the job goes on.
            #expect(try await marker(conn) == "after the backup")
            #expect(try await jobState(id, conn) == "running")

            // The dry run says it would refuse.
            let dry = try await GodwitCommand.run(["backup", "restore", file, "-D", db.url])
            #expect(
                dry.stderr.contains(
                    "it would refuse, as batched job \(id) (count_items, running) would go on from checkpoints"),
                "\(dry.stderr)")

            let restored = try await GodwitCommand.run([
                "backup", "restore", file, "--yes", "--pause-jobs", "-D", db.url,
            ])
            #expect(restored.status == 0, "\(restored.stderr)")
            let lines = restored.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "paused before the restore: job \(id) (count_items)", "\(restored.stdout)")
            #expect(
                lines.contains { $0.hasPrefix("the checkpoints of 1 batched job no longer match the restored data") })
            #expect(
                lines.contains {
                    $0.hasPrefix("  job \(id) (count_items, paused) on public.items: ")
                        && $0.contains("checkpoint at key")
                },
                "\(restored.stdout)")
            #expect(
                lines.last?.hasPrefix(
                    "rerun each from the start: SELECT godwit.cancel(ID) if it is not finished, then godwit job enqueue FILE"
                ) == true)
            #expect(try await jobState(id, conn) == "paused")
            #expect(try await marker(conn) == "in the backup")
            #expect(try await counters(conn) == [0: 4000])

            // The remedy the report gives works: cancel, enqueue the file again, every row once.
            #expect(try await conn.query("SELECT godwit.cancel($1) AS c", [id]).first?.bool("c") == true)
            let again = try await enqueue(try counterJob(dir, extra: ["batch-size: 1000"]), db.url)
            #expect(try await eventually(timeout: .seconds(60)) { try await jobState(again, conn) == "succeeded" })
            #expect(try await counters(conn) == [1: 4000])
            _ = await worker.stop()
        }
    }

    @Test func afterARestoreEveryBatchedJobWithACheckpointIsNamedAndAQueuedOneWithoutIsNot() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            let file = try await itemsAndBackup(db, conn, dir, rows: 500)
            let done = try await enqueue(
                try counterJob(dir, extra: ["batch-size: 100", "max-batch-size: 100"]), db.url)
            let worker = inProcessWorker(db.url)
            #expect(try await eventually { try await jobState(done, conn) == "succeeded" })
            _ = await worker.stop()
            #expect(try await counters(conn) == [1: 500])
            // Queued, never started: it will start from the first key of the restored table.
            let fresh = try await enqueue(try counterJob(dir, extra: ["name: fresh"]), db.url)

            // Queued with a checkpoint (as after a worker's shutdown): a worker would resume it.
            try await conn.execute("UPDATE godwit.jobs SET state = 'queued', finished_at = NULL WHERE id = \(done)")
            let refused = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains("batched job \(done) (count_items, queued) on the schemas"), "\(refused.stderr)"
            )
            #expect(try await marker(conn) == "after the backup")
            try await conn.execute("UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = \(done)")

            let restored = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(try await counters(conn) == [0: 500])
            let lines = restored.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("restored \(file) into ") == true, "\(restored.stdout)")
            #expect(
                lines.contains {
                    $0.hasPrefix("  job \(done) (count_items, succeeded) on public.items: ")
                        && $0.hasSuffix(" batches, 500 rows done, checkpoint at key 500")
                }, "\(restored.stdout)")
            #expect(!restored.stdout.contains("job \(fresh) "), "\(restored.stdout)")
            #expect(lines.count == 4, "\(restored.stdout)")
        }
    }

    /// A parallel job's shards are named once, as the parallel job: cancelling it and enqueuing
    /// its file again is one step, not one per shard (which would enqueue it N times).
    @Test func afterARestoreAParallelJobIsNamedOnceNotEachShard() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            let file = try await itemsAndBackup(db, conn, dir, rows: 600)
            let parent = try await enqueue(
                try counterJob(dir, extra: ["parallel: 2", "batch-size: 100", "max-batch-size: 100"]), db.url)
            let worker = inProcessWorker(db.url)
            #expect(try await eventually(timeout: .seconds(120)) { try await jobState(parent, conn) == "succeeded" })
            _ = await worker.stop()
            let restored = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 0, "\(restored.stderr)")
            let lines = restored.stdout.split(separator: "\n").map(String.init)
            #expect(
                lines.contains(
                    "the checkpoints of 1 batched job no longer match the restored data (godwit.resume and godwit.retry would continue from them and skip rows):"
                ), "\(restored.stdout)")
            #expect(
                lines.contains {
                    $0.hasPrefix(
                        "  parallel job \(parent) (count_items, succeeded) on public.items: 2 shards with checkpoints, "
                    )
                        && $0.hasSuffix(" rows done")
                }, "\(restored.stdout)")
            #expect(!restored.stdout.contains("[shard"), "\(restored.stdout)")
        }
    }

    @Test func aJobThatStartsWhileTheRestoreWaitsForItsLocksMakesItFailWithNothingChanged() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            let file = try await itemsAndBackup(db, conn, dir, rows: 100)
            let id = try await enqueue(try counterJob(dir), db.url)
            // Holding a lock on items keeps the restore's DROP SCHEMA waiting, after its check.
            let holder = try await db.connect()
            try await holder.execute("BEGIN; LOCK TABLE items IN ACCESS SHARE MODE")
            let restore = GodwitCommand.start(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(
                try await eventually {
                    try await conn.query(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DROP SCHEMA%'"
                    ).first!.int("n") == 1
                })
            // A worker claims the job now, as its claim would.
            try await conn.execute(
                "UPDATE godwit.jobs SET state = 'running', attempts = 1, started_at = now() WHERE id = \(id)")
            try await holder.execute("COMMIT")
            await holder.close()
            let output = await restore.wait()
            #expect(output.status == 1)
            #expect(
                output.stderr.hasPrefix(
                    "error: restore of \(file) failed (nothing was changed): psql exited with status 1:"),
                "\(output.stderr)")
            #expect(
                output.stderr.contains(
                    "restore refused: batched job \(id) (count_items, running) started on the replaced schemas during the restore"
                ),
                "\(output.stderr)")
            #expect(try await marker(conn) == "after the backup")
        }
    }

    @Test func rollbackMigrationRestorePassesPauseJobsAndTellsTheSame() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            let file = try await itemsAndBackup(db, conn, dir)
            let id = try await enqueue(
                try counterJob(dir, extra: ["batch-size: 100", "max-batch-size: 100", "pause-ms: 1000"]), db.url)
            let worker = inProcessWorker(db.url)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            let refused = try await runOps(
                "rollback-migration", ["--restore", file, "--backup-dir", dir.path], url: db.url)
            #expect(refused.status == 1)
            #expect(
                refused.output.contains("refused (nothing was changed): batched job \(id) (count_items, running)"),
                "\(refused.output)")
            #expect(try await marker(conn) == "after the backup")
            let restored = try await runOps(
                "rollback-migration", ["--restore", file, "--pause-jobs", "--backup-dir", dir.path], url: db.url)
            #expect(restored.status == 0, "\(restored.output)")
            #expect(
                restored.output.contains("paused before the restore: job \(id) (count_items)"), "\(restored.output)")
            #expect(
                restored.output.contains("  job \(id) (count_items, paused) on public.items: "), "\(restored.output)")
            #expect(try await marker(conn) == "in the backup")
            _ = await worker.stop()
        }
    }
}
