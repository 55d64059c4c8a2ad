import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `godwit workers --format json`, decoded.
func listedWorkers(_ url: String) async throws -> [WorkerRecord] {
    let output = try await GodwitCommand.run(["workers", "--format", "json", "-D", url])
    guard output.status == 0 else { throw TestSetupError(message: "godwit workers failed: \(output.stderr)") }
    return try JSONDecoder().decode([WorkerRecord].self, from: Data(output.stdout.utf8))
}

/// The workers table, the stale marker and each attempt's error (issue: a dead worker's job
/// looked healthy, and a job that succeeded kept a red "lease expired").
@Suite("Workers, stale jobs and the error history", .serialized)
struct WorkerRegistryTests {
    @Test func aWorkerWritesItsRowBeatsAndMarksAnOrderlyExit() async throws {
        try await withQueue { db, conn, _ in
            // In-process: the worker's row names the test process.
            let pid = Int(ProcessInfo.processInfo.processIdentifier)
            let worker = inProcessWorker(db.url, ["--concurrency", "3"])
            #expect(
                try await eventually {
                    try await conn.query("SELECT 1 FROM godwit.workers WHERE pid = $1", [pid]).first != nil
                })
            let row = try #require(
                try await conn.query(
                    """
                    SELECT id, login::text AS login, host, version, concurrency, heartbeat_at::text AS beat,
                        stopped_at IS NULL AS live
                    FROM godwit.workers WHERE pid = $1
                    """, [pid]
                ).first)
            #expect(try row.string("login") == "postgres")
            #expect(try row.string("host") == ProcessInfo.processInfo.hostName)
            #expect(try row.string("version") == "0.1.0")
            #expect(try row.int("concurrency") == 3)
            #expect(try row.bool("live"))
            let id = try row.string("id")
            // The heartbeat moves on while the worker idles (no job to renew).
            let first = try row.string("beat")
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try await conn.query("SELECT heartbeat_at::text AS b FROM godwit.workers WHERE id = $1", [id])
                        .first?.string("b") != first
                })
            let running = try await listedWorkers(db.url)
            #expect(running.map(\.id) == [id])
            #expect(running.first?.state == "running")
            #expect(running.first?.runningJobs == 0)

            let output = await worker.stop()
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            #expect(
                try await conn.query("SELECT stopped_at IS NOT NULL AS s FROM godwit.workers WHERE id = $1", [id])
                    .first?.bool("s") == true)
            let stopped = try await listedWorkers(db.url)
            #expect(stopped.first?.state == "stopped")
            let text = try await GodwitCommand.run(["workers", "-D", db.url])
            #expect(text.status == 0, "\(text.stderr)")
            let lines = text.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("ID") == true, "\(text.stdout)")
            #expect(lines.count == 2 && lines[1].contains(id) && lines[1].contains("stopped"), "\(text.stdout)")
        }
    }

    @Test func housekeepingDeletesWorkersGoneForADay() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                INSERT INTO godwit.workers (id, heartbeat_at, stopped_at) VALUES
                    ('stopped-long-ago', now() - interval '2 days', now() - interval '25 hours'),
                    ('vanished-long-ago', now() - interval '25 hours', NULL),
                    ('stopped-lately', now() - interval '1 hour', now() - interval '1 hour'),
                    ('vanished-lately', now() - interval '23 hours', NULL);
                """)
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            let left = try await conn.query("SELECT id FROM godwit.workers WHERE id NOT LIKE '%:%' ORDER BY id").rows
                .map { try $0.string("id") }
            #expect(left == ["stopped-lately", "vanished-lately"])
        }
    }

    /// A worker killed in the middle of a job: the job still says running, and nothing renews
    /// it (its lease is long). The stale marker shows in list, show, watch and workers.
    @Test func aDeadWorkersJobIsMarkedStaleEverywhere() async throws {
        try await withQueue { db, conn, _ in
            let id = try #require(
                try await conn.query(
                    "INSERT INTO godwit.jobs (kind, name, payload) VALUES ('sql', 'long', '{\"sql\": \"SELECT pg_sleep(600)\"}') RETURNING id"
                ).first?.int64("id"))
            let worker = try GodwitProcess.start(
                ["worker", "-D", db.url, "--lease-timeout", "600", "--log-level", "info"])
            #expect(try await eventually { try await jobState(id, conn) == "running" })
            let workerID = try #require(
                try await conn.query("SELECT worker_id FROM godwit.jobs WHERE id = $1", [id]).first?.string("worker_id")
            )
            // Live: not stale.
            #expect(
                try await conn.query("SELECT stale FROM godwit.progress WHERE id = $1", [id]).first?.bool("stale")
                    == false)
            worker.signal(SIGKILL)
            _ = try await worker.wait()
            // Its last heartbeat, as if it had died 42 seconds ago (again, should a beat sent just
            // before the kill land after the first try).
            #expect(
                try await eventually {
                    try await conn.execute(
                        """
                        UPDATE godwit.workers SET heartbeat_at = now() - interval '42 seconds';
                        UPDATE godwit.jobs SET heartbeat_at = now() - interval '42 seconds' WHERE id = \(id);
                        """)
                    return try await conn.query("SELECT stale FROM godwit.progress WHERE id = $1", [id]).first?.bool(
                        "stale")
                        == true
                })
            let marker = "stale: worker \(workerID) not seen for "

            let list = try await GodwitCommand.run(["job", "list", "-D", db.url])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains(marker), "\(list.stdout)")

            let show = try await GodwitCommand.run(["job", "show", "\(id)", "-D", db.url])
            #expect(show.status == 0, "\(show.stderr)")
            struct Shown: Decodable {
                var stale: Bool
                var staleMarker: String?
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let shown = try decoder.decode(Shown.self, from: Data(show.stdout.utf8))
            #expect(shown.stale)
            #expect(shown.staleMarker?.hasPrefix(marker) == true, "\(show.stdout)")

            let watch = GodwitCommand.start(["job", "watch", "\(id)", "--interval", "0.2", "-D", db.url])
            #expect(await eventually { watch.currentStdout.contains(marker) }, "\(watch.currentStdout)")
            _ = await watch.stop()

            let workers = try await listedWorkers(db.url)
            let dead = try #require(workers.first { $0.id == workerID })
            #expect(dead.state == "stale")
            #expect(dead.runningJobs == 1)
            #expect(dead.unseenSeconds >= 42)
        }
    }

    /// Every failed attempt is kept, from the worker's retry path and from a rescue after an
    /// expired lease; the success clears last_error, and `job show` lists the history.
    @Test func eachAttemptsErrorIsKeptAndASuccessClearsTheLastOne() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE SEQUENCE tries;
                INSERT INTO godwit.jobs (kind, name, payload, state, worker_id, heartbeat_at, attempts)
                VALUES ('sql', 'flaky', jsonb_build_object('sql',
                    $s$DO $d$ BEGIN IF nextval('tries') < 3 THEN
                        RAISE EXCEPTION 'try % failed', currval('tries') USING ERRCODE = '40001'; END IF; END $d$$s$),
                    'running', 'ghost', now() - interval '1 hour', 1);
                """)
            let id = try #require(try await conn.query("SELECT id FROM godwit.jobs").first?.int64("id"))
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            let job = try #require(
                try await conn.query(
                    "SELECT state::text AS s, last_error, last_error_detail FROM godwit.jobs WHERE id = $1", [id]
                )
                .first)
            #expect(try job.string("s") == "succeeded")
            #expect(job["last_error"] == nil)
            #expect(job["last_error_detail"] == nil)
            let errors = try await conn.query(
                "SELECT attempt, worker_id, error FROM godwit.job_errors WHERE job_id = $1 ORDER BY id", [id]
            ).rows
            #expect(errors.count == 3)
            if errors.count == 3 {
                #expect(try errors[0].string("error").hasPrefix("lease expired: worker ghost"))
                #expect(errors[0]["worker_id"] == "ghost")
                #expect(try errors[0].int("attempt") == 1)
                #expect(try errors[1].string("error").contains("try 1 failed"))
                #expect(try errors[1].int("attempt") == 2)
                #expect(try errors[2].string("error").contains("try 2 failed"))
                #expect(try errors[2].int("attempt") == 3)
                #expect(errors[1]["worker_id"] != nil && errors[1]["worker_id"] != "ghost")
            }
            let show = try await GodwitCommand.run(["job", "show", "\(id)", "-D", db.url])
            #expect(show.status == 0, "\(show.stderr)")
            struct Shown: Decodable {
                struct Failure: Decodable {
                    var attempt: Int
                    var error: String
                }
                var lastError: String?
                var errors: [Failure]
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let shown = try decoder.decode(Shown.self, from: Data(show.stdout.utf8))
            #expect(shown.lastError == nil)
            #expect(shown.errors.map(\.attempt) == [1, 2, 3], "\(show.stdout)")
            // The errors go with their job.
            try await conn.query("DELETE FROM godwit.jobs WHERE id = $1", [id])
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.job_errors").first?.int("n") == 0)
        }
    }

    /// The parallel job's failed shard, the worker's final failure: each path leaves its row.
    @Test func aFailedJobKeepsItsErrorAndDetailInTheHistory() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE t (v int CHECK (v > 0));
                INSERT INTO godwit.jobs (kind, name, payload, max_attempts)
                VALUES ('sql', 'bad', '{"sql": "INSERT INTO t VALUES (-1)"}', 1);
                """)
            let output = try await drainWorker(db.url)
            #expect(output.status == 0, "\(output.stderr.suffix(1500))")
            let row = try #require(
                try await conn.query(
                    """
                    SELECT j.state::text AS s, j.last_error, e.error, e.error_detail, e.attempt
                    FROM godwit.jobs j JOIN godwit.job_errors e ON e.job_id = j.id
                    """
                ).first)
            #expect(try row.string("s") == "failed")
            #expect(row["error"] == row["last_error"])
            #expect(row["error_detail"]?.contains("Failing row contains") == true)
            #expect(try row.int("attempt") == 1)
        }
    }
}
