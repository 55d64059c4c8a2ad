import Foundation
import GodwitChanges
import GodwitHTTP
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import HummingbirdTesting
import Testing

/// The dashboard's changes pages and the changes' metrics, for changes recorded by hand as
/// `change start` records them.
@Suite("The changes pages and metrics")
struct ChangesPageTests {
    static let hostile = #"<script>alert("x")</script> & 'quoted'"#

    /// The changes' part, a `media` table, and a change named `name` on it in `phase`.
    static func record(
        _ database: TestDatabase, name: String, phase: String = "backfilling", disagreeing: Int64? = nil
    ) async throws {
        let conn = try await database.connect()
        try await QueueSchema.withChanges().install(on: conn)
        try await conn.execute(
            "CREATE TABLE IF NOT EXISTS media (id bigint PRIMARY KEY, title text, caption text)")
        let source = """
            -- godwit:change
            -- table: media
            -- add-column: caption text = title
            -- drop-column: title = caption
            -- index: caption
            """
        try await conn.query(
            """
            INSERT INTO godwit.change_records (name, table_name, table_oid, key_column, phase, file, source, definition,
                statements, disagreeing_rows)
            VALUES ($1, '"public"."media"', 'public.media'::regclass, 'id', $2, 'changes/x.sql', $3, '{}', '{}', $4)
            """, [name, phase, source, disagreeing])
        try await conn.query(
            """
            INSERT INTO godwit.change_readers (change_name, column_name, last_seen_at, application_names)
            VALUES ($1, 'title', now(), ARRAY['<b>api</b>'])
            """, [name])
        await conn.close()
    }

    @Test("Without the changes' part: an empty changes page, and every phase at 0 in /metrics")
    func withoutTheChangesPart() async throws {
        try await withOperations { _, _, client in
            try await client.execute(uri: "/changes", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("No changes."))
                #expect(response.text.contains(#"<a href="/changes" aria-current="page">Changes</a>"#))
            }
            try await client.execute(uri: "/change?name=x", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                for phase in ChangePhase.allCases {
                    #expect(response.text.contains(#"godwit_changes{phase="\#(phase.rawValue)"} 0.0"#), "\(phase)")
                }
                #expect(response.text.contains("godwit_database_up 1.0"))
            }
        }
    }

    @Test("The list and one change's page, a hostile name escaped everywhere, linked from every page's nav")
    func pages() async throws {
        try await withOperations { database, _, client in
            try await Self.record(database, name: Self.hostile, disagreeing: 3)
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains(#"<a href="/changes">Changes</a>"#))
            }
            let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"
            let link = "/change?name=" + Self.hostile.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            for path in ["/changes", "/fragments/changes"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    let page = response.text
                    #expect(page.contains(escaped), "\(path)")
                    #expect(!page.contains("<script>alert"), "\(path)")
                    #expect(page.contains(#"data-phase="backfilling""#), "\(path)")
                    #expect(page.contains("0 / ? rows"), "\(path)")
                    #expect(page.contains("the change is backfilling, not ready"), "\(path): the blocker")
                    #expect(page.contains(#"href="/change?name=%3Cscript%3E"#), "\(path)")
                }
            }
            for path in [link, link.replacingOccurrences(of: "/change?", with: "/fragments/change?")] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    let page = response.text
                    #expect(page.contains(escaped), "\(path)")
                    #expect(!page.contains("<script>alert"), "\(path)")
                    #expect(page.contains("Complete would refuse:"), "\(path)")
                    #expect(page.contains("<li>the change is backfilling, not ready</li>"), "\(path)")
                    #expect(page.contains("media_caption_idx"), "\(path): the index it builds")
                    #expect(page.contains("not built"), "\(path)")
                    #expect(page.contains("&lt;b&gt;api&lt;/b&gt;"), "\(path): the application names, escaped")
                    #expect(!page.contains("<b>api</b>"), "\(path)")
                    #expect(page.contains("SELECT *"), "\(path): what the evidence cannot see")
                    #expect(page.contains("-- add-column: caption text = title"), "\(path): the file")
                }
            }
            try await client.execute(uri: "/change?name=nothing", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.text.contains("no change named nothing"))
            }
            try await client.execute(uri: "/change", method: .get) { response in
                #expect(response.status == .badRequest)
            }
        }
    }

    @Test("/metrics: changes by phase, and a change in flight's disagreeing rows")
    func metrics() async throws {
        try await withOperations { database, _, client in
            try await Self.record(database, name: "rename_title", phase: "verifying", disagreeing: 3)
            try await Self.record(database, name: "old", phase: "completed", disagreeing: 0)
            try await Self.record(database, name: "a\"b\nc} 1", phase: "backfilling")
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = response.text
                #expect(text.contains(#"godwit_changes{phase="verifying"} 1.0"#))
                #expect(text.contains(#"godwit_changes{phase="completed"} 1.0"#))
                #expect(text.contains(#"godwit_changes{phase="ready"} 0.0"#))
                #expect(text.contains(#"godwit_changes{phase="planned"} 0.0"#))
                #expect(text.contains(#"godwit_change_disagreeing_rows{change="rename_title"} 3.0"#))
                #expect(text.contains(#"godwit_change_ready{change="rename_title"} 0.0"#))
                // A name cannot break the exposition: its quote and line feed are escaped.
                #expect(text.contains(#"godwit_change_ready{change="a\"b\nc} 1"} 0.0"#))
                #expect(text.contains(#"godwit_changes{phase="backfilling"} 1.0"#))
                // A change that ended keeps no series of its own.
                #expect(!text.contains(#"change="old""#))
                #expect(text.contains("# HELP godwit_changes "))
            }
        }
    }
}
