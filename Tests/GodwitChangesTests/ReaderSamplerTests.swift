import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// The reader evidence: samples of pg_stat_statements and pg_stat_activity move a dropped
/// column's last_seen_at for statements that name it on the change's table, and for nothing
/// else, Godwit's own statements included; anything that could hide a read starts the
/// column's window again.
@Suite("The reader sampler")
struct ReaderSamplerTests {
    let sampler = ReaderSampler()

    @Test func aStatementNamingTheColumnMovesLastSeen() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await sampler.sample(on: conn)
            #expect(try await ReadyChange.reader(on: conn)?["last_seen_at"] == nil)

            let app = try await ReadyChange.application(database, name: "app-v1")
            try await app.query(#"SELECT "title" FROM "public"."media" WHERE id = $1"#, [7])
            let sample = try await sampler.sample(on: conn)
            #expect(sample.columns.map(\.read) == [true])
            let reader = try #require(try await ReadyChange.reader(on: conn))
            #expect(reader["last_seen_at"] != nil)
            #expect(reader["names"] == "app-v1")
            await app.close()

            // Nothing more ran: the next sample sees no read.
            #expect(try await sampler.sample(on: conn).columns.map(\.read) == [false])
        }
    }

    @Test func statementsNotNamingItOnTheTableDoNotCount() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await conn.execute("CREATE TABLE public.books (id bigint PRIMARY KEY, title text)")
            try await sampler.sample(on: conn)

            let app = try await ReadyChange.application(database, name: "app-v2")
            for statement in [
                "SELECT caption FROM public.media WHERE id = $1",
                "SELECT title FROM public.books WHERE id = $1",
                "SELECT 'title', id FROM public.media WHERE id = $1",
                "SELECT id FROM public.media /* title */ WHERE id = $1",
            ] {
                try await app.query(statement, [1])
            }
            #expect(try await sampler.sample(on: conn).columns.map(\.read) == [false])
            let reader = try #require(try await ReadyChange.reader(on: conn))
            #expect(reader["last_seen_at"] == nil)
            #expect(reader["names"] == "")

            // The sampler was not blind: a read now counts.
            try await app.query("SELECT title FROM public.media WHERE id = $1", [1])
            #expect(try await sampler.sample(on: conn).columns.map(\.read) == [true])
            await app.close()
        }
    }

    /// The backfill's no-op write (top-level, and nested as its batch function runs it, seen
    /// with track = all), the verification, and DDL naming the column: none is a reader. Over
    /// the statements written for the test, and over those `change start` generates (with its
    /// sync trigger firing under track = all).
    @Test(arguments: [false, true])
    func godwitsOwnStatementsDoNotCount(realStart: Bool) async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            if realStart {
                try await QueueSchema.withChanges().install(on: conn)
                try await conn.execute(ReadyChange.tableSQL)
                try await ReadyChange.start(on: conn)
            } else {
                try await ReadyChange.create(on: conn)
            }
            let row = try #require(
                try await conn.query(
                    """
                    SELECT j.payload->>'statement' AS backfill, c.statements->>'disagrees' AS disagrees,
                           c.statements->>'table' AS "table"
                    FROM godwit.change_records c LEFT JOIN godwit.jobs j ON j.id = c.backfill_job_id
                    """
                ).first)
            let backfill =
                row["backfill"] ?? #"UPDATE "public"."media" SET "title" = "title" WHERE "id" BETWEEN $1 AND $2"#
            let verification =
                "SELECT count(*) AS n FROM \(try row.string("table")) WHERE \(try row.string("disagrees")) AND id > $1"
            try await sampler.sample(on: conn)

            let godwit = try await ReadyChange.application(database, name: "godwit worker")
            try await godwit.execute("SET pg_stat_statements.track = 'all'")
            try await godwit.query(backfill, [1, 50])
            try await godwit.execute(
                "DO $godwit$ BEGIN EXECUTE \(quoteLiteral(backfill)) USING 51, 100; END $godwit$")
            try await godwit.query(verification, [0])
            try await godwit.execute(#"ALTER TABLE "public"."media" ALTER COLUMN "title" SET STATISTICS 200"#)
            let sample = try await sampler.sample(on: conn)
            #expect(sample.columns.map(\.read) == [false])
            #expect(try await ReadyChange.reader(on: conn)?["last_seen_at"] == nil)

            // The same session reading it is a reader.
            try await godwit.query("SELECT title FROM public.media LIMIT $1", [1])
            #expect(try await sampler.sample(on: conn).columns.map(\.read) == [true])
            await godwit.close()
        }
    }

    /// A read pg_stat_statements loses (its entries reset for the database) starts the
    /// column's window again.
    @Test func aResetOfTheEntriesRestartsTheWindow() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            let app = try await ReadyChange.application(database, name: "app-v1")
            try await sampler.sample(on: conn)
            try await app.query("SELECT title FROM public.media WHERE id = $1", [3])
            try await sampler.sample(on: conn)
            try await conn.execute("UPDATE godwit.change_readers SET window_started_at = now() - interval '1 hour'")
            #expect(try await ReadyChange.reader(on: conn)?["old_window"] == "t")

            try await conn.execute(
                "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
            )
            let sample = try await sampler.sample(on: conn)
            let restarted = try #require(sample.columns.first?.windowRestarted)
            #expect(restarted.contains("pg_stat_statements"), "\(restarted)")
            let reader = try #require(try await ReadyChange.reader(on: conn))
            #expect(reader["old_window"] == "f")
            #expect(reader["window_reason"] == restarted)
            await app.close()
        }
    }

    /// What pg_stat_statements says globally: a gap between samples, evictions, a full reset.
    @Test(arguments: [
        ("UPDATE godwit.change_sampling SET sampled_at = now() - interval '1 minute'", "a gap of"),
        ("UPDATE godwit.change_sampling SET dealloc = dealloc - 1", "pg_stat_statements evicted"),
        ("UPDATE godwit.change_sampling SET stats_reset = '2000-01-01'", "was reset"),
        ("UPDATE godwit.change_sampling SET available = false", "unavailable at the sample before"),
    ])
    func globalEventsRestartTheWindow(_ event: String, _ reason: String) async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await sampler.sample(on: conn)
            try await conn.execute("UPDATE godwit.change_readers SET window_started_at = now() - interval '1 hour'")
            try await conn.execute(event)
            let sample = try await sampler.sample(on: conn)
            let restarted = try #require(sample.columns.first?.windowRestarted)
            #expect(restarted.contains(reason), "\(restarted)")
            #expect(try await ReadyChange.reader(on: conn)?["old_window"] == "f")
        }
    }

    /// Without the event, the window goes on: the restarts above are the events' doing.
    @Test func aContinuousWindowGoesOn() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await sampler.sample(on: conn)
            try await conn.execute("UPDATE godwit.change_readers SET window_started_at = now() - interval '1 hour'")
            let sample = try await sampler.sample(on: conn)
            // Another database's evictions may restart it (the count is the server's); then
            // the sample says so.
            if let restarted = sample.columns.first?.windowRestarted {
                #expect(restarted.contains("evicted") || restarted.contains("discarded"), "\(restarted)")
            } else {
                #expect(try await ReadyChange.reader(on: conn)?["old_window"] == "t")
            }
        }
    }

    @Test func withoutTheExtensionSamplingIsUnavailableWithTheReason() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn, statistics: false)
            let sample = try await sampler.sample(on: conn)
            #expect(!sample.available)
            #expect(sample.unavailableReason?.contains("CREATE EXTENSION pg_stat_statements") == true)
            let row = try #require(
                try await conn.query("SELECT available, unavailable_reason FROM godwit.change_sampling").first)
            #expect(try !row.bool("available"))
            #expect(row["unavailable_reason"] == sample.unavailableReason)
        }
    }
}
