import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `kill -9` of the worker in the middle of each step after start: a second worker takes the
/// change over (once the dead one's lease expires) and brings it to ready, every row right,
/// every row verified once, no INVALID index left.
@Suite("A change survives kill -9 of its worker", .serialized)
struct ChangeKillTests {
    /// Kills `worker` with SIGKILL and waits for it to be gone.
    func kill(_ worker: RunningProcess) async throws {
        worker.signal(SIGKILL)
        let output = try await worker.wait()
        #expect(output.status != 0)
    }

    /// Starts a second worker and waits for the change to be ready; returns its log.
    func finishWithAnotherWorker(_ url: String, _ conn: Connection) async throws -> String {
        let second = try changeWorkerProcess(url)
        let ready = try await eventually(timeout: .seconds(180)) { try await changePhase(conn) == "ready" }
        second.signal(SIGTERM)
        let output = try await second.wait()
        #expect(ready, "\(output.stderr.suffix(4000))")
        return output.stderr
    }

    @Test func duringTheBackfill() async throws {
        try await withChangesDatabase { db, conn in
            let change = try await RenameChange.start(
                .init(rows: 1500, batchSize: 30, secondsPerRow: 0.001), on: conn)
            let worker = try changeWorkerProcess(db.url)
            let midway = try await eventually(timeout: .seconds(120)) {
                let done =
                    try await conn.query(
                        "SELECT batches_done FROM godwit.job_progress WHERE job_id = $1", [change.backfillJob]
                    ).first?.int("batches_done") ?? 0
                return done >= 3
            }
            #expect(midway, "\(worker.currentStderr.suffix(3000))")
            try await kill(worker)
            #expect(try await changePhase(conn) == "backfilling", "killed before the backfill ended")
            _ = try await finishWithAnotherWorker(db.url, conn)
            try await expectFinished(conn, rows: 1500)
        }
    }

    /// The add expression sleeps for every row, so the verification's 50 chunks take a while;
    /// the kill comes once a few are recorded, and the pass resumes from the cursor.
    @Test func duringVerification() async throws {
        try await withChangesDatabase { db, conn in
            _ = try await RenameChange.start(.init(rows: 1500, batchSize: 30, secondsPerRow: 0.002), on: conn)
            let worker = try changeWorkerProcess(db.url)
            let midway = try await eventually(timeout: .seconds(180)) {
                guard let record = try await changeRecord(conn) else { return false }
                return try record.int("verified_rows") >= 150 && !record.bool("verified")
            }
            #expect(midway, "\(worker.currentStderr.suffix(3000))")
            try await kill(worker)
            let record = try #require(try await changeRecord(conn))
            #expect(try record.string("phase") == "verifying")
            #expect(try !record.bool("verified"), "killed before the verification ended")
            _ = try await finishWithAnotherWorker(db.url, conn)
            try await expectFinished(conn, rows: 1500)
        }
    }

    /// Kills the worker while its concurrent build of the index waits behind `writer`'s open
    /// transaction (after the build has made its INVALID index); returns once it is dead.
    func killDuringTheIndexBuild(_ url: String, _ conn: Connection) async throws {
        let worker = try changeWorkerProcess(url)
        let building = try await eventually(timeout: .seconds(120)) {
            try await conn.query(
                """
                SELECT count(*) AS n FROM pg_stat_progress_create_index p
                JOIN pg_class c ON c.oid = p.index_relid WHERE c.relname = $1
                """, [RenameChange.indexName]
            ).first?.int("n") == 1
        }
        #expect(building, "\(worker.currentStderr.suffix(3000))")
        try await kill(worker)
    }

    /// The killed worker's build runs on in its session (nothing tells the server its client
    /// is gone while it waits). The next worker waits for it rather than dropping an index
    /// still being built, and keeps the valid index it ends with.
    @Test func duringAnIndexBuildThatRunsOnWithoutItsWorker() async throws {
        try await withChangesDatabase { db, conn in
            _ = try await RenameChange.start(.init(rows: 300, batchSize: 50), on: conn)
            let writer = try await db.connect()
            try await writer.execute("BEGIN; INSERT INTO media (id, title) VALUES (100000, 'late')")
            try await killDuringTheIndexBuild(db.url, conn)
            let second = try changeWorkerProcess(db.url)
            let waiting = await eventually(timeout: .seconds(120)) {
                second.currentStderr.contains("being built by another session")
            }
            #expect(waiting, "\(second.currentStderr.suffix(3000))")
            try await writer.execute("COMMIT")
            await writer.close()
            let ready = try await eventually(timeout: .seconds(180)) { try await changePhase(conn) == "ready" }
            second.signal(SIGTERM)
            let output = try await second.wait()
            #expect(ready, "\(output.stderr.suffix(4000))")
            #expect(!output.stderr.contains("left INVALID"), "the index being built was not dropped")
            try await expectFinished(conn, rows: 301, verified: 300)
        }
    }

    /// A session that has written to the table and not committed makes the concurrent build
    /// wait after it has made its (INVALID) index. The worker is killed there, and the build's
    /// session, which would run on without its client, is ended too: what is left is the
    /// INVALID index of a build that died, which the next worker drops and builds again.
    @Test func duringAnIndexBuild() async throws {
        try await withChangesDatabase { db, conn in
            _ = try await RenameChange.start(.init(rows: 300, batchSize: 50), on: conn)
            let writer = try await db.connect()
            try await writer.execute("BEGIN; INSERT INTO media (id, title) VALUES (100000, 'late')")
            try await killDuringTheIndexBuild(db.url, conn)
            try await conn.query(
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_progress_create_index WHERE relid = 'media'::regclass
                """)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try await conn.query(
                        "SELECT count(*) AS n FROM pg_stat_progress_create_index WHERE relid = 'media'::regclass"
                    ).first?.int("n") == 0
                })
            let invalid = try await conn.query(
                """
                SELECT NOT i.indisvalid AS invalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = $1
                """, [RenameChange.indexName]
            ).first?.bool("invalid")
            #expect(invalid == true, "the dead build left its INVALID index")
            try await writer.execute("COMMIT")
            await writer.close()
            let log = try await finishWithAnotherWorker(db.url, conn)
            #expect(log.contains("left INVALID"), "the second worker dropped the INVALID index: \(log.suffix(3000))")
            // The late row came after the verification, through the trigger.
            try await expectFinished(conn, rows: 301, verified: 300)
        }
    }
}
