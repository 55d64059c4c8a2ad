import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// An sql job's script and its success commit in one transaction, in the enqueuer's session:
/// the server crashing at any moment can neither lose a committed script's success (and so run
/// it again) nor record a success whose script did not commit.
@Suite("sql jobs across server crashes", .serialized)
struct ServerCrashTests {
    @Test func noSQLJobRunsTwiceWhenTheServerCrashesUnderTheWorkers() async throws {
        let cluster = try await PrivateCluster()
        defer { Task { await cluster.destroy() } }
        let total = 3000
        var conn = try await Connection.connect(cluster.url)
        try await QueueSchema.withJobs().install(on: conn)
        try await conn.execute(
            """
            CREATE TABLE runs (n int NOT NULL);
            INSERT INTO godwit.jobs (kind, name, payload)
            SELECT 'sql', 'run ' || g, jsonb_build_object('sql', format('INSERT INTO runs VALUES (%s)', g))
            FROM generate_series(1, \(total)) g;
            """)
        await conn.close()
        let workers = try (0..<2).map { _ in
            try startWorker(cluster.url, ["--concurrency", "4", "--lease-timeout", "1"])
        }
        // Three crashes (immediate stop: no shutdown checkpoint, every session cut), each while
        // jobs are being run, and the server back after longer than a lease: a worker gives up
        // recording what it finished meanwhile, and another rescues those jobs.
        for threshold in [total / 5, total / 2, total * 3 / 4] {
            let reached = try await eventually(timeout: .seconds(120), every: .milliseconds(5)) {
                guard let probe = try? await Connection.connect(cluster.url) else { return false }
                defer { Task { await probe.close() } }
                let done = try await probe.query("SELECT count(*) AS n FROM godwit.jobs WHERE state = 'succeeded'")
                    .first!.int("n")
                return done >= threshold
            }
            #expect(reached, "the workers did not reach \(threshold) jobs")
            try await cluster.stop(mode: "immediate")
            try await Task.sleep(for: .seconds(3))
            try await cluster.start()
        }
        conn = try await Connection.connect(cluster.url, retryingFor: .seconds(30))
        let finished = try await eventually(timeout: .seconds(180)) {
            try await conn.query("SELECT count(*) AS n FROM godwit.jobs WHERE state = 'succeeded'").first!.int("n")
                == total
        }
        for worker in workers { worker.signal(SIGTERM) }
        for worker in workers { _ = try await worker.wait() }
        let states = try await conn.query("SELECT state::text AS s, count(*) AS n FROM godwit.jobs GROUP BY 1").rows.map
        {
            "\(try $0.string("s")): \(try $0.int("n"))"
        }
        #expect(finished, "\(states)")
        let twice = try await conn.query("SELECT n FROM runs GROUP BY n HAVING count(*) > 1 ORDER BY n LIMIT 10").rows
            .map {
                try $0.int("n")
            }
        #expect(twice.isEmpty, "jobs that ran twice: \(twice)")
        #expect(try await conn.query("SELECT count(DISTINCT n) AS n FROM runs").first!.int("n") == total)
        // Each success was recorded in the script's own transaction, with its result.
        #expect(
            try await conn.query("SELECT count(*) AS n FROM godwit.jobs WHERE result->>'rows_affected' = '1'").first!
                .int("n")
                == total)
        await conn.close()
    }
}
