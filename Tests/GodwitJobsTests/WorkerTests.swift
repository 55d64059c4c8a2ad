import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// Starts the `godwit worker` process on `url` with fast timings suited to tests, for a worker
/// whose process is the point: killed, stopped, sent SIGTERM, or racing others. Any other
/// runs in-process (`inProcessWorker`, `drainWorker`).
func startWorker(_ url: String, _ extra: [String] = []) throws -> RunningProcess {
    try GodwitProcess.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--lease-timeout", "2", "--retry-delay", "0.05", "--log-level",
            "info",
        ]
            + testWorkerConnectTimeout + extra)
}

/// What a worker that stopped with a job running leaves: the job queued again, the attempt not
/// counted, no worker on it, and the worker's own row saying it stopped (an orderly exit).
func expectHandedBackByAStoppedWorker(_ id: Int64, _ conn: Connection) async throws {
    let row = try #require(
        try await conn.query("SELECT state::text AS s, attempts, worker_id FROM godwit.jobs WHERE id = $1", [id])
            .first)
    #expect(try row.string("s") == "queued")
    #expect(try row.int("attempts") == 0)
    #expect(row["worker_id"] == nil)
    let stopped = try await conn.query("SELECT bool_and(stopped_at IS NOT NULL) AS s FROM godwit.workers").first
    #expect(try stopped?.bool("s") == true)
}

/// Runs `godwit worker --drain` in this process (`GodwitCommand`), with `startWorker`'s
/// timings but the default lease (30 s), until the queue is drained; `directory` is its
/// working directory (`--migrate`'s folder, the default `--backup-dir`). In-process, its
/// heartbeats wait for the test process's cooperative pool (two threads) with every other
/// test: while the suite starts, hundreds of in-process commands parsing their arguments hold
/// both threads, and a task waited up to 4 s for one (measured), several times in a row. A
/// lease of 10 s was lost that way (the job rescued and run again), and one of 2 s would be
/// lost often. A worker that logs in as a job's enqueuer with the test roles' password file
/// gets it in its URL (`TestPasswordFile.url`). For a worker that is killed or stopped, use
/// `startWorker`.
func drainWorker(
    _ url: String, _ extra: [String] = [], directory: String? = nil
) async throws -> GodwitProcess.Output {
    try await GodwitCommand.run(
        [
            "worker", "-D", url, "--poll-interval", "1", "--retry-delay", "0.05", "--log-level", "info",
        ]
            + testWorkerConnectTimeout + ["--drain"] + extra, directory: directory)
}

/// Starts `godwit worker` in this process (`GodwitCommand.start`), with `drainWorker`'s
/// timings (the default lease, 30 s), for a worker that runs jobs while the test watches and acts:
/// `stop()` ends it (cancelled: running jobs go back to the queue) and returns its output.
/// `extra` comes last, so it may set another lease. For a worker that is killed, stopped or
/// sent SIGTERM, or several racing, use `startWorker`.
func inProcessWorker(_ url: String, _ extra: [String] = []) -> RunningCommand {
    GodwitCommand.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--retry-delay", "0.05", "--log-level", "info",
        ]
            + testWorkerConnectTimeout + extra)
}

func jobState(_ id: Int64, _ conn: Connection) async throws -> String {
    try await conn.query("SELECT state::text AS s FROM godwit.jobs WHERE id = $1", [id]).first?.string("s") ?? "missing"
}

@Suite("godwit worker (the executable)", .serialized)
struct WorkerTests {
    @Test func fourWorkersRunEachOfAThousandJobsExactlyOnce() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE runs (label text, pid int DEFAULT pg_backend_pid());
                INSERT INTO godwit.jobs (kind, name, payload)
                SELECT 'sql', 'run ' || g, jsonb_build_object('sql', format('INSERT INTO runs (label) VALUES (%L)', 'job-' || g))
                FROM generate_series(1, 1000) g;
                """)
            // A lease of 10 s, not startWorker's 2 s: sixteen jobs at once on a loaded machine can
            // hold a heartbeat up past 2 s, and a rescue (a second attempt, fenced) is not what
            // this test is about.
            let workers = try (0..<4).map { _ in
                try startWorker(db.url, ["--drain", "--concurrency", "4", "--lease-timeout", "10"])
            }
            var outputs: [GodwitProcess.Output] = []
            for worker in workers { outputs.append(try await worker.wait()) }
            for output in outputs { #expect(output.status == 0, "\(output.stderr.suffix(2000))") }
            let counts = try #require(
                try await conn.query("SELECT count(*) AS n, count(DISTINCT label) AS d FROM runs").first)
            #expect(try counts.int("n") == 1000)
            #expect(try counts.int("d") == 1000)
            let others = try await conn.query(
                """
                SELECT string_agg(format('%s %s after %s attempts (%s)', id, state, attempts, last_error), '; ') AS s
                FROM godwit.jobs WHERE state <> 'succeeded' OR attempts <> 1
                """
            ).first?["s"]
            #expect(others == nil, "every job succeeded at its first attempt")
            // The work was shared: more than one worker ran jobs (worker_id stays on a finished job).
            let workersUsed = try await conn.query("SELECT count(DISTINCT worker_id) AS n FROM godwit.jobs").first?.int(
                "n")
            #expect((workersUsed ?? 0) > 1)
            let started = outputs.map { $0.stderr.components(separatedBy: "job succeeded").count - 1 }
            #expect(started.reduce(0, +) == 1000)
            #expect(started.filter { $0 > 0 }.count > 1)
        }
    }

    @Test func aKilledWorkersJobIsRescuedAndItsLateWriteChangesNothing() async throws {
        try await withQueue { db, conn, queue in
            // The first attempt sleeps until the test releases it, so it is still running when
            // its worker is killed however slow the machine; the rescued attempt does not.
            try await conn.execute("CREATE TABLE release (x int)")
            let id = try await queue.enqueue(
                kind: .sql, name: "long",
                payload:
                    #"{"sql": "SELECT pg_sleep(CASE WHEN EXISTS (SELECT FROM public.release) THEN 0 ELSE 60 END)"}"#,
                on: conn)
            let doomed = try startWorker(db.url)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            let firstToken = try await conn.query("SELECT lease_token FROM godwit.jobs WHERE id = $1", [id]).first!
                .int64("lease_token")
            doomed.signal(SIGKILL)
            _ = try await doomed.wait()
            // The dead worker's backend would run on until it next wrote to the lost socket.
            try await conn.execute(
                """
                INSERT INTO release VALUES (1);
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE pid <> pg_backend_pid() AND query LIKE '%pg_sleep(CASE WHEN EXISTS%' AND datname = current_database()
                """)
            let rescuer = inProcessWorker(db.url)
            #expect(try await eventually(timeout: .seconds(120)) { try await jobState(id, conn) == "succeeded" })
            let row = try #require(
                try await conn.query("SELECT attempts, lease_token, last_error FROM godwit.jobs WHERE id = $1", [id])
                    .first)
            #expect(try row.int("attempts") == 2)
            #expect(try row.int64("lease_token") > firstToken)
            // The success cleared last_error; the rescue's error is in the history.
            #expect(row["last_error"] == nil)
            #expect(
                try await conn.query("SELECT error FROM godwit.job_errors WHERE job_id = $1 AND attempt = 1", [id])
                    .first?
                    .string("error").contains("lease expired") == true)
            // The dead worker's write, had it come back: fenced off.
            let late = ClaimedJob(
                id: id, kind: .sql, name: "long", payload: "{}", attempt: 1, maxAttempts: 10, leaseToken: firstToken,
                enqueuedBy: "postgres")
            #expect(try await !queue.finish(late, .failed(error: "late", result: nil), on: conn))
            #expect(try await jobState(id, conn) == "succeeded")
            #expect(await rescuer.stop().status == 0)
        }
    }

    @Test func aRestartedServerIsReconnectedAndTheQueueFinishes() async throws {
        let cluster = try await PrivateCluster()
        do {
            let url = try TestDatabase.url(cluster.url, database: "postgres")
            let conn = try await Connection.connect(url)
            let queue = JobQueue(schema: .withJobs())
            try await queue.schema.install(on: conn)
            let first = try await queue.enqueue(kind: .noop, name: "before", on: conn)
            await conn.close()
            let worker = try startWorker(url, ["--concurrency", "2"])
            var observer = try await Connection.connect(url)
            #expect(try await eventually { try await jobState(first, observer) == "succeeded" })
            await observer.close()
            try await cluster.stop()
            try await Task.sleep(for: .milliseconds(500))
            try await cluster.start()
            observer = try await Connection.connect(url, retryingFor: .seconds(10))
            // Plain inserts after the restart: only a re-LISTENed worker (or its poll) sees them.
            var ids: [Int64] = []
            for n in 0..<5 { ids.append(try await queue.enqueue(kind: .noop, name: "after \(n)", on: observer)) }
            ids.append(
                try await queue.enqueue(
                    kind: .sql, name: "after sleep", payload: #"{"sql": "SELECT pg_sleep(0.1)"}"#, on: observer))
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    try await observer.query("SELECT count(*) AS n FROM godwit.jobs WHERE state = 'succeeded'").first?
                        .int("n") == 7
                })
            worker.signal(SIGTERM)
            let output = try await worker.wait()
            #expect(output.status == 0)
            #expect(output.stderr.contains("LISTEN connection lost; reconnecting"))
            await observer.close()
        } catch {
            await cluster.destroy()
            throw error
        }
        await cluster.destroy()
    }

    @Test func pauseResumeCancelAndRetryFromSQLAndTheCLI() async throws {
        try await withQueue { db, conn, queue in
            let worker = inProcessWorker(db.url)
            // About 4 s of 0.2 s batches: a checkpoint between every two.
            let id = try await enqueueSlowBackfill(rows: 200, seconds: 0.2, on: conn)
            #expect(try await eventually { try await jobState(id, conn) == "running" })

            func attempts() async throws -> Int? {
                try await conn.query("SELECT attempts FROM godwit.jobs WHERE id = $1", [id]).first?.int("attempts")
            }
            // From SQL: a running job stops at its next checkpoint, and a pause costs no attempt.
            #expect(try await conn.query("SELECT godwit.pause($1) AS c", [id]).first?.bool("c") == true)
            #expect(try await eventually { try await jobState(id, conn) == "paused" })
            #expect(try await attempts() == 0)
            #expect(try await conn.query("SELECT godwit.resume($1) AS c", [id]).first?.bool("c") == true)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            // From the CLI, which says what it did.
            let pausing = try await GodwitCommand.run(["job", "pause", "\(id)", "-D", db.url])
            #expect(pausing.stdout == "job \(id): pausing: it stops at its next checkpoint\n", "\(pausing.stderr)")
            #expect(try await eventually { try await jobState(id, conn) == "paused" })
            #expect(try await attempts() == 0)
            let resumed = try await GodwitCommand.run(["job", "resume", "\(id)", "-D", db.url])
            #expect(resumed.stdout == "job \(id): resumed (queued)\n", "\(resumed.stderr)")
            #expect(try await eventually { try await jobState(id, conn) == "running" })

            // From the CLI.
            let cancel = try await GodwitCommand.run(["job", "cancel", "\(id)", "-D", db.url])
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(try await eventually { try await jobState(id, conn) == "cancelled" })
            // Asking again is no error: the controls say what is already so.
            let again = try await GodwitCommand.run(["job", "cancel", "\(id)", "-D", db.url])
            #expect(again.status == 0)
            #expect(again.stdout == "job \(id): already cancelled\n")
            let retry = try await GodwitCommand.run(["job", "retry", "\(id)", "-D", db.url])
            #expect(retry.status == 0)
            #expect(try await eventually(timeout: .seconds(120)) { try await jobState(id, conn) == "succeeded" })

            let paused = try await queue.enqueue(kind: .noop, name: "later", runAfter: .seconds(3600), on: conn)
            let pause = try await GodwitCommand.run(["job", "pause", "\(paused)", "-D", db.url])
            #expect(pause.stdout == "job \(paused): paused\n")
            let pauseAgain = try await GodwitCommand.run(["job", "pause", "\(paused)", "-D", db.url])
            #expect(pauseAgain.status == 0)
            #expect(pauseAgain.stdout == "job \(paused): already paused\n")
            let resume = try await GodwitCommand.run(["job", "resume", "\(paused)", "-D", db.url])
            #expect(resume.status == 0)
            #expect(try await eventually { try await jobState(paused, conn) == "succeeded" })

            let list = try await GodwitCommand.run(["job", "list", "-D", db.url, "--format", "json"])
            let jobs = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
            #expect(jobs?.count == 2)
            let show = try await GodwitCommand.run(["job", "show", "\(id)", "-D", db.url])
            #expect(show.stdout.contains("\"state\" : \"succeeded\""))

            let output = await worker.stop()
            #expect(output.stderr.contains("job paused"))
            #expect(output.stderr.contains("job cancelled"))
        }
    }

    /// Past --shutdown-timeout the worker cancels its running jobs' statements, and still
    /// records that they go back to the queue: its connections outlive every outcome.
    @Test func aJobCancelledAtTheShutdownTimeoutIsHandedBack() async throws {
        try await withQueue { db, conn, queue in
            let worker = try startWorker(db.url, ["--shutdown-timeout", "1"])
            let id = try await queue.enqueue(
                kind: .sql, name: "long", payload: #"{"sql": "SELECT pg_sleep(600)"}"#, on: conn)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            worker.signal(SIGTERM)
            let output = try await worker.wait()
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(!output.stderr.contains("pool is closed"), "\(output.stderr.suffix(1500))")
            let row = try #require(
                try await conn.query("SELECT state::text AS s, attempts FROM godwit.jobs WHERE id = $1", [id]).first)
            #expect(try row.string("s") == "queued", "\(output.stderr.suffix(1500))")
            #expect(try row.int("attempts") == 0)
        }
    }

    /// With an hour's shutdown timeout, only the job stopping at its next checkpoint ends the
    /// worker before the time limit.
    @Test(.timeLimit(.minutes(5))) func sigtermHandsRunningJobsBackToTheQueue() async throws {
        try await withQueue { db, conn, queue in
            let worker = try startWorker(db.url, ["--shutdown-timeout", "3600"])
            let id = try await enqueueSlowBackfill(rows: 3000, seconds: 0.2, on: conn)
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            worker.signal(SIGTERM)
            let output = try await worker.wait()
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stderr.contains("job handed back to the queue"))
            try await expectHandedBackByAStoppedWorker(id, conn)
        }
    }

    @Test func badJobsFailClearlyAndTheWorkerKeepsServing() async throws {
        try await withQueue { db, conn, queue in
            let malformed = try await queue.enqueue(
                kind: .sql, name: "malformed", payload: #"{"query": "SELECT 1"}"#, on: conn)
            let unknown = try await queue.enqueue(kind: JobKind("teleport"), name: "unknown", on: conn)
            let badSQL = try await queue.enqueue(
                kind: .sql, name: "bad sql", payload: #"{"sql": "SELEKT 1"}"#, on: conn)
            // Fails its first two attempts with a serialization failure.
            let flaky = try await queue.enqueue(
                kind: .sql, name: "flaky",
                payload:
                    #"{"sql": "DO $$ BEGIN IF (SELECT attempts FROM godwit.jobs WHERE name = 'flaky') < 3 THEN RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = '40001'; END IF; END $$"}"#,
                on: conn)
            let fine = try await queue.enqueue(kind: .noop, name: "fine", on: conn)
            let output = try await drainWorker(db.url)
            #expect(output.status == 0)
            let rows = try await conn.query(
                "SELECT id, state::text AS s, attempts, last_error FROM godwit.jobs ORDER BY id"
            ).rows
            let byID = Dictionary(uniqueKeysWithValues: try rows.map { (try $0.int64("id"), $0) })
            #expect(byID[malformed]?["s"] == "failed")
            #expect(
                byID[malformed]?["last_error"]
                    == "job \(malformed) (sql \"malformed\"): malformed payload: missing field \"sql\"")
            #expect(byID[unknown]?["s"] == "failed")
            #expect(byID[unknown]?["last_error"]?.hasPrefix("unknown job kind \"teleport\"") == true)
            // A syntax error is permanent: failed on the first attempt.
            #expect(byID[badSQL]?["s"] == "failed")
            #expect(byID[badSQL]?["attempts"] == "1")
            #expect(byID[badSQL]?["last_error"]?.contains("SQLSTATE 42601") == true)
            // A serialization failure is transient: retried with backoff until it succeeds.
            #expect(byID[flaky]?["s"] == "succeeded")
            #expect(byID[flaky]?["attempts"] == "3")
            // Its success cleared last_error; both failed attempts are in the history.
            #expect(byID[flaky]?["last_error"] == nil)
            let flakyErrors = try await conn.query(
                "SELECT attempt, error FROM godwit.job_errors WHERE job_id = $1 ORDER BY id", [flaky]
            ).rows
            #expect(try flakyErrors.map { try $0.int("attempt") } == [1, 2])
            #expect(try flakyErrors.allSatisfy { try $0.string("error").contains("40001") })
            #expect(byID[fine]?["s"] == "succeeded")
        }
    }

    @Test func aMigrateJobWithABackupAppliesTheReviewedFilesAndRestores() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(
            "migrations/1_items.sql",
            "CREATE TABLE items (id int PRIMARY KEY, label text);\nINSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;"
        )
        try dir.write("migrations/2_more.sql", "ALTER TABLE items ADD COLUMN price numeric DEFAULT 0;")
        try await withQueue { db, conn, _ in
            // The database is in use: migration 1 and its data are there before the job.
            let first = try await GodwitCommand.run(
                ["migrate", "run", "--target-version", "1", "-D", db.url], directory: dir.path)
            #expect(first.status == 0, "\(first.stderr)")
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "--backup", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            #expect(Int64(enqueue.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(enqueue.stdout)")
            // What the worker applies is what was enqueued, not what the folder holds later.
            try dir.write("migrations/2_more.sql", "ALTER TABLE items ADD COLUMN changed_after_review int;")
            let worker = try await drainWorker(db.url, directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            let job = try #require(
                try await conn.query(
                    "SELECT state::text AS s, result::text AS r FROM godwit.jobs WHERE kind = 'migrate'"
                ).first)
            #expect(try job.string("s") == "succeeded")
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(try job.string("r").utf8)) as? [String: Any])
            #expect((result["applied"] as? [[String: Any]])?.map { $0["version"] as? Int } == [2])
            let backup = try #require(result["backup"] as? [String: Any])
            let file = try #require(backup["file"] as? String)
            let path = file.hasPrefix("/") ? file : "\(dir.path)/\(file)"
            #expect((file as NSString).lastPathComponent.hasPrefix("backup-"))
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            #expect(
                try await conn.query(
                    "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'price'"
                ).first?.int("n") == 1)
            let recorded = try await conn.query("SELECT sha256, size_bytes FROM godwit.backups").first
            #expect(try recorded?.string("sha256") == (backup["sha256"] as? String))

            // The backup verifies, and restores.
            let verify = try await GodwitCommand.run(["backup", "verify", path])
            #expect(verify.status == 0)
            #expect(verify.stdout.contains(": ok,"))
            let refused = try await GodwitCommand.run(["backup", "restore", path, "-D", db.url])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("run again with --yes"))
            try await conn.execute("DELETE FROM items WHERE id > 100")
            let restore = try await GodwitCommand.run(["backup", "restore", path, "--yes", "-D", db.url])
            #expect(restore.status == 0, "\(restore.stderr)")
            // The dump was taken before migration 2: all 500 rows, no price column, and a
            // ledger that agrees.
            #expect(try await conn.query("SELECT count(*) AS n FROM items").first?.int("n") == 500)
            #expect(
                try await conn.query(
                    "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'price'"
                ).first?.int("n") == 0)
            #expect(
                try await conn.query("SELECT array_agg(version)::text AS v FROM _sqlx_migrations").first?.string("v")
                    == "{1}")
            // Godwit's own tables were not rewound.
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 1)
        }
    }

    @Test func aFailedMigrateJobNamesTheMigrationTheErrorAndTheBackup() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_ok.sql", "CREATE TABLE ok (id int);")
        try dir.write("migrations/2_bad.sql", "ALTER TABLE missing_table ADD COLUMN x int;")
        try await withQueue { db, conn, _ in
            _ = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "--backup", "-D", db.url], directory: dir.path)
            _ = try await drainWorker(db.url, directory: dir.path)
            let job = try #require(
                try await conn.query("SELECT state::text AS s, result::text AS r, last_error FROM godwit.jobs").first)
            #expect(try job.string("s") == "failed")
            let error = try job.string("last_error")
            #expect(error.contains("migration 2 failed at migrations/2_bad.sql"))
            #expect(error.contains("SQLSTATE 42P01"))
            #expect(error.contains("godwit backup restore "))
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(try job.string("r").utf8)) as? [String: Any])
            #expect(result["failed_migration"] as? Int == 2)
            #expect((result["restore_with"] as? String)?.hasSuffix("--yes") == true)
            #expect((result["applied"] as? [[String: Any]])?.map { $0["version"] as? Int } == [1])
        }
    }

    @Test func workerMigrateFlagAppliesPendingMigrationsFirst() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_t.sql", "CREATE TABLE t (id int);")
        try await withTestDatabase { db in
            let output = try await drainWorker(db.url, ["--migrate"], directory: dir.path)
            #expect(output.status == 0, "\(output.stderr)")
            let conn = try await db.connect()
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 1)
            await conn.close()
        }
    }

    /// The worker's own statements (claim, heartbeat, rescue, outcome) compare Godwit's enum with
    /// `=`. An `=` on that enum planted where the login searches would run as the worker at the
    /// next claim: in `public` (anyone may create there up to PostgreSQL 14, and in every database
    /// upgraded from one), or in a schema named like the login role (`"$user"` comes first). The
    /// worker's and the CLI's sessions pin search_path to pg_catalog, pg_temp at login, so they
    /// never call it.
    @Test(arguments: ["public", "postgres"])
    func nothingPlantedInTheLoginsSearchPathRunsInTheWorkersStatements(_ schema: String) async throws {
        try await withQueue { db, conn, _ in
            let planted = quoteIdentifier(schema)
            try await conn.execute(
                """
                CREATE SCHEMA IF NOT EXISTS \(planted);
                CREATE TABLE public.calls (what text);
                GRANT INSERT ON public.calls TO PUBLIC;
                CREATE FUNCTION \(planted).state_eq(a godwit.job_state, b godwit.job_state) RETURNS boolean
                    LANGUAGE plpgsql AS $$BEGIN INSERT INTO public.calls VALUES (current_user); RETURN a::text OPERATOR(pg_catalog.=) b::text; END$$;
                CREATE OPERATOR \(planted).= (LEFTARG = godwit.job_state, RIGHTARG = godwit.job_state, FUNCTION = \(planted).state_eq);
                CREATE TABLE public.runs (x int);
                INSERT INTO godwit.jobs (kind, name, payload) VALUES ('sql', 'one', '{"sql": "INSERT INTO public.runs VALUES (1)"}');
                """)
            // The plant works for any session that does not pin its search_path.
            let plain = try await db.connect()
            #expect(
                try await plain.query("SELECT count(*) AS n FROM godwit.jobs WHERE state = 'queued'").first?.int("n")
                    == 1)
            #expect(try await plain.query("SELECT count(*) AS n FROM public.calls").first?.int("n") == 1)
            try await plain.execute("TRUNCATE public.calls")
            await plain.close()
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(2000))")
            #expect(try await conn.query("SELECT count(*) AS n FROM public.runs").first?.int("n") == 1)
            // The CLI's reads and controls of the queue pin it too.
            let list = try await GodwitCommand.run(["job", "list", "-D", db.url])
            #expect(list.status == 0 && list.stdout.contains("succeeded"), "\(list.stderr)")
            #expect(try await GodwitCommand.run(["job", "show", "1", "-D", db.url]).status == 0)
            _ = try await GodwitCommand.run(["job", "retry", "1", "-D", db.url])
            let calls = try await conn.query("SELECT what FROM public.calls").rows.map { try $0.string("what") }
            #expect(calls.isEmpty, "the worker or the CLI called \(calls)")
        }
    }
}
