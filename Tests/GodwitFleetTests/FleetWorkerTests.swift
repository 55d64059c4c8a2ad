import Foundation
import GodwitFleet
import GodwitPostgres
import GodwitTestSupport
import Synchronization
import Testing

/// Databases of the test server, each with a table `items` of `rows` rows whose counter `n`
/// starts at 0: a backfill that adds 1 to `n` changes each row exactly once when every row
/// ends at 1. Dropped afterwards, whatever happened.
struct BackfillFleet {
    let databases: [TestDatabase]
    let rows: Int

    /// The targets file's text: `db0 URL`, `db1 URL`, ...
    var targetsText: String {
        databases.enumerated().map { "db\($0.offset) \($0.element.url)" }.joined(separator: "\n") + "\n"
    }

    static func with<T>(
        databases count: Int, rows: Int, _ body: (BackfillFleet) async throws -> T
    ) async throws -> T {
        var databases: [TestDatabase] = []
        do {
            for _ in 0..<count { databases.append(try await TestDatabase.create(prefix: "godwit_fleet")) }
            for database in databases {
                try await Connection.withConnection(database.url) { conn in
                    try await conn.execute(
                        """
                        CREATE TABLE items (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0);
                        INSERT INTO items (id) SELECT g FROM generate_series(1, \(rows)) g;
                        """)
                }
            }
            let value = try await body(BackfillFleet(databases: databases, rows: rows))
            for database in databases { try? await database.drop() }
            return value
        } catch {
            for database in databases { try? await database.drop() }
            throw error
        }
    }

    /// A batched job that adds 1 to every row's counter, in batches of at most `batch` rows.
    static func backfillJob(batch: Int = 100, pauseMs: Int = 0) -> String {
        """
        -- godwit:batched
        -- name: count_items
        -- table: items
        -- key: id
        -- batch-size: \(batch)
        -- max-batch-size: \(batch)
        -- min-batch-size: \(batch)
        -- pause-ms: \(pauseMs)
        UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2;
        """
    }

    /// The states of the jobs in each database's queue (an empty list where the queue is not
    /// installed).
    func jobStates(prefix: String = "") async throws -> [[String]] {
        var states: [[String]] = []
        for database in databases {
            states.append(
                try await Connection.withConnection(database.url, options: Self.checkOptions) { conn in
                    guard
                        try await conn.query("SELECT to_regclass('godwit.jobs') IS NOT NULL AS q").first?.bool("q")
                            == true
                    else { return [] }
                    return try await conn.query("SELECT state::text AS s FROM godwit.jobs ORDER BY id").rows.map {
                        try $0.string("s")
                    }
                })
        }
        return states
    }

    /// Per database: how many rows have a counter other than 1, and how many rows there are.
    func counters() async throws -> [(wrong: Int, total: Int)] {
        var result: [(Int, Int)] = []
        for database in databases {
            result.append(
                try await Connection.withConnection(database.url, options: Self.checkOptions) { conn in
                    let row = try await conn.query(
                        "SELECT count(*) FILTER (WHERE n <> 1) AS wrong, count(*) AS total FROM items"
                    ).first!
                    return (try row.int("wrong"), try row.int("total"))
                })
        }
        return result
    }

    /// Per database: its one job's state, rows done and attempts (empty state before the queue
    /// is installed).
    func progress() async throws -> [(state: String, rowsDone: Int, attempts: Int)] {
        var result: [(String, Int, Int)] = []
        for database in databases {
            result.append(
                try await Connection.withConnection(database.url, options: Self.checkOptions) { conn in
                    guard
                        let row = try await conn.query(
                            """
                            SELECT state::text AS state, coalesce(rows_done, 0) AS rows_done, attempts
                            FROM godwit.progress ORDER BY id LIMIT 1
                            """
                        ).first
                    else { return ("", 0, 0) }
                    return (try row.string("state"), try row.int("rows_done"), try row.int("attempts"))
                })
        }
        return result
    }

    /// The test's own sessions, told apart from the worker's in `pg_stat_activity`.
    static var checkOptions: SessionOptions {
        var options = SessionOptions()
        options.applicationName = "fleet test"
        return options
    }

    /// The sessions a godwit worker holds in these databases now, by its application names.
    func workerSessions(on admin: Connection) async throws -> Int {
        try await admin.query(
            """
            SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = ANY($1::text[]) AND (application_name LIKE 'godwit worker%' OR application_name = 'godwit job')
            """, [PostgresArray.literal(databases.map(\.name))]
        ).first!.int("n")
    }
}

/// Counts the worker's sessions in `pg_stat_activity` as often as it can until stopped, and
/// keeps the largest count seen.
final class SessionSampler: Sendable {
    private let state = Mutex((peak: 0, samples: 0, stopped: false))

    var peak: Int { state.withLock { $0.peak } }
    var samples: Int { state.withLock { $0.samples } }

    func stop() { state.withLock { $0.stopped = true } }

    func run(_ fleet: BackfillFleet) async throws {
        var options = BackfillFleet.checkOptions
        options.applicationName = "fleet test sampler"
        try await Connection.withConnection(try TestDatabase.serverURL, options: options) { admin in
            while !state.withLock({ $0.stopped }) {
                let count = try await fleet.workerSessions(on: admin)
                state.withLock {
                    $0.peak = max($0.peak, count)
                    $0.samples += 1
                }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }
}

/// `godwit worker --targets`: many databases' queues in one process, within a connection budget.
@Suite("Fleet worker")
struct FleetWorkerTests {
    /// Issue 23's test: a fleet backfill on 20 databases, one worker process with a budget of 8
    /// connections, killed with SIGKILL in the middle of the run and started again: every job
    /// succeeds, every row of every database is changed exactly once, and the process never
    /// holds more than 8 sessions.
    @Test func backfillOnTwentyDatabasesWithinEightConnectionsSurvivesKill9() async throws {
        try await BackfillFleet.with(databases: 20, rows: 1500) { fleet in
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let targets = try directory.write("targets.txt", fleet.targetsText)
            let job = try directory.write("count_items.sql", BackfillFleet.backfillJob(batch: 50, pauseMs: 20))

            let enqueued = try await GodwitCommand.run(["fleet", "enqueue", job, "--targets", targets])
            #expect(enqueued.status == 0, "\(enqueued.stderr)")
            #expect(enqueued.stdout.contains("enqueued on all 20 targets"), "\(enqueued.stdout)")
            #expect(try await fleet.jobStates().map(\.count) == Array(repeating: 1, count: 20))

            let sampler = SessionSampler()
            let sampling = Task { try await sampler.run(fleet) }
            let arguments = [
                "worker", "--targets", targets, "--connections", "8", "--lease-timeout", "3", "--poll-interval", "1",
                "--slice", "2", "--log-level", "warning",
            ]
            // First run: killed once some databases are done and several are not (a loose window:
            // a look at 20 databases may take seconds on a loaded machine).
            let first = try GodwitProcess.start(arguments)
            let midRun = try await eventually(timeout: .seconds(180), every: .milliseconds(100)) {
                let states = try await fleet.jobStates().flatMap { $0 }
                let done = states.filter { $0 == "succeeded" }.count
                return done >= 1 && states.count - done >= 3 && states.contains("running")
            }
            first.signal(SIGKILL)
            let killed = try await first.wait()
            #expect(midRun, "the worker never reached the middle of the run: \(killed.stderr.suffix(2000))")
            let afterKill = try await fleet.jobStates().flatMap { $0 }
            #expect(afterKill.contains { $0 != "succeeded" }, "nothing was left to finish after the kill")

            // Its sessions end as the server notices; its running jobs' leases expire.
            var options = BackfillFleet.checkOptions
            options.applicationName = "fleet test admin"
            try await Connection.withConnection(try TestDatabase.serverURL, options: options) { admin in
                let gone = try await eventually(timeout: .seconds(60)) {
                    try await fleet.workerSessions(on: admin) == 0
                }
                #expect(gone, "the killed worker's sessions stayed")
            }

            // Second run, draining: rescues the killed run's jobs and exits once all are done.
            let second = try GodwitProcess.start(arguments + ["--drain"])
            let exited = await eventually(timeout: .seconds(240), every: .milliseconds(200)) { !second.isRunning }
            if !exited { second.signal(SIGKILL) }
            let drained = try await second.wait()
            sampler.stop()
            try await sampling.value
            #expect(exited && drained.status == 0, "status \(drained.status): \(drained.stderr.suffix(3000))")

            let states = try await fleet.jobStates()
            #expect(states == Array(repeating: ["succeeded"], count: 20), "\(states)")
            let counters = try await fleet.counters()
            #expect(counters.allSatisfy { $0.total == 1500 }, "\(counters)")
            #expect(counters.allSatisfy { $0.wrong == 0 }, "rows not changed exactly once: \(counters)")
            #expect(sampler.samples > 100, "the sampler looked only \(sampler.samples) times")
            #expect(sampler.peak >= 3, "the sampler never saw a database served (peak \(sampler.peak))")
            #expect(sampler.peak <= 8, "the worker held \(sampler.peak) sessions, over its budget of 8")
        }
    }

    /// With one place (4 connections) and three databases whose backfills each take longer than
    /// the slice, the databases take turns: two are seen part-done while none has finished,
    /// which serving them one after the other never shows. Each turn's end hands the job back at
    /// its checkpoint without counting an attempt, and every row still changes exactly once.
    @Test func databasesTakeTurnsWhenOthersWait() async throws {
        try await BackfillFleet.with(databases: 3, rows: 1000) { fleet in
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let targets = try directory.write("targets.txt", fleet.targetsText)
            let job = try directory.write("count_items.sql", BackfillFleet.backfillJob(batch: 10, pauseMs: 50))
            let enqueued = try await GodwitCommand.run(["fleet", "enqueue", job, "--targets", targets])
            #expect(enqueued.status == 0, "\(enqueued.stderr)")
            let worker = try GodwitProcess.start([
                "worker", "--targets", targets, "--connections", "4", "--slice", "1", "--poll-interval", "0.5",
                "--drain", "--log-level", "info",
            ])
            defer { if worker.isRunning { worker.signal(SIGKILL) } }
            let interleaved = try await eventually(timeout: .seconds(120), every: .milliseconds(50)) {
                let progress = try await fleet.progress()
                return progress.filter { $0.rowsDone > 0 }.count >= 2 && !progress.contains { $0.state == "succeeded" }
            }
            let exited = await eventually(timeout: .seconds(240), every: .milliseconds(200)) { !worker.isRunning }
            if !exited { worker.signal(SIGKILL) }
            let output = try await worker.wait()
            #expect(interleaved, "the databases were served one after the other")
            #expect(exited && output.status == 0, "status \(output.status): \(output.stderr.suffix(3000))")
            #expect(output.stderr.contains("making way for a waiting database"), "\(output.stderr.suffix(3000))")
            let progress = try await fleet.progress()
            #expect(progress.allSatisfy { $0.state == "succeeded" && $0.attempts == 1 }, "\(progress)")
            let counters = try await fleet.counters()
            #expect(counters.allSatisfy { $0.total == 1000 && $0.wrong == 0 }, "\(counters)")
        }
    }

    /// SIGTERM stops every database's worker as it stops a worker: the running jobs go back to
    /// their queues at their next checkpoint, their attempt given back, and the process exits 0.
    @Test func sigtermHandsRunningJobsBack() async throws {
        try await BackfillFleet.with(databases: 3, rows: 2000) { fleet in
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let targets = try directory.write("targets.txt", fleet.targetsText)
            let job = try directory.write("count_items.sql", BackfillFleet.backfillJob(batch: 10, pauseMs: 50))
            let enqueued = try await GodwitCommand.run(["fleet", "enqueue", job, "--targets", targets])
            #expect(enqueued.status == 0, "\(enqueued.stderr)")
            let worker = try GodwitProcess.start([
                "worker", "--targets", targets, "--connections", "7", "--poll-interval", "0.5",
            ])
            defer { if worker.isRunning { worker.signal(SIGKILL) } }
            let running = try await eventually(timeout: .seconds(120), every: .milliseconds(50)) {
                try await fleet.progress().contains { $0.state == "running" && $0.rowsDone > 0 }
            }
            worker.signal(SIGTERM)
            let exited = await eventually(timeout: .seconds(120), every: .milliseconds(100)) { !worker.isRunning }
            if !exited { worker.signal(SIGKILL) }
            let output = try await worker.wait()
            #expect(running, "no backfill was seen under way")
            #expect(exited && output.status == 0, "status \(output.status): \(output.stderr.suffix(3000))")
            let progress = try await fleet.progress()
            // Every job part-done went back to its queue, its attempt given back; none finished.
            let handedBack = progress.filter { $0.rowsDone > 0 }
            #expect(
                !handedBack.isEmpty && handedBack.allSatisfy { $0.state == "queued" && $0.attempts == 0 }, "\(progress)"
            )
            #expect(!progress.contains { $0.state == "running" }, "\(progress)")
        }
    }

    /// A budget too small for one database's worker and the probe is refused before anything
    /// connects, saying what would fit.
    @Test func refusesABudgetThatCannotServeOneDatabase() async throws {
        let directory = try TemporaryDirectory(prefix: "godwit-fleet")
        defer { directory.delete() }
        let targets = try directory.write("targets.txt", "a postgres://nobody@127.0.0.1:1/a\n")
        let output = try await GodwitCommand.run([
            "worker", "--targets", targets, "--connections", "4", "--concurrency", "2",
        ])
        #expect(output.status == 1)
        #expect(
            output.stderr.contains("error: --connections 4 cannot serve one database")
                && output.stderr.contains("give --connections 5 or more"), "\(output.stderr)")
    }

    /// A fleet worker serves one database's queue once, whatever its schema targets, and exits
    /// draining when nothing is queued anywhere; a database it cannot reach makes the drain fail,
    /// naming the target.
    @Test func drainNamesTheTargetItCouldNotReach() async throws {
        try await BackfillFleet.with(databases: 1, rows: 10) { fleet in
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let url = fleet.databases[0].url
            let missing = try TestDatabase.url(try TestDatabase.serverURL, database: "godwit_fleet_missing_db")
            let targets = try directory.write(
                "targets.txt", "t1 \(url) schema=tenant_a\nt2 \(url) schema=tenant_b\ngone \(missing)\n")
            let output = try await GodwitCommand.run([
                "worker", "--targets", targets, "--connections", "4", "--drain", "--poll-interval", "0.2",
                "--connect-timeout", "2",
            ])
            #expect(output.status == 1, "\(output.stderr)")
            let errors = output.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
            #expect(errors.count == 1, "\(output.stderr)")
            #expect(
                errors.first?.contains("target gone:") == true
                    && errors.first?.contains("godwit_fleet_missing_db") == true
                    && errors.first?.contains("1 of 2 databases not drained") == true, "\(output.stderr)")
        }
    }
}
