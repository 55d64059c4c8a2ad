import Foundation
import GodwitPostgres
import GodwitTestSupport
import Logging
import Synchronization
import Testing

@testable import GodwitQueue

/// Keeps every log message, for tests that look at what a worker said.
final class LogCapture: Sendable {
    private let messages = Mutex<[String]>([])

    func append(_ message: String) { messages.withLock { $0.append(message) } }
    func count(of text: String) -> Int { messages.withLock { $0.filter { $0.contains(text) }.count } }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in CapturingHandler(capture: self) }
        logger.logLevel = .debug
        return logger
    }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.append(event.message.description)
    }
}

/// A batched job over `rows` rows of `items`, 10 rows a batch, each batch taking `seconds`.
func enqueueSlowBackfill(rows: Int, seconds: Double, on conn: Connection) async throws -> Int64 {
    try await conn.execute(
        """
        CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
        INSERT INTO items (id) SELECT g FROM generate_series(1, \(rows)) g;
        ANALYZE items;
        """)
    return try await conn.query(
        """
        SELECT godwit.enqueue_batched('slow', 'items', 'id',
            'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2 AND (SELECT pg_sleep(\(seconds))::text) IS NOT NULL',
            batch_size => 10, min_batch_size => 10, max_batch_size => 10, target_batch_ms => 100000) AS id
        """
    ).first!.int64("id")
}

func itemCounts(_ conn: Connection) async throws -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for row in try await conn.query("SELECT n, count(*) AS c FROM items GROUP BY n").rows {
        counts[try row.int("n")] = try row.int("c")
    }
    return counts
}

@Suite("Faults: leases, stopped workers, cancellation", .serialized)
struct FaultTests {
    /// The batch fence used to stamp the heartbeat at the batch's start and make heartbeats
    /// skip the locked row, so a batch longer than the lease got its job rescued right after
    /// it committed.
    @Test func aLiveWorkersLongBatchIsNeverRescued() async throws {
        try await withQueue { db, conn, _ in
            // Batches longer than the lease; a lease of 3 s renews every second, so only a stall
            // of 2 s (not one of 0.7 s, as a lease of 1 s allowed) on a loaded machine costs it.
            let id = try await enqueueSlowBackfill(rows: 30, seconds: 4, on: conn)
            let worker = try startWorker(db.url, ["--lease-timeout", "3"])
            #expect(try await eventually(timeout: .seconds(60)) { try await jobState(id, conn) == "succeeded" })
            worker.signal(SIGTERM)
            let output = try await worker.wait()
            let row = try #require(
                try await conn.query("SELECT attempts, last_error FROM godwit.jobs WHERE id = $1", [id]).first)
            #expect(try row.int("attempts") == 1, "\(output.stderr.suffix(2000))")
            #expect(row["last_error"] == nil)
            #expect(!output.stderr.contains("rescued"))
            #expect(try await itemCounts(conn) == [1: 30])
        }
    }

    /// A worker stopped (SIGSTOP) inside a batch holds its job's row. Rescues used to wait for
    /// that lock, and heartbeats waited behind the rescue, so other workers' healthy jobs lost
    /// their leases and ran twice once the stopped worker went on.
    @Test func aStoppedWorkerNeitherStallsOthersNorMakesHealthyJobsRunTwice() async throws {
        try await withQueue { db, conn, queue in
            let backfill = try await enqueueSlowBackfill(rows: 60, seconds: 1.5, on: conn)
            let stopped = try startWorker(db.url, ["--lease-timeout", "3", "--concurrency", "1"])
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    try await conn.query(
                        "SELECT batches_done FROM godwit.job_progress WHERE job_id = $1", [backfill]
                    ).first?.int("batches_done") ?? 0 >= 1
                })
            stopped.signal(SIGSTOP)
            var healthy: [Int64] = []
            for n in 0..<2 {
                healthy.append(
                    try await queue.enqueue(
                        kind: .sql, name: "healthy \(n)", payload: #"{"sql": "SELECT pg_sleep(7)"}"#, on: conn))
            }
            let other = try startWorker(db.url, ["--lease-timeout", "3", "--concurrency", "4"])
            // Past the lease, and past the stopped session's idle-in-transaction timeout (two
            // leases, 6 s).
            try await Task.sleep(for: .seconds(8))
            stopped.signal(SIGCONT)
            for id in healthy {
                #expect(try await eventually(timeout: .seconds(60)) { try await jobState(id, conn) == "succeeded" })
            }
            #expect(try await eventually(timeout: .seconds(90)) { try await jobState(backfill, conn) == "succeeded" })
            stopped.signal(SIGTERM)
            other.signal(SIGTERM)
            _ = try await stopped.wait()
            let output = try await other.wait()
            for id in healthy {
                let attempts = try await conn.query("SELECT attempts FROM godwit.jobs WHERE id = $1", [id]).first?.int(
                    "attempts")
                #expect(attempts == 1, "a healthy job ran twice: \(output.stderr.suffix(3000))")
            }
            #expect(try await itemCounts(conn) == [1: 60])
        }
    }

    /// Cancelling the worker's task used to make it spin ("claiming failed" thousands of times)
    /// until someone called shutdown(); now it stops, handing running jobs back.
    @Test func cancellingTheWorkerStopsItAndHandsItsJobsBack() async throws {
        try await withQueue { db, conn, queue in
            let capture = LogCapture()
            var configuration = WorkerConfiguration(databaseURL: db.url)
            configuration.pollInterval = .milliseconds(200)
            let pool = configuration.makePool()
            let worker = Worker(
                configuration: configuration, pool: pool, handlers: [SleepJob()], logger: capture.logger)
            let id = try await queue.enqueue(kind: .sleep, name: "long", payload: #"{"milliseconds": 60000}"#, on: conn)
            let running = Task { try await worker.run() }
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            running.cancel()
            let stopped = Task {
                _ = try? await running.value
                return true
            }
            let finished = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await stopped.value }
                group.addTask {
                    try? await Task.sleep(for: .seconds(20))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(finished, "the cancelled worker did not stop")
            #expect(capture.count(of: "claiming failed") == 0)
            let row = try #require(
                try await conn.query("SELECT state::text AS s, attempts FROM godwit.jobs WHERE id = $1", [id]).first)
            #expect(try row.string("s") == "queued")
            #expect(try row.int("attempts") == 0)
            await pool.close()
        }
    }

    /// A worker whose own heartbeat was held up past the lease sees its job rescued and may
    /// claim it again while the first attempt still runs. The first attempt's end used to take
    /// the second out of `running`: its lease was no longer renewed, drain counted no job, and
    /// the second attempt's success could be lost. The second attempt could also be stopped by
    /// what was decided about the first one's lease. The test plays the rescue, either as the
    /// rescue does (the claim comes before the heartbeat sees the loss, nearly always), or in
    /// two steps so that the heartbeat has seen the first lease lost before the job is claimed.
    @Test(.timeLimit(.minutes(3)), arguments: [false, true])
    func aJobClaimedAgainByItsOwnWorkerKeepsItsPlace(heartbeatFirst: Bool) async throws {
        try await withQueue { db, conn, queue in
            let capture = LogCapture()
            let gates = AttemptGates()
            var configuration = WorkerConfiguration(databaseURL: db.url)
            configuration.concurrency = 2
            configuration.leaseTimeout = .seconds(10)
            // Claims come from the NOTIFY of the test's requeue, never from a poll in between.
            configuration.pollInterval = .seconds(600)
            let pool = configuration.makePool()
            let worker = Worker(
                configuration: configuration, pool: pool, handlers: [GatedJob(gates: gates)], logger: capture.logger)
            let id = try await queue.enqueue(kind: .gated, name: "gated", payload: "{}", on: conn)
            let running = Task { try await worker.run() }

            guard await eventually(timeout: .seconds(30), { gates.started(1) }) else {
                let row = try await conn.query(
                    "SELECT state::text AS state, last_error FROM godwit.jobs WHERE id = $1", [id]
                ).first
                Issue.record("the first attempt never started: \(row?["state"] ?? "") \(row?["last_error"] ?? "")")
                return
            }
            if heartbeatFirst {
                _ = try await conn.query(
                    "UPDATE godwit.jobs SET state = 'paused', worker_id = NULL, heartbeat_at = NULL WHERE id = $1", [id]
                )
                #expect(
                    await eventually { gates.interruption(of: 1) == .leaseLost },
                    "the heartbeat never saw the first attempt's lease lost")
            }
            _ = try await conn.query(
                "UPDATE godwit.jobs SET state = 'queued', worker_id = NULL, heartbeat_at = NULL, run_at = now() WHERE id = $1",
                [id])
            #expect(await eventually { gates.started(2) }, "the job was not claimed again")
            #expect(
                await eventually { gates.interruption(of: 1) == .leaseLost },
                "the first attempt was never told its lease was lost")

            // The first attempt ends; its success is fenced out, and the second keeps its slot.
            gates.release(1)
            #expect(
                await eventually { capture.count(of: "job outcome not recorded: the lease was lost") == 1 },
                "the first attempt's end was not fenced out")
            #expect(worker.status.runningJobs == 1, "the first attempt's end took the second out of running")
            let ended = try await conn.query("SELECT extract(epoch FROM clock_timestamp())::float8 AS t").first!
                .double("t")
            // Three heartbeats later, the second attempt's lease is still being renewed.
            let renewed = try await eventually(timeout: .seconds(60)) {
                let row = try await conn.query(
                    """
                    SELECT extract(epoch FROM heartbeat_at)::float8 AS beat, lease_token, state::text AS state
                    FROM godwit.jobs WHERE id = $1
                    """, [id]
                ).first!
                guard try row.string("state") == "running", try row.int64("lease_token") == 2 else { return false }
                return try row.double("beat") > ended + 3 * configuration.heartbeatInterval.seconds
            }
            #expect(renewed, "the second attempt's lease was not renewed after the first attempt ended")
            #expect(gates.interruption(of: 2) == nil, "the second attempt was told the first one's lease was lost")

            gates.release(2)
            #expect(try await eventually(timeout: .seconds(30)) { try await jobState(id, conn) == "succeeded" })
            worker.shutdown()
            try await running.value
            let attempts = try await conn.query("SELECT attempts FROM godwit.jobs WHERE id = $1", [id]).first!.int(
                "attempts")
            #expect(attempts == 2)
            await pool.close()
        }
    }

    /// The connect timeout is an hour: a worker that retried would hit the time limit.
    @Test(.timeLimit(.minutes(3))) func aWorkerThatCannotLogInFailsAtOnceWithoutThePassword() async throws {
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let role = "godwit_badlogin_\(UInt32.random(in: 0...UInt32.max))"
            try await admin.execute("CREATE ROLE \(role) LOGIN PASSWORD 'the-right-one'")
            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = "Secret-Wrong-9"
            let output = try await GodwitProcess.run(
                ["worker", "-D", try #require(components.string), "--connect-timeout", "3600", "--log-level", "debug"])
            #expect(output.status == 1)
            #expect(output.stderr.contains("password authentication failed"))
            #expect(!output.stderr.contains("Secret-Wrong-9") && !output.stdout.contains("Secret-Wrong-9"))
            // Not retried: an authentication failure will not pass.
            try await admin.execute("DROP ROLE \(role)")
            await admin.close()
        }
    }

    /// The worker would wait an hour for the silent server: only SIGTERM ends it before the
    /// time limit. The signal is sent once the worker is connecting, past its start-up (where
    /// SIGTERM still has its default action, on a machine slow enough).
    @Test(.timeLimit(.minutes(3))) func sigtermEndsAWorkerStillWaitingForTheDatabase() async throws {
        let server = try LoopbackListener()
        let worker = try GodwitProcess.start(
            ["worker", "-D", "postgres://nobody@127.0.0.1:\(server.port)/x", "--connect-timeout", "3600"])
        #expect(await eventually { server.acceptIfWaiting() || !worker.isRunning })
        try #require(worker.isRunning, "the worker ended before it connected: \(worker.currentStderr)")
        worker.signal(SIGTERM)
        let output = try await worker.wait()
        #expect(output.status == 0, "\(output.status): \(output.stderr)")
    }

    /// Deleting old jobs has a loop of its own: while it is stuck (here a trigger holds every
    /// DELETE until released), a dead worker's job is still rescued and run.
    @Test func aStuckCleanUpDoesNotHoldUpRescues() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE public.release (x int);
                CREATE FUNCTION public.hold_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    WHILE NOT EXISTS (SELECT FROM public.release) LOOP PERFORM pg_sleep(0.05); END LOOP;
                    RETURN OLD;
                END $$;
                CREATE TRIGGER hold_deletes BEFORE DELETE ON godwit.jobs FOR EACH ROW EXECUTE FUNCTION public.hold_deletes();
                INSERT INTO godwit.jobs (kind, name, state, finished_at) VALUES ('noop', 'old', 'succeeded', now() - interval '30 days');
                """)
            let worker = inProcessWorker(db.url)
            #expect(
                try await eventually {
                    try await conn.query(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'DELETE FROM%' AND wait_event = 'PgSleep'"
                    ).first!.int("n") == 1
                }, "the clean-up never started")
            // A job whose worker died a while ago: its lease (30 s) has expired.
            let orphan = try await conn.query(
                """
                INSERT INTO godwit.jobs (kind, name, state, attempts, worker_id, lease_token, heartbeat_at, started_at)
                VALUES ('noop', 'orphan', 'running', 1, 'dead', 1, now() - interval '1 minute', now()) RETURNING id
                """
            ).first!.int64("id")
            #expect(try await eventually(timeout: .seconds(120)) { try await jobState(orphan, conn) == "succeeded" })
            try await conn.execute("INSERT INTO public.release VALUES (1)")
            #expect(
                try await eventually {
                    try await conn.query("SELECT count(*) AS n FROM godwit.jobs WHERE name = 'old'").first!.int("n")
                        == 0
                })
            #expect(await worker.stop().status == 0)
        }
    }

    @Test func aRetryHonoursAPauseOrCancelRequestedMeanwhile() async throws {
        try await withQueue { _, conn, queue in
            for (control, expected) in [("pause", "paused"), ("cancel", "cancelled")] {
                let id = try await queue.enqueue(kind: .noop, name: control, on: conn)
                let job = try #require(try await queue.claim(limit: 1, workerID: "w", on: conn).first)
                #expect(try await queue.control(control == "pause" ? .pause : .cancel, job: id, on: conn))
                #expect(try await queue.finish(job, .retry(error: "deadlock", delay: .zero), on: conn))
                #expect(try await jobState(id, conn) == expected)
            }
        }
    }

    @Test func anUnknownJobStateIsAnErrorNotAFailedJob() async throws {
        try await withQueue { _, conn, queue in
            let id = try await queue.enqueue(kind: .noop, name: "odd", runAfter: .seconds(3600), on: conn)
            try await conn.execute("ALTER TYPE godwit.job_state ADD VALUE 'archived'")
            try await conn.query("UPDATE godwit.jobs SET state = 'archived' WHERE id = $1", [id])
            let error = try await #require(throws: PostgresError.self) { _ = try await queue.find(id, on: conn) }
            #expect(error.message.contains("job \(id) is in state \"archived\""))
        }
    }

    @Test func jobListAsJSONHasJSONValuesNumbersAndISOTimestamps() async throws {
        try await withQueue { db, conn, queue in
            _ = try await queue.enqueue(
                kind: .sql, name: "json", payload: #"{"sql": "SELECT 1", "n": [1, 2]}"#, on: conn)
            let list = try await GodwitCommand.run(["job", "list", "-D", db.url, "--format", "json"])
            #expect(list.status == 0, "\(list.stderr)")
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            let job = try #require(jobs.first)
            #expect((job["payload"] as? [String: Any])?["sql"] as? String == "SELECT 1")
            #expect(job["percent"] is NSNumber)
            let created = try #require(job["created_at"] as? String)
            #expect(
                created.range(
                    of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"#, options: .regularExpression)
                    != nil)
            #expect(job["enqueued_by"] as? String == "postgres")
        }
    }
}

@Suite("Migrate jobs report what they did")
struct MigrateJobReportTests {
    /// Migrations above the job's target version are skipped, and were reported as applied.
    @Test func skippedMigrationsAreNotReportedAsApplied() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);")
        try dir.write("migrations/2_b.sql", "CREATE TABLE b (id int);")
        try dir.write("migrations/3_c.sql", "CREATE TABLE c (id int);")
        try await withQueue { db, conn, _ in
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "--target-version", "2", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            let worker = try await drainWorker(db.url, directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            let job = try #require(
                try await conn.query("SELECT state::text AS s, result::text AS r FROM godwit.jobs").first)
            #expect(try job.string("s") == "succeeded")
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(try job.string("r").utf8)) as? [String: Any])
            #expect((result["applied"] as? [[String: Any]])?.map { $0["version"] as? Int } == [1, 2])
            #expect(try await conn.query("SELECT to_regclass('c') IS NULL AS absent").first?.bool("absent") == true)
        }
    }

    /// A migrate job whose second migration fails once on an error worth trying again (a
    /// serialization failure) runs again, and its result lists both migrations, the one the
    /// first attempt applied too; it listed only the last attempt's.
    @Test func theResultListsWhatEveryAttemptApplied() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);")
        try dir.write(
            "migrations/2_b.sql",
            """
            DO $$ BEGIN
                IF nextval('public.tries') = 1 THEN
                    RAISE EXCEPTION 'not this time' USING ERRCODE = 'serialization_failure';
                END IF;
            END $$;
            CREATE TABLE b (id int);
            """)
        try await withQueue { db, conn, _ in
            try await conn.execute("CREATE SEQUENCE public.tries")
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            let worker = try await drainWorker(db.url, directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            let job = try #require(
                try await conn.query("SELECT state::text AS s, attempts, result::text AS r FROM godwit.jobs").first)
            #expect(try job.string("s") == "succeeded")
            #expect(try job.int("attempts") == 2, "\(worker.stderr.suffix(2000))")
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(try job.string("r").utf8)) as? [String: Any])
            let applied = try #require(result["applied"] as? [[String: Any]])
            #expect(applied.map { $0["version"] as? Int } == [1, 2])
            #expect(applied.map { $0["description"] as? String } == ["a", "b"])
            #expect(applied.allSatisfy { $0["duration_ms"] is NSNumber })
            #expect(
                try await conn.query("SELECT count(*) AS n FROM godwit.job_errors WHERE attempt = 1").first?.int("n")
                    == 1)
        }
    }

    /// While a migrate job runs, its result already lists the migrations it has applied.
    @Test func aRunningJobsResultListsWhatItAppliedSoFar() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);")
        try dir.write("migrations/2_b.sql", "SELECT pg_advisory_xact_lock(4242);\nCREATE TABLE b (id int);")
        try await withQueue { db, conn, _ in
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            let holder = try await Connection.connect(db.url)
            try await holder.execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
            let worker = inProcessWorker(db.url, ["--drain"])
            let soFar = try await eventually(timeout: .seconds(120)) {
                try await conn.query(
                    "SELECT coalesce(jsonb_path_query_array(result, '$.applied[*].version') = '[1]', false) AS one FROM godwit.jobs WHERE state = 'running'"
                ).first?.bool("one") == true
            }
            #expect(soFar, "the running job's result never listed migration 1")
            try await holder.execute("COMMIT")
            await holder.close()
            let output = await worker.wait()
            #expect(output.status == 0, "\(output.stderr)")
            #expect(
                try await conn.query(
                    "SELECT jsonb_path_query_array(result, '$.applied[*].version')::text AS v FROM godwit.jobs"
                ).first?.string("v") == "[1, 2]")
        }
    }
}

extension JobKind {
    /// `GatedJob`, which only the fault tests run.
    static let gated = JobKind("gated")
}

/// What each attempt of a `GatedJob` did: whether it started, the first interruption it saw at
/// a checkpoint, and whether the test let it end.
final class AttemptGates: Sendable {
    private struct Attempt {
        var began = false
        var interruption: JobInterruption?
        var released = false
    }
    private let attempts = Mutex<[Int: Attempt]>([:])

    func started(_ attempt: Int) -> Bool { attempts.withLock { $0[attempt]?.began ?? false } }
    func interruption(of attempt: Int) -> JobInterruption? { attempts.withLock { $0[attempt]?.interruption } }
    func release(_ attempt: Int) { attempts.withLock { $0[attempt, default: Attempt()].released = true } }

    fileprivate func begin(_ attempt: Int) { attempts.withLock { $0[attempt, default: Attempt()].began = true } }
    fileprivate func released(_ attempt: Int) -> Bool { attempts.withLock { $0[attempt]?.released ?? false } }
    fileprivate func saw(_ interruption: JobInterruption, _ attempt: Int) {
        attempts.withLock { attempts in
            if attempts[attempt]?.interruption == nil { attempts[attempt]?.interruption = interruption }
        }
    }
}

/// A job whose every attempt runs until the test releases it, noting what its checkpoints say
/// instead of stopping there (but for the worker's shutdown); it then succeeds.
struct GatedJob: JobHandler {
    let kind = JobKind.gated
    let gates: AttemptGates

    func run(_ context: JobContext) async throws -> String? {
        let attempt = context.job.attempt
        gates.begin(attempt)
        while !gates.released(attempt) {
            do {
                try context.checkpoint()
            } catch let interruption as JobInterruption {
                gates.saw(interruption, attempt)
                if interruption == .shutdown { throw interruption }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}
