import Foundation
import GodwitHTTP
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
            let id = try await enqueue(database, kind: "batched", name: Self.hostile)
            let connection = try await database.connect()
            try await connection.query("UPDATE godwit.jobs SET last_error = $2 WHERE id = $1", [id, "<img src=x onerror=alert(1)>"])
            try await connection.query("UPDATE godwit.job_progress SET hold_reason = $2 WHERE job_id = $1", [id, "<b>held</b>"])
            await connection.close()
            for path in ["/", "/fragments/jobs", "/jobs/\(id)", "/fragments/jobs/\(id)"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    let page = response.text
                    #expect(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"), "\(path)")
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
            let id = try await enqueue(database, kind: "batched", name: "backfill_orders")
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
                #expect(!page.contains("http://") && !page.contains("https://"), "everything is served by godwit itself")
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

    @Test("The job page charts its batches as inline SVG")
    func jobPage() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: "batched", name: "chart_me")
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
                #expect(page.contains("batch size (max 500)"))
                #expect(page.contains("duration (max 50 ms)"))
                #expect(page.contains("batch 3: canceling statement due to lock timeout"))
            }
        }
    }

    @Test("Migrations and backups pages")
    func migrationsAndBackups() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query(
                """
                INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at)
                VALUES ('/var/backups/<x>.dump', 3145728, 'abcdef0123456789', 'app', now())
                """)
            await connection.close()
            try await client.execute(uri: "/backups", method: .get) { response in
                #expect(response.text.contains("&lt;x&gt;.dump"))
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

    @Test("Bad requests get 4xx", arguments: [
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
