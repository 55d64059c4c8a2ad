import GodwitPostgres
import GodwitTestSupport
import Synchronization
import Testing

@testable import GodwitQueue

/// Counts a periodic task's runs, across the worker's tasks.
final class RunCounter: Sendable {
    private let runs = Mutex(0)
    /// Counts one run and returns its number, from 1.
    func next() -> Int {
        runs.withLock {
            $0 += 1
            return $0
        }
    }
    var count: Int { runs.withLock { $0 } }
}

/// `WorkerConfiguration.periodicTasks`: run on the worker's pool, again and again, past a
/// failure (logged with the task's name), and no more once the worker has stopped.
@Suite("A worker's periodic tasks")
struct PeriodicTaskTests {
    @Test func runOnThePoolGoOnAfterAFailureAndStopWithTheWorker() async throws {
        try await withQueue { db, conn, _ in
            try await conn.execute("CREATE TABLE public.ticks (n int)")
            let capture = LogCapture()
            let counter = RunCounter()
            var configuration = WorkerConfiguration(databaseURL: db.url)
            // Generous: on a loaded machine the worker's first connections may be slow.
            configuration.connectTimeout = .seconds(120)
            configuration.periodicTasks = [
                PeriodicTask(name: "tick", every: .milliseconds(50)) { context in
                    let run = counter.next()
                    if run == 2 { throw PostgresError(code: .client, message: "the second run fails") }
                    try await context.pool.withConnection {
                        try await $0.query("INSERT INTO public.ticks VALUES ($1)", [run])
                    }
                }
            ]
            let pool = configuration.makePool()
            let worker = Worker(configuration: configuration, pool: pool, handlers: [], logger: capture.logger)
            let running = Task { try await worker.run() }
            let ticked = try await eventually(timeout: .seconds(180)) {
                try await conn.query("SELECT count(*) AS n FROM public.ticks").first?.int("n") ?? 0 >= 4
            }
            #expect(
                ticked,
                "runs after the failed one went on (worker started: \(capture.count(of: "worker started")), runs: \(counter.count))"
            )
            #expect(capture.count(of: "periodic task tick failed") == 1)
            let failed = try await conn.query("SELECT count(*) AS n FROM public.ticks WHERE n = 2").first?.int("n")
            #expect(failed == 0)
            worker.shutdown()
            try await running.value
            let stoppedAt = counter.count
            // Ten intervals: a loop that outlived the worker would have run again.
            try await Task.sleep(for: .milliseconds(500))
            #expect(counter.count == stoppedAt, "a periodic task ran after its worker stopped")
            await pool.close()
        }
    }

    /// A task with an hour's interval runs again as soon as a job of a kind it wakes on ends
    /// on its worker, and that run sees the job's outcome recorded; a job of another kind
    /// ending first does not run it.
    @Test func aJobOfAKindItWakesOnRunsItAtOnce() async throws {
        try await withQueue { db, conn, queue in
            try await conn.execute("CREATE TABLE public.ticks (run int, sleeps_done bigint)")
            let counter = RunCounter()
            var configuration = WorkerConfiguration(databaseURL: db.url)
            configuration.connectTimeout = .seconds(120)
            configuration.periodicTasks = [
                PeriodicTask(name: "react", every: .seconds(3600), wakeOn: [.sleep]) { context in
                    let run = counter.next()
                    try await context.pool.withConnection {
                        try await $0.query(
                            """
                            INSERT INTO public.ticks
                            SELECT $1, count(*) FROM godwit.jobs WHERE kind = 'sleep' AND state = 'succeeded'
                            """, [run])
                    }
                }
            ]
            let pool = configuration.makePool()
            let worker = Worker(
                configuration: configuration, pool: pool, handlers: [SleepJob()], logger: LogCapture().logger)
            let running = Task { try await worker.run() }
            func ticks() async throws -> Int {
                try await conn.query("SELECT count(*) AS n FROM public.ticks").first?.int("n") ?? 0
            }
            // The first run, at start.
            #expect(try await eventually(timeout: .seconds(180)) { try await ticks() == 1 })
            // A job of a kind the task does not wake on (no handler here: it fails at once).
            let other = try await queue.enqueue(kind: JobKind("other"), name: "other", maxAttempts: 1, on: conn)
            #expect(try await eventually(timeout: .seconds(180)) { try await state(of: other, conn) == "failed" })
            let sleep = try await queue.enqueue(
                kind: .sleep, name: "nap", payload: #"{"milliseconds": 10}"#, on: conn)
            let woken = try await eventually(timeout: .seconds(180)) { try await ticks() >= 2 }
            #expect(woken, "the task ran again once the sleep job ended")
            #expect(try await state(of: sleep, conn) == "succeeded")
            worker.shutdown()
            try await running.value
            let rows = try await conn.query("SELECT run, sleeps_done FROM public.ticks ORDER BY run").rows
            #expect(try rows.map { try $0.int("run") } == [1, 2], "one run at start, one for the sleep job")
            #expect(try rows.last?.int64("sleeps_done") == 1, "the woken run saw the job's success")
            await pool.close()
        }
    }
}
