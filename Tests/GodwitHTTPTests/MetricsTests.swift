import Foundation
import GodwitHTTP
import GodwitMigrations
import GodwitQueue
import GodwitTestSupport
import HummingbirdTesting
import Testing

@Suite("GET /metrics")
struct MetricsTests {
    /// The sample lines (not comments) of `name`, with their labels.
    private func samples(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    @Test("Every metric has # HELP and # TYPE; jobs by state and kind, queue depth and the oldest job's age")
    func queueMetrics() async throws {
        try await withOperations { database, server, client in
            try await enqueue(database, name: "a")
            try await enqueue(database, name: "b")
            try await enqueue(database, kind: JobKind("made-up-kind"), name: "c")
            server.metrics.jobStarted(kind: .noop, waited: .milliseconds(30))
            server.metrics.jobFinished(kind: .noop, outcome: .retry, duration: .milliseconds(120))
            server.metrics.jobsRescued(2)
            server.metrics.leaseLost(kind: .batched)
            server.metrics.jobStarted(kind: JobKind("made-up-kind"), waited: .milliseconds(5))
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = response.text
                let lines = text.split(separator: "\n").map(String.init)
                let typed = Set(lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] })
                let helped = Set(lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
                #expect(!typed.isEmpty)
                #expect(typed == helped)
                for metric in [
                    "godwit_jobs", "godwit_queue_depth", "godwit_queue_oldest_age_seconds", "godwit_job_attempts_total",
                    "godwit_job_outcomes_total", "godwit_jobs_rescued_total", "godwit_job_leases_lost_total",
                    "godwit_job_start_latency_seconds", "godwit_job_duration_seconds", "godwit_backups",
                    "godwit_migrations_applied", "godwit_database_up",
                ] {
                    #expect(typed.contains(Substring(metric)), "no # TYPE for \(metric)")
                }
                #expect(samples(text, "godwit_jobs").contains(#"godwit_jobs{state="queued",kind="noop"} 2.0"#))
                // A kind this worker does not run cannot add a series of its own.
                #expect(samples(text, "godwit_jobs").contains(#"godwit_jobs{state="queued",kind="other"} 1.0"#))
                #expect(!text.contains("made-up-kind"))
                #expect(samples(text, "godwit_queue_depth") == ["godwit_queue_depth 3.0"])
                #expect(samples(text, "godwit_database_up") == ["godwit_database_up 1.0"])
                #expect(samples(text, "godwit_jobs_rescued_total") == ["godwit_jobs_rescued_total 2"])
                #expect(text.contains(#"godwit_job_outcomes_total{kind="noop",outcome="retry"} 1"#))
                #expect(text.contains(#"godwit_job_leases_lost_total{kind="batched"} 1"#))
                #expect(text.contains(#"godwit_job_start_latency_seconds_count{kind="noop"} 1"#))
                #expect(text.contains(#"godwit_job_attempts_total{kind="other"} 1"#))
                #expect(
                    text.contains(#"godwit_job_outcomes_total{kind="sql",outcome="handed_back"} 0"#),
                    "every series from the start")
                #expect(
                    samples(text, "godwit_jobs").count
                        == JobState.allCases.count * (server.configuration.knownKinds.count + 1),
                    "every state by every known kind and other, zeros included")
                #expect(text.contains(#"godwit_job_duration_seconds_bucket{kind="noop",le="0.5"} 1"#))
            }
        }
    }

    @Test("The database-derived metrics are reused between scrapes for the read interval; the worker's own stay live")
    func databaseMetricsAreReused() async throws {
        try await withOperations(configure: { $0.metricsReadInterval = .seconds(600) }) { database, server, client in
            try await enqueue(database, name: "first")
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(samples(response.text, "godwit_queue_depth") == ["godwit_queue_depth 1.0"])
            }
            try await enqueue(database, name: "second")
            server.metrics.jobsRescued(1)
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(
                    samples(response.text, "godwit_queue_depth") == ["godwit_queue_depth 1.0"],
                    "read a moment ago: reused")
                #expect(samples(response.text, "godwit_jobs_rescued_total") == ["godwit_jobs_rescued_total 1"])
            }
        }
        // With the interval at zero (as in the other tests) the second scrape sees the second job.
        try await withOperations { database, _, client in
            try await enqueue(database, name: "first")
            try await client.execute(uri: "/metrics", method: .get) { _ in }
            try await enqueue(database, name: "second")
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(samples(response.text, "godwit_queue_depth") == ["godwit_queue_depth 2.0"])
            }
        }
    }

    @Test("A running batched job has series with its id; they go when it stops running")
    func batchedJobMetrics() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: "backfill")
            let connection = try await database.connect()
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
                VALUES ($1, 1, 1, 50, 50, 50, 30), ($1, 2, 1, 50, 50, 50, 700)
                """, [id])
            let label = #"job_id="\#(id)""#
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = response.text
                #expect(text.contains("godwit_batched_rows_done{\(label)} 250.0"))
                #expect(text.contains("godwit_batched_rows_expected{\(label)} 1000.0"))
                #expect(text.contains("godwit_batched_rows_per_second{\(label)} 42.5"))
                #expect(text.contains("godwit_batched_batch_size{\(label)} 50.0"))
                #expect(text.contains("godwit_batched_lock_waits{\(label)} 3.0"))
                #expect(text.contains("godwit_batched_lock_wait_max_seconds{\(label)} 0.25"))
                #expect(text.contains(#"godwit_batched_held{\#(label),reason="replication_lag"} 1.0"#))
                #expect(text.contains("godwit_batched_batch_duration_seconds_count{\(label)} 2"))
                #expect(text.contains(#"godwit_batched_batch_duration_seconds_bucket{\#(label),le="0.05"} 1"#))
            }
            try await connection.query("UPDATE godwit.jobs SET state = 'succeeded' WHERE id = $1", [id])
            await connection.close()
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(!response.text.contains(label))
            }
        }
    }

    @Test("Backups: how many and the newest one's age and size; migrations applied and the last one's duration")
    func backupsAndMigrations() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query(
                """
                INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at, created_at)
                VALUES ('backups/a.dump', 1000, 'aa', 'app', now(), now() - interval '2 hours'),
                       ('backups/b.dump', 2048, 'bb', 'app', now(), now() - interval '10 minutes')
                """)
            try await connection.execute(
                """
                CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
                    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL,
                    execution_time bigint NOT NULL);
                INSERT INTO _sqlx_migrations VALUES (1, 'first', now(), true, '\\x00', 5000000),
                    (2, 'second', now(), true, '\\x00', 2500000000)
                """)
            await connection.close()
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = response.text
                #expect(samples(text, "godwit_backups") == ["godwit_backups 2.0"])
                #expect(samples(text, "godwit_backup_last_size_bytes") == ["godwit_backup_last_size_bytes 2048.0"])
                let age = samples(text, "godwit_backup_last_age_seconds").first.flatMap {
                    Double($0.split(separator: " ")[1])
                }
                #expect(age.map { $0 >= 600 && $0 < 7200 } == true)
                #expect(samples(text, "godwit_migrations_applied") == ["godwit_migrations_applied 2.0"])
                #expect(
                    samples(text, "godwit_migration_last_duration_seconds") == [
                        "godwit_migration_last_duration_seconds 2.5"
                    ])
            }
        }
    }

    /// A migration applied and since modified, deleted, or left with only its down is still
    /// applied; the page names each state.
    @Test("Migrations applied count every successful ledger row, whatever became of its file")
    func appliedWhateverBecameOfTheFile() async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-http-applied")
        defer { folder.delete() }
        try folder.write("1_a.sql", "CREATE TABLE a (id int);")
        try folder.write("2_b.sql", "CREATE TABLE b (id int);")
        try folder.write("3_c.up.sql", "CREATE TABLE c (id int);")
        try folder.write("3_c.down.sql", "DROP TABLE c;")
        try folder.write("4_d.sql", "CREATE TABLE d (id int);")
        try await withOperations(configure: { $0.migrationsDirectory = folder.path }) { database, _, client in
            let connection = try await database.connect()
            _ = try await Migrator(directory: folder.path).run(on: connection)
            await connection.close()
            try folder.write("1_a.sql", "CREATE TABLE a (id bigint);")
            try folder.remove("2_b.sql")
            try folder.remove("3_c.up.sql")
            try folder.write("5_e.sql", "CREATE TABLE e (id int);")
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(samples(response.text, "godwit_migrations_applied") == ["godwit_migrations_applied 4.0"])
                #expect(samples(response.text, "godwit_migrations_pending") == ["godwit_migrations_pending 1.0"])
            }
            try await client.execute(uri: "/migrations", method: .get) { response in
                for state in [
                    "installed (different checksum)", "installed (missing from source)",
                    "installed (only its down in the source)", "pending",
                ] {
                    #expect(response.text.contains(">\(state)</span>"), "\(state)")
                }
            }
        }
    }

    @Test("A hold reason is a label only as one of six categories: an enqueuer's error text never becomes a series")
    func holdReasonCategories() async throws {
        // The worker's own texts (GodwitJobs' holdReason), and texts anyone could have written.
        let reasons: [(text: String, category: String)] = [
            ("replication lag 12.0 s is above 10.0 s", "replication_lag"),
            ("autovacuum is working on items", "autovacuum"),
            ("WAL archiving is 40 segments behind (more than 16)", "archive_backlog"),
            ("the worker's health query returned false", "worker_health_query"),
            ("the job's health query failed: ERROR: order 81723 is locked by pid 4242", "job_health_query"),
            ("the job's health query failed: replication lag (spoofed)", "job_health_query"),
            (#"x"} 1e9\#ngodwit_up{fake="1"#, "other"),
            ("order 81724 is locked", "other"),
        ]
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            var ids: [Int64: String] = [:]
            for (index, reason) in reasons.enumerated() {
                let id = try await enqueue(database, kind: .batched, name: "held \(index)")
                try await connection.query("UPDATE godwit.jobs SET state = 'running' WHERE id = $1", [id])
                try await connection.query(
                    "UPDATE godwit.job_progress SET hold_reason = $2 WHERE job_id = $1", [id, reason.text])
                ids[id] = reason.category
            }
            await connection.close()
            try await client.execute(uri: "/metrics", method: .get) { response in
                let held = samples(response.text, "godwit_batched_held")
                #expect(held.count == reasons.count, "\(held)")
                for (id, category) in ids {
                    #expect(
                        held.contains(#"godwit_batched_held{job_id="\#(id)",reason="\#(category)"} 1.0"#), "\(held)")
                }
                #expect(
                    !response.text.contains("81723") && !response.text.contains("fake"),
                    "no text of a reason in /metrics")
            }
        }
    }
}
