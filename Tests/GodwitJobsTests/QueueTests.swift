import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// Runs `body` with a fresh database that has Godwit's schema installed.
func withQueue(_ body: (TestDatabase, Connection, JobQueue) async throws -> Void) async throws {
    try await withTestDatabase { db in
        let conn = try await db.connect()
        let queue = JobQueue(schema: .withJobs())
        try await queue.schema.install(on: conn)
        try await body(db, conn, queue)
        await conn.close()
    }
}

func state(of id: Int64, _ conn: Connection) async throws -> String? {
    try await conn.query("SELECT state::text AS s FROM godwit.jobs WHERE id = $1", [id]).first?.string("s")
}

@Suite("Queue schema and SQL")
struct QueueTests {
    @Test func concurrentInstallsInstallOnceAndAreIdempotent() async throws {
        try await withTestDatabase { db in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let conn = try await db.connect()
                        try await QueueSchema.withJobs().install(on: conn)
                        await conn.close()
                    }
                }
                try await group.waitForAll()
            }
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            // Each owner's part recorded once, at the version this build knows.
            let versions = try await conn.query("SELECT owner, version FROM godwit.schema_version ORDER BY owner")
            #expect(try versions.rows.map { try $0.string("owner") } == ["backups", "jobs", "queue"])
            #expect(try versions.rows.map { try $0.int("version") } == [1, 1, 1])
            #expect(try await QueueSchema.withJobs().installedVersion(on: conn) == QueueSchema().latestVersion)
            #expect(try await QueueSchema.withJobs().isCurrent(on: conn))
            // Nothing went into the application's ledger.
            #expect(
                try await conn.query("SELECT to_regclass('_sqlx_migrations') IS NULL AS n").first?.bool("n") == true)
            await conn.close()
        }
    }

    @Test func anotherSchemaNameWorks() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let queue = JobQueue(schema: .withJobs(name: "ops queue"))
            try await queue.schema.install(on: conn)
            let id = try await queue.enqueue(kind: .noop, name: "x", on: conn)
            let claimed = try await queue.claim(limit: 5, workerID: "w", on: conn)
            #expect(claimed.map(\.id) == [id])
            #expect(try await conn.query(#"SELECT count(*) AS n FROM "ops queue".progress"#).first?.int("n") == 1)
            await conn.close()
        }
    }

    @Test func aPlainInsertNotifiesTheWorkers() async throws {
        try await withQueue { db, conn, queue in
            let listener = try await db.connect()
            try await listener.listen("godwit_jobs")
            try await conn.execute("INSERT INTO godwit.jobs (kind, name) VALUES ('noop', 'from psql')")
            let received = try await listener.notifications(timeout: .seconds(10))
            #expect(received.first?.channel == "godwit_jobs")
            // A state change that is not a requeue stays quiet.
            let job = try #require(try await queue.claim(limit: 1, workerID: "w", on: conn).first)
            try await queue.finish(job, .succeeded(result: nil), on: conn)
            #expect(try await listener.notifications(timeout: .milliseconds(200)).isEmpty)
            await listener.close()
        }
    }

    @Test func claimsByPriorityThenDueTimeAndLeavesFutureJobs() async throws {
        try await withQueue { _, conn, queue in
            let low = try await queue.enqueue(kind: .noop, name: "low", priority: 0, on: conn)
            let high = try await queue.enqueue(kind: .noop, name: "high", priority: 10, on: conn)
            let later = try await queue.enqueue(
                kind: .noop, name: "later", priority: 99, runAfter: .seconds(3600), on: conn)
            let first = try await queue.claim(limit: 1, workerID: "w", on: conn)
            #expect(first.map(\.id) == [high])
            #expect(first.first?.attempt == 1)
            let rest = try await queue.claim(limit: 10, workerID: "w", on: conn)
            #expect(rest.map(\.id) == [low])
            #expect(try await state(of: later, conn) == "queued")
        }
    }

    @Test func concurrentClaimsNeverShareAJob() async throws {
        try await withQueue { db, conn, queue in
            try await conn.execute(
                "INSERT INTO godwit.jobs (kind, name) SELECT 'noop', 'j' || g FROM generate_series(1, 400) g")
            let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        let own = try await db.connect()
                        var ids: [Int64] = []
                        while true {
                            let batch = try await queue.claim(limit: 7, workerID: "w\(worker)", on: own)
                            if batch.isEmpty { break }
                            ids += batch.map(\.id)
                        }
                        await own.close()
                        return ids
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(claims.count == 400)
            #expect(Set(claims).count == 400)
        }
    }

    @Test func controlsFromSQLReportWhetherTheyChangedAnything() async throws {
        try await withQueue { _, conn, queue in
            let id = try await queue.enqueue(kind: .noop, name: "c", on: conn)
            func call(_ function: String) async throws -> Bool {
                try await conn.query("SELECT godwit.\(function)($1) AS changed", [id]).first?.bool("changed") ?? false
            }
            #expect(try await call("pause"))
            #expect(try await state(of: id, conn) == "paused")
            #expect(try await !call("pause"))
            #expect(try await call("resume"))
            #expect(try await state(of: id, conn) == "queued")
            #expect(try await !call("resume"))
            #expect(try await !call("retry"))
            #expect(try await call("cancel"))
            #expect(try await state(of: id, conn) == "cancelled")
            #expect(try await !call("cancel"))
            #expect(try await call("retry"))
            #expect(try await state(of: id, conn) == "queued")
            // On a running job, pause and cancel become requests the worker acts on.
            let job = try #require(try await queue.claim(limit: 1, workerID: "w", on: conn).first)
            #expect(try await call("pause"))
            #expect(
                try await conn.query("SELECT control FROM godwit.jobs WHERE id = $1", [id]).first?.string("control")
                    == "pause")
            #expect(try await call("cancel"))
            let answer = try await queue.heartbeat([(job.id, job.leaseToken)], on: conn)
            #expect(answer[job.id] == .renewed(control: .cancel))
            #expect(try await !conn.query("SELECT godwit.pause(424242) AS c").first!.bool("c"))
        }
    }

    @Test func aStaleLeaseWritesNothingAfterARescue() async throws {
        try await withQueue { _, conn, queue in
            let id = try await queue.enqueue(kind: .noop, name: "stale", on: conn)
            let first = try #require(try await queue.claim(limit: 1, workerID: "dead", on: conn).first)
            // The worker stops heartbeating; its heartbeat ages past the lease.
            try await conn.execute("UPDATE godwit.jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = \(id)")
            #expect(try await queue.rescueExpired(leaseTimeout: .seconds(30), on: conn) == [id])
            let progress = try #require(
                try await conn.query("SELECT last_error FROM godwit.jobs WHERE id = $1", [id]).first)
            #expect(try progress.string("last_error").contains("lease expired: worker dead"))
            let second = try #require(try await queue.claim(limit: 1, workerID: "alive", on: conn).first)
            #expect(second.leaseToken > first.leaseToken)
            #expect(second.attempt == 2)
            // The presumed-dead worker comes back and tries to finish: nothing changes.
            #expect(try await !queue.finish(first, .succeeded(result: #"{"late": true}"#), on: conn))
            #expect(try await queue.heartbeat([(first.id, first.leaseToken)], on: conn)[first.id] == .lost)
            #expect(try await state(of: id, conn) == "running")
            #expect(try await queue.finish(second, .succeeded(result: nil), on: conn))
            #expect(try await state(of: id, conn) == "succeeded")
            let row = try #require(
                try await conn.query("SELECT result IS NULL AS r, worker_id FROM godwit.jobs WHERE id = $1", [id]).first
            )
            #expect(try row.bool("r"))
        }
    }

    @Test func rescueHonoursRequestsAndAttempts() async throws {
        try await withQueue { _, conn, queue in
            let paused = try await queue.enqueue(kind: .noop, name: "p", on: conn)
            let exhausted = try await queue.enqueue(kind: .noop, name: "e", maxAttempts: 1, on: conn)
            _ = try await queue.claim(limit: 2, workerID: "dead", on: conn)
            _ = try await conn.query("SELECT godwit.pause($1)", [paused])
            try await conn.execute("UPDATE godwit.jobs SET heartbeat_at = now() - interval '1 hour'")
            #expect(Set(try await queue.rescueExpired(leaseTimeout: .seconds(30), on: conn)) == [paused, exhausted])
            #expect(try await state(of: paused, conn) == "paused")
            #expect(try await state(of: exhausted, conn) == "failed")
        }
    }

    @Test func progressViewShowsEveryJob() async throws {
        try await withQueue { _, conn, queue in
            let id = try await queue.enqueue(kind: .noop, name: "v", on: conn)
            let job = try #require(try await queue.claim(limit: 1, workerID: "w1", on: conn).first)
            var row = try #require(try await conn.query("SELECT * FROM godwit.progress WHERE id = $1", [id]).first)
            #expect(try row.string("state") == "running")
            #expect(try row.string("worker_id") == "w1")
            #expect(try row.double("percent") == 0)
            try await queue.finish(job, .succeeded(result: nil), on: conn)
            row = try #require(try await conn.query("SELECT * FROM godwit.progress WHERE id = $1", [id]).first)
            #expect(try row.double("percent") == 100)
            #expect(row["finished_at"] != nil)
            #expect(
                row.columns.prefix(16) == [
                    "id", "name", "kind", "state", "percent", "rows_done", "rows_total", "rows_per_second", "eta",
                    "attempts", "last_error", "worker_id", "heartbeat_at", "created_at", "started_at", "finished_at",
                ])
        }
    }

    @Test func oldFinishedJobsAreDeletedButFailedOnesKept() async throws {
        try await withQueue { _, conn, queue in
            try await conn.execute(
                """
                INSERT INTO godwit.jobs (kind, name, state, finished_at)
                SELECT 'noop', 'old', (ARRAY['succeeded','cancelled','failed'])[1 + g % 3]::godwit.job_state,
                       now() - interval '30 days'
                FROM generate_series(1, 2500) g
                """)
            let deleted = try await queue.deleteFinished(olderThan: .seconds(86_400), on: conn)
            #expect(deleted == 2500 - 833)
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 833)
        }
    }
}
