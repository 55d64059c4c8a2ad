import Foundation
import GodwitHTTP
import GodwitMigrations
import GodwitQueue
import GodwitTestSupport
import HummingbirdTesting
import Testing

@Suite("The dashboard")
struct DashboardTests {
    static let hostile = #"<script>alert("x")</script> & 'quoted'"#

    @Test("A hostile job name, error and hold reason are escaped on the page and in the live fragment")
    func escaping() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: Self.hostile)
            let connection = try await database.connect()
            try await connection.query(
                "UPDATE godwit.jobs SET last_error = $2 WHERE id = $1", [id, "<img src=x onerror=alert(1)>"])
            try await connection.query(
                "UPDATE godwit.job_progress SET hold_reason = $2 WHERE job_id = $1", [id, "<b>held</b>"])
            await connection.close()
            for path in ["/", "/fragments/jobs", "/jobs/\(id)", "/fragments/jobs/\(id)"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    let page = response.text
                    #expect(
                        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"),
                        "\(path)")
                    #expect(!page.contains("<script>alert"), "\(path)")
                    #expect(!page.contains("<img src=x"), "\(path)")
                    #expect(!page.contains("<b>held</b>"), "\(path)")
                }
            }
        }
    }

    @Test("The jobs page: progress as a percentage, filters by state and kind, search by name")
    func jobsPage() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: "backfill_orders")
            try await enqueue(database, name: "noop_100%_done")
            let connection = try await database.connect()
            try await connection.query("UPDATE godwit.jobs SET state = 'running' WHERE id = $1", [id])
            try await connection.query(
                "UPDATE godwit.job_progress SET rows_done = 421, rows_total = 1000, rows_per_second = 50 WHERE job_id = $1",
                [id])
            await connection.close()
            try await client.execute(uri: "/", method: .get) { response in
                let page = response.text
                #expect(page.contains("backfill_orders"))
                #expect(page.contains("42.1%"))
                #expect(page.contains("421 / 1000 rows"))
                #expect(page.contains("prefers-color-scheme:dark"))
                #expect(page.contains(#"name="viewport""#))
                #expect(response.headers[.contentSecurityPolicy]?.contains("script-src 'nonce-") == true)
                #expect(
                    !page.contains("http://") && !page.contains("https://"), "everything is served by godwit itself")
            }
            try await client.execute(uri: "/?state=running", method: .get) { response in
                #expect(response.text.contains("backfill_orders"))
                #expect(!response.text.contains("noop_100%_done"))
            }
            try await client.execute(uri: "/fragments/jobs?kind=noop", method: .get) { response in
                #expect(!response.text.contains("backfill_orders"))
                #expect(response.text.contains("noop_100%_done"))
            }
            // The search takes % literally.
            try await client.execute(uri: "/fragments/jobs?q=100%25", method: .get) { response in
                #expect(response.text.contains("noop_100%_done"))
                #expect(!response.text.contains("backfill_orders"))
            }
            try await client.execute(uri: "/fragments/jobs?q=%25%25", method: .get) { response in
                #expect(response.text.contains("No jobs."))
            }
        }
    }

    @Test(
        "Running jobs come first, then the newest, at most 200; a kind only in the table is still offered as a filter")
    func jobOrder() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query(
                "INSERT INTO godwit.jobs (kind, name) SELECT 'noop', 'job_' || g || '_' FROM generate_series(1, 250) g")
            try await connection.query("UPDATE godwit.jobs SET state = 'running' WHERE name IN ('job_3_', 'job_7_')")
            try await connection.query("INSERT INTO godwit.jobs (kind, name) VALUES ('hand-made', 'odd_one')")
            await connection.close()
            try await client.execute(uri: "/", method: .get) { response in
                let page = response.text
                let names = page.components(separatedBy: "<td class=\"name\">").dropFirst().compactMap {
                    $0.split(separator: ">").dropFirst().first?.split(separator: "<").first.map(String.init)
                }
                #expect(names.count == 200)
                #expect(Array(names.prefix(4)) == ["job_7_", "job_3_", "odd_one", "job_250_"], "\(names.prefix(4))")
                #expect(!names.contains("job_52_"), "older than the newest 200")
                #expect(page.contains("<option value=\"hand-made\""), "the kind filter offers it")
                #expect(page.contains("<option value=\"batched_parallel\""), "and every kind godwit knows")
            }
        }
    }

    @Test("A split job's page lists its shards with their progress, linked to their own pages")
    func shardsOnTheParentsPage() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query("CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)")
            try await connection.query("INSERT INTO items (id) SELECT generate_series(1, 20000)")
            try await connection.query("ANALYZE items")
            let parent = try #require(
                try await connection.query(
                    """
                    SELECT godwit.enqueue_batched('split <b>', 'items', 'id',
                        'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2', parallel => 3) AS id
                    """
                ).first?.int64("id"))
            let shards = try await connection.query(
                "SELECT id FROM godwit.jobs WHERE parent_id = $1 ORDER BY id", [parent]
            )
            .rows.map { try $0.int64("id") }
            #expect(shards.count == 3)
            try await connection.query(
                "UPDATE godwit.job_progress SET rows_done = 1234, lock_waits = 2, lock_wait_ms_max = 17 WHERE job_id = $1",
                [shards[0]])
            await connection.close()
            for uri in ["/jobs/\(parent)", "/fragments/jobs/\(parent)"] {
                try await client.execute(uri: uri, method: .get) { response in
                    let page = response.text
                    #expect(page.contains("split &lt;b&gt;"))
                    #expect(page.contains("<h2>Shards</h2>"), "\(uri)")
                    for shard in shards { #expect(page.contains("<a href=\"/jobs/\(shard)\">\(shard)</a>")) }
                    #expect(page.contains("2, longest 17 ms"))
                    #expect(!page.contains("<h2>Batches</h2>"))
                }
            }
            try await client.execute(uri: "/jobs/\(shards[0])", method: .get) { response in
                #expect(response.text.contains("<h2>Batches</h2>"))
                #expect(!response.text.contains("<h2>Shards</h2>"))
            }
        }
    }

    @Test("The job page charts its batches as inline SVG")
    func jobPage() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: "chart_me")
            let connection = try await database.connect()
            try await connection.query(
                """
                INSERT INTO godwit.batches (job_id, seq, attempt, rows, rows_changed, batch_size, duration_ms, error)
                SELECT $1, g, 1, 100, 100, 100 * g, 10 * g, CASE WHEN g = 3 THEN 'canceling statement due to lock timeout' END
                FROM generate_series(1, 5) g
                """, [id])
            await connection.close()
            try await client.execute(uri: "/jobs/\(id)", method: .get) { response in
                let page = response.text
                #expect(page.contains("<svg class=\"chart\""))
                #expect(page.contains("batch size, rows (max 500)"))
                #expect(page.contains("duration (max 50 ms)"))
                #expect(page.contains("batch 3: canceling statement due to lock timeout"))
                #expect(page.contains("Lock waits caused</dt><dd>none"))
                #expect(!page.contains("<circle class=\"wait\""))
            }
        }
    }

    @Test("The job page shows the lock waits its batches caused, in its facts and on the chart")
    func lockWaitsOnTheJobPage() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: "made_them_wait")
            let connection = try await database.connect()
            try await connection.query(
                """
                INSERT INTO godwit.batches (job_id, seq, attempt, rows, rows_changed, batch_size, duration_ms, lock_waiters,
                    lock_wait_ms)
                SELECT $1, g, 1, 100, 100, 100, 20, CASE g WHEN 2 THEN 3 WHEN 4 THEN 1 ELSE 0 END,
                    CASE g WHEN 2 THEN 42 WHEN 4 THEN 12 ELSE 0 END
                FROM generate_series(1, 5) g
                """, [id])
            try await connection.query(
                "UPDATE godwit.job_progress SET lock_waits = 4, lock_wait_ms_max = 42, lock_wait_ms_total = 138 WHERE job_id = $1",
                [id])
            await connection.close()
            for uri in ["/jobs/\(id)", "/fragments/jobs/\(id)"] {
                try await client.execute(uri: uri, method: .get) { response in
                    let page = response.text
                    #expect(page.contains("Lock waits caused</dt><dd>4, longest 42 ms"), "\(uri)")
                    #expect(
                        page.components(separatedBy: "<circle class=\"wait\"").count - 1 == 2,
                        "one dot per batch that made others wait")
                    #expect(page.contains("<title>batch 2 made 3 waiting, longest 42 ms</title>"))
                    #expect(page.contains("lock waits caused (longest 42 ms)"))
                }
            }
        }
    }

    @Test("Migrations and backups pages")
    func migrationsAndBackups() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query(
                """
                INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at, reason)
                VALUES ('/var/backups/<x>.dump', 3145728, 'abcdef0123456789', 'app', now(), 'before migration 3 (<b>x</b>)')
                """)
            await connection.close()
            try await client.execute(uri: "/backups", method: .get) { response in
                #expect(response.text.contains("&lt;x&gt;.dump"))
                #expect(
                    response.text.contains("before migration 3 (&lt;b&gt;x&lt;/b&gt;)"), "why it was taken, escaped")
                #expect(response.text.contains("3.0 MB"))
                #expect(response.text.contains("abcdef012345"))
            }
            try await client.execute(uri: "/migrations", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("No migrations."))
            }
        }
    }

    @Test("The migrations page lists pending ones from the migrations folder")
    func pendingMigrations() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "CREATE TABLE t (id int);".write(
            to: folder.appendingPathComponent("20240101000000_create_t.sql"), atomically: true, encoding: .utf8)
        try await withOperations(configure: { $0.migrationsDirectory = folder.path }) { _, _, client in
            try await client.execute(uri: "/migrations", method: .get) { response in
                #expect(response.text.contains("create t"))
                #expect(response.text.contains("pending"))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.text.contains("godwit_migrations_pending 1.0"))
            }
        }
    }

    @Test(
        "The migrations page shows what the lint's catalog check finds in each pending migration, and what an allow comment accepted"
    )
    func lintFindings() async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-http-lint")
        try folder.write("20240101000000_create_big.sql", "CREATE TABLE big (id bigint PRIMARY KEY, v text);\n")
        try folder.write("20240102000000_index_big.sql", "CREATE INDEX big_v ON big (v);\n")
        try folder.write(
            "20240103000000_drop_old.sql",
            "-- godwit:allow drop-table nothing reads <old> since v2\nDROP TABLE old_things;\n")
        try folder.write("20240104000000_add_note.sql", "ALTER TABLE big ADD COLUMN note text;\n")
        try await withOperations(configure: { $0.migrationsDirectory = folder.path }) { database, _, client in
            let connection = try await database.connect()
            // The first migration is applied and its table has rows, so the catalog check
            // knows the table exists and how big it is.
            _ = try await Migrator(directory: folder.path).run(on: connection, targetVersion: 20_240_101_000_000)
            try await connection.query("CREATE TABLE old_things (id int)")
            try await connection.query("INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 5000) g")
            try await connection.query("ANALYZE big")
            await connection.close()
            try await client.execute(uri: "/migrations", method: .get) { response in
                let page = response.text
                #expect(response.status == .ok)
                #expect(
                    page.contains(
                        "Lint of the 3 pending migrations (the catalog check, nothing run): 1 finding, 1 accepted by an allow comment."
                    ), "\(page)")
                #expect(
                    page.contains(
                        "<span class=\"rule\">non-concurrent-index</span> <code>20240102000000_index_big.sql:1</code>"))
                #expect(page.contains("CREATE INDEX CONCURRENTLY"), "the fix is shown")
                #expect(page.contains("~5000 rows"))
                #expect(page.contains("accepted: nothing reads &lt;old&gt; since v2"), "the reason is escaped")
                #expect(
                    page.components(separatedBy: "<span class=\"tag\">1 finding</span>").count - 1 == 1,
                    "only the index migration is tagged")
            }
            // Nothing ran: the index is not there and the ledger still has one row.
            let check = try await database.connect()
            #expect(
                try await check.query("SELECT to_regclass('big_v') IS NULL AS absent").first?.bool("absent") == true)
            #expect(try await check.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 1)
            await check.close()
        }
    }

    @Test("A migrations folder the lint cannot read is said on the page, not a 503")
    func lintCannotRead() async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-http-lint-bad")
        try folder.write("20240101000000_bad_allow.sql", "-- godwit:allow no-such-rule because\nSELECT 1;\n")
        try await withOperations(configure: { $0.migrationsDirectory = folder.path }) { _, _, client in
            try await client.execute(uri: "/migrations", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("The lint could not read the migrations:"), "\(response.text)")
                #expect(response.text.contains("no-such-rule"))
            }
        }
    }

    @Test(
        "Bad requests get 4xx",
        arguments: [
            ("/jobs/abc", 400), ("/jobs/-1", 400), ("/jobs/99999999", 404), ("/?state=bogus", 400),
            ("/fragments/jobs?state=%3Cx%3E", 400), ("/nowhere", 404),
        ])
    func badRequests(path: String, status: Int) async throws {
        try await withOperations { _, _, client in
            try await client.execute(uri: path, method: .get) { response in
                #expect(Int(response.status.code) == status)
                #expect(!response.text.contains("<x>"))
            }
        }
    }
}
