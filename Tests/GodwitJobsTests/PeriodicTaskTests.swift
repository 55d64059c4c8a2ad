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
}
