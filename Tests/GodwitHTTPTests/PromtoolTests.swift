import Foundation
import GodwitHTTP
import GodwitQueue
import GodwitTestSupport
import Testing

/// Prometheus's own checker, `promtool` (Debian's `prometheus` package; ops/test installs it).
enum Promtool {
    /// promtool's path on PATH, or nil.
    static var path: String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return directories.map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether the tests run: always in CI (where a missing promtool fails them), elsewhere
    /// only when promtool is installed.
    static var shouldRun: Bool {
        path != nil || ProcessInfo.processInfo.environment["CI"] != nil
    }

    /// Runs `promtool arguments`, with `input` on its stdin; its exit status and output.
    static func run(_ arguments: [String], input: String = "") async throws -> (status: Int32, output: String) {
        guard let path else {
            throw TestSetupError(message: "promtool is not installed (apt-get install -y prometheus); CI must have it")
        }
        return try await runProgram(path, arguments, input: input)
    }
}

@Suite(
    "promtool accepts /metrics, ops/prometheus.yml and ops/prometheus-rules.yml",
    .enabled(if: Promtool.shouldRun, "promtool is not installed: apt-get install -y prometheus (CI runs these tests)"))
struct PromtoolTests {
    /// A live server's /metrics, with every family present: a running batched job (its
    /// progress, hold and batch histogram), backups, migrations and the worker's counters.
    @Test func liveMetricsPassPromtool() async throws {
        try await withLiveServer { port, database in
            let connection = try await database.connect()
            let id = try await JobQueue().enqueue(kind: .batched, name: "backfill", payload: "{}", on: connection)
            try await connection.query("UPDATE godwit.jobs SET state = 'running' WHERE id = $1", [id])
            try await connection.query(
                """
                UPDATE godwit.job_progress SET rows_done = 250, rows_total = 1000, rows_per_second = 42.5,
                    batch_size = 50, hold_reason = 'replication lag 12 s', lock_waits = 3, lock_wait_ms_max = 250
                WHERE job_id = $1
                """, [id])
            try await connection.query(
                """
                INSERT INTO godwit.batches (job_id, seq, attempt, rows, rows_changed, batch_size, duration_ms)
                VALUES ($1, 1, 1, 50, 50, 50, 30)
                """, [id])
            try await connection.query(
                """
                INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at)
                VALUES ('/backups/b.dump', 100, repeat('0', 64), current_database(), now())
                """)
            await connection.close()
            let metrics = try await send(port, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains("godwit_batched_rows_expected{"), "\(metrics.text)")
            #expect(metrics.text.contains("godwit_database_up 1"), "\(metrics.text)")
            let checked = try await Promtool.run(["check", "metrics"], input: metrics.text)
            #expect(checked.status == 0, "promtool check metrics: \(checked.output)\n\(metrics.text)")
        }
    }

    /// The check itself tells a bad name: a gauge ending in `_total`, as godwit_batched_rows_total was.
    @Test func promtoolRejectsAGaugeNamedLikeACounter() async throws {
        let bad = """
            # HELP godwit_batched_rows_total Rows a running batched job expects to cover.
            # TYPE godwit_batched_rows_total gauge
            godwit_batched_rows_total{job_id="1"} 1000.0

            """
        let checked = try await Promtool.run(["check", "metrics"], input: bad)
        #expect(checked.status != 0)
        #expect(checked.output.contains("_total"), "\(checked.output)")
    }

    @Test func scrapeConfigurationPasses() async throws {
        let checked = try await Promtool.run(["check", "config", "ops/prometheus.yml"])
        #expect(checked.status == 0, "\(checked.output)")
        // The rules are loaded from the config, not left in comments.
        #expect(checked.output.contains("1 rule files found"), "\(checked.output)")
    }

    @Test func alertingRulesPass() async throws {
        let checked = try await Promtool.run(["check", "rules", "ops/prometheus-rules.yml"])
        #expect(checked.status == 0, "\(checked.output)")
        for alert in [
            "GodwitDatabaseDown", "GodwitQueueStuck", "GodwitJobsFailing", "GodwitBackfillHeld", "GodwitBackupTooOld",
        ] {
            #expect(try String(contentsOfFile: "ops/prometheus-rules.yml", encoding: .utf8).contains("alert: \(alert)"))
        }
    }
}
