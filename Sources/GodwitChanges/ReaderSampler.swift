import Foundation
import GodwitPostgres
import GodwitQueue
import Logging

/// Samples `pg_stat_statements` and `pg_stat_activity` for the statements that read a column a
/// change in flight will drop: the evidence `godwit change complete` is gated on
/// (`change_blockers`).
///
/// `pg_stat_statements` keeps no time of a statement's last call, only its `calls`; so each
/// sample compares every entry naming a dropped column (`ColumnReadMatcher`) with the last
/// sample's count, and a rise, or an entry that was not there before, sets the column's
/// `change_readers.last_seen_at`. Sessions of `pg_stat_activity` whose query names the column
/// give the application names, and one running such a query now counts as a read now.
///
/// The evidence is only as good as its continuity, so the column's window
/// (`window_started_at`, which must be older than `--quiet-for`) starts again whenever a read
/// could have gone unseen: a gap between samples longer than `longestGap`, a rise of
/// `pg_stat_statements_info.dealloc` (entries evicted), a changed `stats_reset`, query texts
/// discarded, an entry naming the column gone or its count gone down. The worker calls
/// `sample` every `interval`; `complete` takes one more sample just before it decides.
///
/// Without `pg_stat_statements` (not loaded, not installed in the database, or a role that
/// may not read other roles' statements) a sample records `change_sampling.available = false`
/// with the reason, and complete refuses with it.
public struct ReaderSampler: Sendable {
    /// The schema of Godwit's tables (`change_records`, `change_readers`, ...).
    public var schema: QueueSchema

    /// How often the worker samples.
    public static let interval: Duration = .seconds(5)
    /// The longest gap between two samples that keeps a window going: six missed samples.
    public static let longestGap: Duration = .seconds(30)

    public init(schema: QueueSchema = .withChanges()) {
        self.schema = schema
    }

    /// The task `godwit worker` registers: a sample every `interval`. What it saw is in
    /// `change_readers` and `change_sampling` (and so in `change status`); the log says when a
    /// column was read and when a window started again, at info, and an unavailable
    /// `pg_stat_statements` at debug, since every sample would repeat it.
    public var task: PeriodicTask {
        PeriodicTask(name: "reader sampler", every: Self.interval) { context in
            let sample = try await context.pool.withConnection { try await self.sample(on: $0) }
            if let reason = sample.unavailableReason {
                context.logger.debug("reader evidence unavailable: \(reason)")
            }
            for column in sample.columns {
                let metadata: Logger.Metadata = ["change": "\(column.change)", "column": "\(column.column)"]
                if column.read {
                    let names = column.applications.isEmpty ? "" : " by \(column.applications.joined(separator: ", "))"
                    context.logger.info(
                        "change \(column.change): column \(column.column) read\(names)", metadata: metadata)
                }
                if let reason = column.windowRestarted {
                    context.logger.info(
                        "change \(column.change): the quiet window of column \(column.column) starts again: \(reason)",
                        metadata: metadata)
                }
            }
        }
    }

    /// Takes one sample for every change in flight, in one transaction that holds
    /// `change_sampling`'s row, so that samplers in several workers (and complete's) take
    /// turns. Does nothing when no change is in flight.
    @discardableResult
    public func sample(on connection: Connection) async throws -> ReaderSample {
        try await connection.withTransaction { connection in
            try await sampleInTransaction(on: connection)
        }
    }

    /// Takes the sample inside the caller's open transaction (complete's, which decides on it
    /// in the same transaction): it holds `change_sampling`'s row until that transaction ends.
    @discardableResult
    public func sample(inTransactionOn connection: Connection) async throws -> ReaderSample {
        try await sampleInTransaction(on: connection)
    }

    private func sampleInTransaction(on connection: Connection) async throws -> ReaderSample {
        // Whatever session it is given (the worker's pins it already; complete's is the user's),
        // every name resolves in the catalog first for the length of the sample.
        try await connection.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
        let changes = try await inFlight(on: connection)
        guard !changes.isEmpty else { return ReaderSample(available: true, unavailableReason: nil, columns: []) }
        try await connection.query(
            "INSERT INTO \(schema.qualified("change_sampling")) (id) VALUES (true) ON CONFLICT (id) DO NOTHING")
        guard
            let previous = try await connection.query(
                """
                SELECT dealloc, stats_reset::text AS stats_reset, available, sampled_at IS NOT NULL AS sampled,
                       extract(epoch FROM pg_catalog.clock_timestamp() - sampled_at)::float8 AS gap
                FROM \(schema.qualified("change_sampling")) FOR UPDATE
                """
            ).first
        else { return ReaderSample(available: false, unavailableReason: "change_sampling is empty", columns: []) }
        let statistics: Statistics
        switch try await readStatistics(for: changes, on: connection) {
        case .unavailable(let reason):
            try await connection.query(
                """
                UPDATE \(schema.qualified("change_sampling"))
                SET sampled_at = pg_catalog.clock_timestamp(), available = false, unavailable_reason = $1, dealloc = NULL, stats_reset = NULL
                """, [reason])
            return ReaderSample(available: false, unavailableReason: reason, columns: [])
        case .available(let read):
            statistics = read
        }

        // What makes every window start again.
        // What makes every window start again: each reason, for the line complete prints.
        var reasons: [String] = []
        let previousGap: Double? = try previous.bool("sampled") ? try previous.double("gap") : nil
        if let previousGap {
            let gap = Duration.milliseconds(Int64(previousGap * 1000))
            if try !previous.bool("available") {
                reasons.append("pg_stat_statements was unavailable at the sample before")
            } else {
                if gap > Self.longestGap {
                    reasons.append(
                        "a gap of \(gap.roundedDescription) between samples (a running worker samples every \(Self.interval.roundedDescription))"
                    )
                }
                if let dealloc = previous["dealloc"].flatMap(Int64.init), statistics.dealloc > dealloc {
                    reasons.append(
                        "pg_stat_statements evicted \(statistics.dealloc - dealloc) entries (raise pg_stat_statements.max)"
                    )
                }
                if previous["stats_reset"] != statistics.statsReset {
                    reasons.append("pg_stat_statements was reset")
                }
            }
        }
        if statistics.nullTexts > 0 {
            reasons.append("pg_stat_statements discarded its query texts (\(statistics.nullTexts) entries show none)")
        }
        let restart = reasons.isEmpty ? nil : reasons.joined(separator: "; ")

        let known = try await knownColumns(of: changes, on: connection)
        let tracked = try await trackedEntries(of: changes, on: connection)
        var columns: [ReaderSample.Column] = []
        for change in changes {
            for column in change.matcher.columns {
                let key = ColumnKey(change: change.name, column: column)
                var seen = Sighting()
                var columnRestart = known.contains(key) ? restart : "the first sample"
                var current: [EntryKey: Entry] = [:]
                for entry in statistics.entries where change.matcher.columnsRead(by: entry.query).contains(column) {
                    current[entry.key] = entry
                }
                let before = tracked[key] ?? [:]
                for entryKey in before.keys where current[entryKey] == nil {
                    columnRestart =
                        columnRestart ?? "a statement naming it left pg_stat_statements (evicted or reset)"
                    try await forget(entryKey, of: key, on: connection)
                }
                for (entryKey, entry) in current {
                    var read = false
                    if let calls = before[entryKey] {
                        if entry.calls < calls {
                            columnRestart = columnRestart ?? "the counts of a statement naming it went back (reset)"
                            read = entry.calls > 0
                        } else {
                            read = entry.calls > calls
                        }
                    } else {
                        // An entry made since the last sample ran since; at a column's first
                        // sample it may be older than the change, and only sets the baseline.
                        read = known.contains(key) && entry.calls > 0
                    }
                    if read { seen.secondsAgo = 0 }
                    // An entry tracked already at the same count has nothing new to write.
                    if before[entryKey] != entry.calls {
                        try await track(entry, of: key, read: read, at: statistics.readAt, on: connection)
                    }
                }
                for session in statistics.sessions where change.matcher.columnsRead(by: session.query).contains(column)
                {
                    if session.active {
                        seen.secondsAgo = 0
                    } else if session.secondsAgo <= previousGap ?? 0 {
                        // Finished since the last sample: pg_stat_statements counted it too,
                        // unless it was evicted meanwhile.
                        seen.secondsAgo = min(seen.secondsAgo ?? .infinity, session.secondsAgo)
                    }
                    if session.active || session.secondsAgo <= change.secondsSinceStart {
                        seen.applications.insert(session.who)
                    }
                }
                try await record(key, seen: seen, restart: columnRestart, at: statistics.readAt, on: connection)
                columns.append(
                    ReaderSample.Column(
                        change: change.name, column: column, read: seen.secondsAgo != nil,
                        applications: seen.applications.sorted(), windowRestarted: columnRestart))
            }
        }
        try await connection.query(
            """
            UPDATE \(schema.qualified("change_sampling"))
            SET sampled_at = $3::timestamptz, available = true, unavailable_reason = NULL, dealloc = $1,
                stats_reset = $2::timestamptz
            """, [statistics.dealloc, statistics.statsReset, statistics.readAt])
        return ReaderSample(available: true, unavailableReason: nil, columns: columns)
    }

    // MARK: Reading

    /// A change in flight that drops columns.
    struct InFlight {
        var name: String
        var matcher: ColumnReadMatcher
        var secondsSinceStart: Double
    }

    private func inFlight(on connection: Connection) async throws -> [InFlight] {
        try await connection.query(
            """
            SELECT name, table_name, statements->>'disagrees' AS disagrees, statements->>'backfill' AS backfill,
                   coalesce((SELECT pg_catalog.array_to_json(pg_catalog.array_agg(d))::text
                             FROM pg_catalog.jsonb_array_elements_text(statements->'dropped') AS d), '[]') AS dropped,
                   extract(epoch FROM now() - started_at)::float8 AS age
            FROM \(schema.qualified("change_records"))
            WHERE phase NOT IN ('completed', 'aborted') AND pg_catalog.jsonb_typeof(statements->'dropped') = 'array'
            ORDER BY name
            """
        ).rows.compactMap { row in
            let dropped = try JSONDecoder().decode([String].self, from: Data(try row.string("dropped").utf8))
            guard !dropped.isEmpty else { return nil }
            return InFlight(
                name: try row.string("name"),
                matcher: ColumnReadMatcher(
                    qualifiedTable: try row.string("table_name"), columns: dropped, disagrees: row["disagrees"],
                    backfill: row["backfill"]),
                secondsSinceStart: try row.double("age"))
        }
    }

    /// An entry of `pg_stat_statements`, keyed as it keys them.
    struct EntryKey: Hashable {
        var userid: Int64
        var dbid: Int64
        var queryid: Int64
        var toplevel: Bool
    }

    struct Entry {
        var key: EntryKey
        var calls: Int64
        var query: String
    }

    /// A session of `pg_stat_activity`: its application name (or role), its current or last
    /// query, whether that still runs, and how long ago it finished.
    struct Session {
        var who: String
        var query: String
        var active: Bool
        var secondsAgo: Double
    }

    struct Statistics {
        /// When pg_stat_statements was read: the sample's time, however long the sample takes.
        var readAt: String
        var dealloc: Int64
        var statsReset: String?
        var nullTexts: Int64
        var entries: [Entry]
        var sessions: [Session]
    }

    enum Read {
        case available(Statistics)
        case unavailable(String)
    }

    /// What `pg_stat_statements` and `pg_stat_activity` hold for this database that could name
    /// a dropped column (a substring of the text, which the matcher then reads as tokens), or
    /// why they cannot be read.
    private func readStatistics(for changes: [InFlight], on connection: Connection) async throws -> Read {
        let database =
            try await connection.query("SELECT pg_catalog.current_database() AS db").first?.string("db") ?? "?"
        guard
            let extensionSchema = try await connection.query(
                """
                SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                WHERE e.extname = 'pg_stat_statements'
                """
            ).first?.string("nspname")
        else {
            return .unavailable(
                "pg_stat_statements is not installed in database \(database): add pg_stat_statements to shared_preload_libraries in postgresql.conf, restart the server, and run CREATE EXTENSION pg_stat_statements in the database"
            )
        }
        let readsAll =
            try await connection.query(
                """
                SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'pg_read_all_stats', 'USAGE') AS reads_all
                FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
                """
            ).first?.bool("reads_all") ?? false
        guard readsAll else {
            let role = try await connection.query("SELECT current_user AS r").first?.string("r") ?? "?"
            return .unavailable(
                "role \(role) may not read other roles' statements in pg_stat_statements: GRANT pg_read_all_stats TO \(quoteIdentifier(role))"
            )
        }
        let statements = "\(quoteIdentifier(extensionSchema)).pg_stat_statements"
        let names = Array(Set(changes.flatMap(\.matcher.columns)))
        try await connection.execute("SAVEPOINT godwit_reader_sample")
        do {
            let info = try await connection.query(
                """
                SELECT i.dealloc, i.stats_reset::text AS stats_reset, pg_catalog.clock_timestamp()::text AS read_at
                FROM \(quoteIdentifier(extensionSchema)).pg_stat_statements_info i
                """)
            // One pass over the statements (their texts are read from a file): those that may
            // name a column, and those whose text pg_stat_statements discarded.
            let entries = try await connection.query(
                """
                SELECT s.userid::bigint AS userid, s.dbid::bigint AS dbid, s.queryid, s.toplevel, s.calls, s.query
                FROM \(statements) s
                WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
                  AND (s.query IS NULL
                       OR EXISTS (SELECT FROM pg_catalog.unnest($1::text[]) AS c(name)
                                  WHERE pg_catalog.strpos(pg_catalog.lower(s.query), pg_catalog.lower(c.name)) > 0))
                """, [GodwitPostgres.PostgresArray.literal(names)])
            try await connection.execute("RELEASE SAVEPOINT godwit_reader_sample")
            // The sessions after the statements: a call the statements counted was started
            // before, so its session shows it now, and the sample that sees the call sees its
            // application too (read the other way round, a call between the two reads was
            // counted without its application).
            let sessions = try await connection.query(
                """
                SELECT coalesce(nullif(a.application_name, ''), 'role ' || coalesce(a.usename::text, '?')) AS who,
                       a.query, coalesce(a.state = 'active', false) AS active,
                       coalesce(extract(epoch FROM pg_catalog.clock_timestamp() - a.state_change)::float8, 0) AS ago
                FROM pg_catalog.pg_stat_activity a
                WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()
                  AND a.backend_type = 'client backend' AND a.query IS NOT NULL
                  AND EXISTS (SELECT FROM pg_catalog.unnest($1::text[]) AS c(name)
                              WHERE pg_catalog.strpos(pg_catalog.lower(a.query), pg_catalog.lower(c.name)) > 0)
                """, [GodwitPostgres.PostgresArray.literal(names)])
            guard let first = info.first else { return .unavailable("pg_stat_statements_info returned no row") }
            return .available(
                Statistics(
                    readAt: try first.string("read_at"), dealloc: try first.int64("dealloc"),
                    statsReset: first["stats_reset"],
                    nullTexts: Int64(entries.rows.count { $0["query"] == nil }),
                    entries: try entries.rows.filter { $0["query"] != nil }.map { row in
                        Entry(
                            key: EntryKey(
                                userid: try row.int64("userid"), dbid: try row.int64("dbid"),
                                queryid: try row.int64("queryid"), toplevel: try row.bool("toplevel")),
                            calls: try row.int64("calls"), query: try row.string("query"))
                    },
                    sessions: try sessions.rows.map { row in
                        Session(
                            who: try row.string("who"), query: try row.string("query"), active: try row.bool("active"),
                            secondsAgo: try row.double("ago"))
                    }))
        } catch let error as PostgresError where error.code == .server {
            // Installed but not loaded ("must be loaded via shared_preload_libraries"), or not
            // readable: the reason is the server's.
            try await connection.execute("ROLLBACK TO SAVEPOINT godwit_reader_sample")
            return .unavailable("pg_stat_statements cannot be read in database \(database): \(error.message)")
        }
    }

    struct ColumnKey: Hashable {
        var change: String
        var column: String
    }

    /// The columns sampled before.
    private func knownColumns(of changes: [InFlight], on connection: Connection) async throws -> Set<ColumnKey> {
        Set(
            try await connection.query(
                """
                SELECT change_name, column_name FROM \(schema.qualified("change_readers"))
                WHERE change_name = ANY ($1::text[]) AND sampled_at IS NOT NULL
                """, [GodwitPostgres.PostgresArray.literal(changes.map(\.name))]
            ).rows.map { ColumnKey(change: try $0.string("change_name"), column: try $0.string("column_name")) })
    }

    /// The entries seen naming each column at the last sample, with their calls then.
    private func trackedEntries(
        of changes: [InFlight], on connection: Connection
    ) async throws -> [ColumnKey: [EntryKey: Int64]] {
        var tracked: [ColumnKey: [EntryKey: Int64]] = [:]
        for row in try await connection.query(
            """
            SELECT change_name, column_name, userid::bigint AS userid, dbid::bigint AS dbid, queryid, toplevel, calls
            FROM \(schema.qualified("change_reader_statements")) WHERE change_name = ANY ($1::text[])
            """, [GodwitPostgres.PostgresArray.literal(changes.map(\.name))]
        ).rows {
            let key = ColumnKey(change: try row.string("change_name"), column: try row.string("column_name"))
            let entry = EntryKey(
                userid: try row.int64("userid"), dbid: try row.int64("dbid"), queryid: try row.int64("queryid"),
                toplevel: try row.bool("toplevel"))
            tracked[key, default: [:]][entry] = try row.int64("calls")
        }
        return tracked
    }

    // MARK: Writing

    /// What one sample saw of reads of a column.
    struct Sighting {
        /// How long ago the latest read was seen (0: in this sample's interval), nil for none.
        var secondsAgo: Double?
        var applications: Set<String> = []
    }

    private func track(
        _ entry: Entry, of key: ColumnKey, read: Bool, at: String, on connection: Connection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO \(schema.qualified("change_reader_statements")) AS t
                (change_name, column_name, userid, dbid, queryid, toplevel, calls, query, last_seen_at)
            VALUES ($1, $2, $3::bigint::oid, $4::bigint::oid, $5, $6, $7, $8, CASE WHEN $9 THEN $10::timestamptz END)
            ON CONFLICT (change_name, column_name, userid, dbid, queryid, toplevel) DO UPDATE
            SET calls = EXCLUDED.calls, query = EXCLUDED.query,
                last_seen_at = coalesce(EXCLUDED.last_seen_at, t.last_seen_at)
            """,
            [
                key.change, key.column, entry.key.userid, entry.key.dbid, entry.key.queryid, entry.key.toplevel,
                entry.calls, entry.query, read, at,
            ])
    }

    private func forget(_ entry: EntryKey, of key: ColumnKey, on connection: Connection) async throws {
        try await connection.query(
            """
            DELETE FROM \(schema.qualified("change_reader_statements"))
            WHERE change_name = $1 AND column_name = $2 AND userid = $3::bigint::oid AND dbid = $4::bigint::oid
              AND queryid = $5 AND toplevel = $6
            """, [key.change, key.column, entry.userid, entry.dbid, entry.queryid, entry.toplevel])
    }

    private func record(
        _ key: ColumnKey, seen: Sighting, restart: String?, at: String, on connection: Connection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO \(schema.qualified("change_readers")) AS t
                (change_name, column_name, last_seen_at, window_started_at, window_reason, sampled_at, application_names)
            VALUES ($1, $2, $6::timestamptz - pg_catalog.make_interval(secs => $3::float8), $6::timestamptz, $4,
                $6::timestamptz, $5::text[])
            ON CONFLICT (change_name, column_name) DO UPDATE
            SET last_seen_at = greatest(t.last_seen_at, EXCLUDED.last_seen_at),
                window_started_at = CASE WHEN $4 IS NULL AND t.window_started_at IS NOT NULL
                                         THEN t.window_started_at ELSE $6::timestamptz END,
                window_reason = CASE WHEN $4 IS NULL AND t.window_started_at IS NOT NULL
                                     THEN t.window_reason ELSE $4 END,
                sampled_at = $6::timestamptz,
                application_names = coalesce(
                    (SELECT pg_catalog.array_agg(DISTINCT n ORDER BY n)
                     FROM pg_catalog.unnest(t.application_names || EXCLUDED.application_names) AS n), '{}')
            """,
            [
                key.change, key.column, seen.secondsAgo, restart,
                GodwitPostgres.PostgresArray.literal(seen.applications.sorted()), at,
            ])
    }
}

/// What one sample saw, for the worker's log and for tests.
public struct ReaderSample: Sendable, Equatable {
    /// Whether `pg_stat_statements` could be read, and if not why.
    public var available: Bool
    public var unavailableReason: String?
    public var columns: [Column]

    /// One dropped column of one change in flight.
    public struct Column: Sendable, Equatable {
        public var change: String
        public var column: String
        /// A statement naming it ran since the sample before (or runs now).
        public var read: Bool
        /// The application names of sessions seen with such a statement in this sample.
        public var applications: [String]
        /// Why its window started again at this sample, or nil when it goes on.
        public var windowRestarted: String?
    }
}
