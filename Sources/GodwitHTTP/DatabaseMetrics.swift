import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Prometheus
import Synchronization

/// The metrics read from the database at every scrape: what the queue, the batched jobs, the
/// backups and the migrations look like now.
///
/// Each scrape fills a fresh registry, so a job that stopped running leaves no series behind.
/// Job id labels appear only for running batched jobs, which are few by construction.
struct DatabaseMetrics: Sendable {
    let store: OperationsStore
    let knownKinds: [JobKind]

    static let batchBuckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30]

    /// Writes the metrics into `registry`; returns false (after writing `godwit_database_up 0`)
    /// when the database could not be read.
    func collect(into registry: PrometheusCollectorRegistry) async -> Bool {
        let up = registry.makeGauge(
            named: "godwit_database_up", help: "1 when this scrape could read the queue from the database, else 0.")
        do {
            try await read(into: registry)
            up.set(to: 1)
            return true
        } catch {
            up.set(to: 0)
            return false
        }
    }

    private func read(into registry: PrometheusCollectorRegistry) async throws {
        let schema = store.schema
        try await store.pool.withConnection { connection in
            try await connection.query("SET statement_timeout = '5s'")
            // One pass over the table, grouped by what is stored; unknown kinds fold into
            // `other` here, and every (state, kind) pair is written, at zero when absent.
            let byState = try await connection.query(
                "SELECT state::text AS state, kind, count(*) AS n FROM \(schema.jobs) GROUP BY 1, 2")
            let kindLabels = knownKinds.map(\.rawValue) + ["other"]
            var counts: [String: [String: Int64]] = [:]
            for row in byState.rows {
                let kind = JobKind(try row.string("kind"))
                counts[try row.string("state"), default: [:]][knownKinds.contains(kind) ? kind.rawValue : "other", default: 0] +=
                    try row.int64("n")
            }
            for state in JobState.allCases.map(\.rawValue) {
                for kind in kindLabels {
                    registry.makeGauge(
                        named: "godwit_jobs", labels: [("state", state), ("kind", kind)],
                        help: "Jobs in the table, by state and kind (kinds this worker does not run count as other)."
                    ).set(to: Double(counts[state]?[kind] ?? 0))
                }
            }
            let depth = try await connection.query(
                """
                SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS oldest
                FROM \(schema.jobs) WHERE state = 'queued' AND run_at <= now()
                """)
            if let row = depth.first {
                registry.makeGauge(named: "godwit_queue_depth", help: "Queued jobs that are due now.")
                    .set(to: Double(try row.int64("n")))
                registry.makeGauge(
                    named: "godwit_queue_oldest_age_seconds", help: "How long the oldest due queued job has waited (0 when none)."
                ).set(to: try row.double("oldest"))
            }
            try await batched(connection, into: registry)
            let backups = try await connection.query(
                """
                SELECT count(*) AS n, extract(epoch FROM now() - max(created_at))::float8 AS age,
                    (SELECT size_bytes FROM \(schema.qualified("backups")) ORDER BY id DESC LIMIT 1) AS size
                FROM \(schema.qualified("backups"))
                """)
            if let row = backups.first {
                registry.makeGauge(named: "godwit_backups", help: "Verified backups recorded in the backups table.")
                    .set(to: Double(try row.int64("n")))
                if let age = try? row.double("age") {
                    registry.makeGauge(named: "godwit_backup_last_age_seconds", help: "Age of the newest verified backup.")
                        .set(to: age)
                }
                if let size = try? row.int64("size") {
                    registry.makeGauge(named: "godwit_backup_last_size_bytes", help: "Size of the newest verified backup.")
                        .set(to: Double(size))
                }
            }
            try await connection.query("RESET statement_timeout")
        }
        // A role that may not read the ledger (a dashboard role with grant_read only), or a
        // migrations folder that does not parse, leaves the migration metrics out; the queue's
        // were read all the same.
        do {
            try await migrations(into: registry)
        } catch where OperationsStore.permissionDenied(error) || error is MigrationError {
            return
        }
    }

    private func batched(_ connection: Connection, into registry: PrometheusCollectorRegistry) async throws {
        let schema = store.schema
        let running = try await connection.query(
            """
            SELECT p.id, p.rows_done, p.rows_total, p.rows_per_second::float8 AS rate, p.batch_size, p.hold_reason,
                p.lock_waits, p.lock_wait_ms_max::float8 AS lock_wait_ms_max
            FROM \(schema.progress) p WHERE p.kind = 'batched' AND p.state = 'running'
            ORDER BY p.id LIMIT 100
            """)
        var ids: [Int64] = []
        for row in running.rows {
            let id = try row.int64("id")
            ids.append(id)
            let labels = [("job_id", String(id))]
            registry.makeGauge(named: "godwit_batched_rows_done", labels: labels, help: "Rows done by a running batched job.")
                .set(to: Double((try? row.int64("rows_done")) ?? 0))
            if let total = try? row.int64("rows_total") {
                registry.makeGauge(
                    named: "godwit_batched_rows_expected", labels: labels, help: "Rows a running batched job expects to cover."
                ).set(to: Double(total))
            }
            registry.makeGauge(
                named: "godwit_batched_rows_per_second", labels: labels, help: "Recent throughput of a running batched job."
            ).set(to: (try? row.double("rate")) ?? 0)
            if let size = try? row.int("batch_size") {
                registry.makeGauge(
                    named: "godwit_batched_batch_size", labels: labels, help: "Current batch size of a running batched job."
                ).set(to: Double(size))
            }
            registry.makeGauge(
                named: "godwit_batched_lock_waits", labels: labels,
                help: "Sessions a running batched job's batches made wait on their locks, so far."
            ).set(to: Double((try? row.int64("lock_waits")) ?? 0))
            registry.makeGauge(
                named: "godwit_batched_lock_wait_max_seconds", labels: labels,
                help: "The longest wait of a session on a running batched job's locks, so far."
            ).set(to: ((try? row.double("lock_wait_ms_max")) ?? 0) / 1000)
            if let reason = row["hold_reason"], !reason.isEmpty {
                // A category, never the text: a failing health query's message is the enqueuer's.
                registry.makeGauge(
                    named: "godwit_batched_held", labels: labels + [("reason", HoldReason.category(reason))],
                    help: "1 while a running batched job holds, labelled with why: replication_lag, autovacuum, "
                        + "archive_backlog, worker_health_query, job_health_query or other."
                ).set(to: 1)
            }
        }
        guard !ids.isEmpty else { return }
        let batches = try await connection.query(
            """
            SELECT job_id, duration_ms FROM (
                SELECT job_id, duration_ms, row_number() OVER (PARTITION BY job_id ORDER BY id DESC) AS n
                FROM \(schema.batches) WHERE job_id = ANY($1::bigint[])
            ) b WHERE n <= 1000
            """, [PostgresArray.literal(ids.map(String.init))])
        for row in batches.rows {
            registry.makeValueHistogram(
                named: "godwit_batched_batch_duration_seconds", labels: [("job_id", try row.string("job_id"))],
                buckets: Self.batchBuckets,
                help: "Durations of a running batched job's kept batches (the newest 1000)."
            ).record(try row.double("duration_ms") / 1000)
        }
    }

    private func migrations(into registry: PrometheusCollectorRegistry) async throws {
        let rows = try await store.migrations().rows
        // Every state a successful ledger row can have: `installed`, and `installed (...)` for
        // a file modified, gone, or only its down left.
        let applied = rows.filter { $0.state.hasPrefix("installed") }
        registry.makeGauge(
            named: "godwit_migrations_applied",
            help: "Migrations recorded as applied in the ledger (sqlx.toml's table-name, _sqlx_migrations by default)."
        ).set(to: Double(applied.count))
        if store.migrationsDirectory != nil {
            registry.makeGauge(
                named: "godwit_migrations_pending", help: "Migrations in the migrations folder not yet applied."
            ).set(to: Double(rows.filter { $0.state == "pending" }.count))
        }
        if let last = applied.max(by: { $0.version < $1.version }), let ms = last.executionMS {
            registry.makeGauge(
                named: "godwit_migration_last_duration_seconds", help: "How long the newest applied migration took."
            ).set(to: ms / 1000)
        }
    }
}

/// The database-derived part of `/metrics`, as text, shared by the scrapes of one process.
///
/// A read is reused for `minimumInterval` (zero: never), or for 20 times as long as it took
/// when that is longer: a jobs table of millions of rows makes its counts slow, and scraping must not become
/// a load of its own. Concurrent scrapes wait on the same read. A read that failed
/// (`godwit_database_up 0`) is not reused, so the next scrape tries again.
final class DatabaseMetricsCache: Sendable {
    private struct State {
        var text: [UInt8]?
        var readAt: ContinuousClock.Instant?
        var took: Duration = .zero
        var inFlight: Task<[UInt8], Never>?
    }

    private enum Lookup {
        case fresh([UInt8])
        case wait(Task<[UInt8], Never>)
    }

    static let reuseFactor = 20

    private let metrics: DatabaseMetrics
    private let minimumInterval: Duration
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    init(metrics: DatabaseMetrics, minimumInterval: Duration) {
        self.metrics = metrics
        self.minimumInterval = minimumInterval
    }

    /// The metrics in Prometheus text format, read now or reused.
    func text() async -> [UInt8] {
        let now = clock.now
        let lookup: Lookup = state.withLock { state in
            if let text = state.text, let at = state.readAt, minimumInterval > .zero,
                now - at < max(minimumInterval, state.took * Self.reuseFactor)
            {
                return .fresh(text)
            }
            if let inFlight = state.inFlight { return .wait(inFlight) }
            let read = Task { await self.read() }
            state.inFlight = read
            return .wait(read)
        }
        switch lookup {
        case .fresh(let text): return text
        case .wait(let task): return await task.value
        }
    }

    private func read() async -> [UInt8] {
        let start = clock.now
        let registry = PrometheusCollectorRegistry()
        let readable = await metrics.collect(into: registry)
        var text: [UInt8] = []
        registry.emit(into: &text)
        let end = clock.now
        state.withLock { state in
            state.inFlight = nil
            state.text = readable ? text : nil
            state.readAt = readable ? end : nil
            state.took = end - start
        }
        return text
    }
}
