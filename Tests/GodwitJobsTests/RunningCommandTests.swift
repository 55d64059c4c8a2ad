import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `GodwitCommand.start` (`RunningCommand`), which the job tests use for a worker that runs jobs
/// while they watch: what a test reads while it runs, how it ends by itself, and what stopping
/// it (cancelling it) does to the worker and its jobs.
@Suite("A command run in-process while the test acts (RunningCommand)", .serialized)
struct RunningCommandTests {
    /// The sessions of `godwit worker` connected to the test's database.
    func workerSessions(_ conn: Connection) async throws -> Int {
        try await conn.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'godwit worker'"
        ).first!.int("n")
    }

    /// Cancelled, a worker stops as after `--shutdown-timeout`: the running job's statement is
    /// cancelled and the job goes back to the queue without costing an attempt, the worker's row
    /// says it stopped, it exits 0 having said so, and none of its sessions is left.
    @Test func aStoppedWorkerHandsItsRunningJobBackAndLeavesNoSession() async throws {
        try await withQueue { db, conn, queue in
            let id = try await queue.enqueue(
                kind: .sql, name: "long", payload: #"{"sql": "SELECT pg_sleep(600)"}"#, on: conn)
            let worker = inProcessWorker(db.url)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            // Its log so far, while it runs.
            #expect(await eventually { worker.currentStderr.contains("job started") }, "\(worker.currentStderr)")
            #expect(worker.isRunning)

            let output = await worker.stop()
            #expect(!worker.isRunning)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(output.stderr.contains("cancelled: stopping running jobs now"), "\(output.stderr.suffix(1500))")
            #expect(output.stderr.contains("job handed back to the queue"), "\(output.stderr.suffix(1500))")
            #expect(output.stdout.isEmpty)
            try await expectHandedBackByAStoppedWorker(id, conn)
            // The server ends a closed session's backend a moment after the client goes.
            #expect(
                try await eventually { try await workerSessions(conn) == 0 }, "a session of the stopped worker is left")
            #expect(
                try await conn.query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"
                ).first!.int("n") == 0)
        }
    }

    /// A command that ends by itself (`job watch`, when its job ends) is waited for, and gives
    /// what `GodwitCommand.run` would have; stopping it once ended changes nothing.
    @Test func aCommandThatEndsByItselfIsWaitedFor() async throws {
        try await withQueue { db, conn, queue in
            let id = try await queue.enqueue(kind: .noop, name: "watched", runAfter: .seconds(3600), on: conn)
            let watch = GodwitCommand.start(["job", "watch", "\(id)", "--interval", "0.1", "-D", db.url])
            #expect(await eventually { !watch.currentStdout.isEmpty }, "\(watch.currentStderr)")
            #expect(watch.isRunning)
            try await conn.query("UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [id])
            let watched = await watch.wait()
            #expect(!watch.isRunning)
            #expect(watched.status == 0, "\(watched.stderr)")
            #expect(watched.stdout.contains("succeeded"), "\(watched.stdout)")
            #expect(watched.pid == ProcessInfo.processInfo.processIdentifier)
            let again = await watch.stop()
            #expect(again.status == 0 && again.stdout == watched.stdout)
        }
    }

    /// A test that fails before its `stop()` leaves no worker behind: dropping the handle
    /// cancels the command.
    @Test func droppingTheHandleStopsTheWorker() async throws {
        try await withQueue { db, conn, queue in
            let id = try await queue.enqueue(
                kind: .sql, name: "long", payload: #"{"sql": "SELECT pg_sleep(600)"}"#, on: conn)
            func startAndForget() async throws -> Bool {
                let worker = inProcessWorker(db.url)
                return try await eventually { try await jobState(id, conn) == "running" } && worker.isRunning
            }
            #expect(try await startAndForget())
            #expect(try await eventually { try await jobState(id, conn) == "queued" })
            #expect(
                try await eventually {
                    try await conn.query("SELECT bool_and(stopped_at IS NOT NULL) AS s FROM godwit.workers").first?
                        .bool("s")
                        == true
                })
            #expect(
                try await eventually { try await workerSessions(conn) == 0 }, "a session of the dropped worker is left")
        }
    }
}
