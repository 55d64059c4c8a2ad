import GodwitBackups
import GodwitJobs
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
        let queue = JobQueue(schema: schema)
        try await store.pool.withConnection { connection in
            try await connection.query("SET statement_timeout = '5s'")
            // One pass over the table, grouped by what is stored; unknown kinds fold into
            // `other` here, and every (state, kind) pair is written, at zero when absent.
            let kindLabels = knownKinds.map(\.rawValue) + ["other"]
            var counts: [String: [String: Int64]] = [:]
            for group in try await queue.countsByStateAndKind(on: connection) {
                let label = knownKinds.contains(group.kind) ? group.kind.rawValue : "other"
                counts[group.state, default: [:]][label, default: 0] += group.count
            }
            for state in JobState.allCases.map(\.rawValue) {
                for kind in kindLabels {
                    registry.makeGauge(
                        named: "godwit_jobs", labels: [("state", state), ("kind", kind)],
                        help: "Jobs in the table, by state and kind (kinds this worker does not run count as other)."
                    ).set(to: Double(counts[state]?[kind] ?? 0))
                }
            }
            let depth = try await queue.depth(on: connection)
            registry.makeGauge(named: "godwit_queue_depth", help: "Queued jobs that are due now.")
                .set(to: Double(depth.due))
            registry.makeGauge(
                named: "godwit_queue_oldest_age_seconds",
                help: "How long the oldest due queued job has waited (0 when none)."
            ).set(to: depth.oldestSeconds)
            try await batched(connection, into: registry)
            try await changes(connection, into: registry)
            try await fleet(connection, into: registry)
            let backups = try await BackupRecords(schema: schema.name).summary(on: connection)
            registry.makeGauge(named: "godwit_backups", help: "Verified backups recorded in the backups table.")
                .set(to: Double(backups.count))
            if let age = backups.newestAgeSeconds {
                registry.makeGauge(named: "godwit_backup_last_age_seconds", help: "Age of the newest verified backup.")
                    .set(to: age)
            }
            if let size = backups.newestSizeBytes {
                registry.makeGauge(named: "godwit_backup_last_size_bytes", help: "Size of the newest verified backup.")
                    .set(to: Double(size))
            }
            try await connection.query("RESET statement_timeout")
        }
        // A role that may not read the ledger (a dashboard role with grant_read only), or a
        // migrations folder that does not parse, leaves the migration metrics out; the queue's
        // were read all the same.
        do {
            try await migrations(into: registry)
        } catch  where OperationsStore.permissionDenied(error) || error is MigrationError {
            return
        }
    }

    private func batched(_ connection: Connection, into registry: PrometheusCollectorRegistry) async throws {
        let schema = store.schema
        var ids: [Int64] = []
        for job in try await JobQueue(schema: schema).running(.batched, limit: 100, on: connection) {
            let id = job.id
            ids.append(id)
            let labels = [("job_id", String(id))]
            registry.makeGauge(
                named: "godwit_batched_rows_done", labels: labels, help: "Rows done by a running batched job."
            )
            .set(to: Double(job.rowsDone ?? 0))
            if let total = job.rowsTotal {
                registry.makeGauge(
                    named: "godwit_batched_rows_expected", labels: labels,
                    help: "Rows a running batched job expects to cover."
                ).set(to: Double(total))
            }
            registry.makeGauge(
                named: "godwit_batched_rows_per_second", labels: labels,
                help: "Recent throughput of a running batched job."
            ).set(to: job.rowsPerSecond ?? 0)
            if let size = job.batchSize {
                registry.makeGauge(
                    named: "godwit_batched_batch_size", labels: labels,
                    help: "Current batch size of a running batched job."
                ).set(to: Double(size))
            }
            registry.makeGauge(
                named: "godwit_batched_lock_waits", labels: labels,
                help: "Sessions a running batched job's batches made wait on their locks, so far."
            ).set(to: Double(job.lockWaits))
            registry.makeGauge(
                named: "godwit_batched_lock_wait_max_seconds", labels: labels,
                help: "The longest wait of a session on a running batched job's locks, so far."
            ).set(to: job.lockWaitMSMax / 1000)
            if let reason = job.holdReason, !reason.isEmpty {
                // A category, never the text: a failing health query's message is the enqueuer's.
                registry.makeGauge(
                    named: "godwit_batched_held", labels: labels + [("reason", HoldReason.category(reason))],
                    help: "1 while a running batched job holds, labelled with why: replication_lag, autovacuum, "
                        + "archive_backlog, worker_health_query, job_health_query or other."
                ).set(to: 1)
            }
        }
        for batch in try await BatchHistory(schema: schema).durations(of: ids, perJob: 1000, on: connection) {
            registry.makeValueHistogram(
                named: "godwit_batched_batch_duration_seconds", labels: [("job_id", String(batch.job))],
                buckets: Self.batchBuckets,
                help: "Durations of a running batched job's kept batches (the newest 1000)."
            ).record(batch.milliseconds / 1000)
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
