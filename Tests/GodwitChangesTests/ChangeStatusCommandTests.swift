import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `godwit change status`, run in-process: the table, one change in full, JSON with the issue's
/// keys, control characters escaped, exit status 0 whatever the phases, and one error line for
/// a change that does not exist.
@Suite("godwit change status")
struct ChangeStatusCommandTests {
    @Test func listsChangesAsATableAndAsJSON() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeStatusTests.prepared(conn)
            var run = try await GodwitCommand.run(["change", "status", "-D", database.url])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout == "no changes\n")

            try await ChangeStatusTests.record(conn)
            try await ChangeStatusTests.record(conn, name: "evil\u{1B}]52;c;aGk=\u{07}\nforged", phase: "aborted")
            run = try await GodwitCommand.run(["change", "status", "-D", database.url])
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "a header and one line a change: \(run.stdout)")
            #expect(lines.first?.hasPrefix("NAME") == true)
            #expect(lines.first?.contains("BLOCKED BY") == true)
            let line = try #require(lines.first { $0.hasPrefix("rename_title") })
            #expect(line.contains("\"public\".\"media\""))
            #expect(line.contains("backfilling"))
            #expect(line.contains("0/?"))
            #expect(line.contains("the change is backfilling, not ready"))
            // The escape sequence and the newline in a name are shown, not obeyed.
            #expect(!run.stdout.contains("\u{1B}"))
            #expect(run.stdout.contains("evil\\u001B]52;c;aGk=\\u0007\\u000Aforged"))

            run = try await GodwitCommand.run(["change", "status", "--format", "json", "-D", database.url])
            #expect(run.status == 0, "\(run.stderr)")
            let list = try #require(
                try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])
            #expect(list.count == 2)
            for key in ["name", "table", "phase", "rows_done", "rows_total", "disagreeing_rows", "ready", "blocked_by"]
            {
                #expect(list.allSatisfy { $0.keys.contains(key) }, "JSON lacks \(key)")
            }
            await conn.close()
        }
    }

    @Test func showsOneChangeInFull() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeStatusTests.prepared(conn)
            try await ChangeStatusTests.record(conn)
            try await conn.execute(
                """
                INSERT INTO godwit.change_readers (change_name, column_name, last_seen_at, application_names)
                VALUES ('rename_title', 'title', now(), ARRAY['api v1']);
                CREATE INDEX media_caption_idx ON media (caption);
                """)
            var run = try await GodwitCommand.run(["change", "status", "rename_title", "-D", database.url])
            #expect(run.status == 0, "\(run.stderr)")
            let text = run.stdout
            #expect(text.contains("phase:"))
            #expect(text.contains("backfilling"))
            #expect(text.contains("media_caption_idx (caption): valid"))
            #expect(text.contains("slug"))
            #expect(text.contains("not-null"))
            #expect(text.contains("title: last seen"))
            #expect(text.contains("application names: api v1"))
            #expect(text.contains("SELECT *"))
            #expect(text.contains("complete: would refuse:\n  - the change is backfilling, not ready"))

            run = try await GodwitCommand.run([
                "change", "status", "rename_title", "--format", "json", "-D", database.url,
            ])
            #expect(run.status == 0, "\(run.stderr)")
            let details = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(details["name"] as? String == "rename_title")
            #expect(details["ready"] as? Bool == false)
            #expect((details["objects"] as? [[String: Any]])?.count == 5)
            #expect((details["readers"] as? [[String: Any]])?.first?["application_names"] as? [String] == ["api v1"])

            run = try await GodwitCommand.run(["change", "status", "no_such_change", "-D", database.url])
            #expect(run.status == 1)
            #expect(run.stdout.isEmpty)
            #expect(run.stderr == "error: no change named no_such_change: `godwit change status` lists them\n")
            await conn.close()
        }
    }

    /// A change as `change start` makes it: status finds the constraint start added NOT VALID
    /// under the name start gave it, the index not built yet, and the backfill job queued.
    @Test func showsAStartedChangeAsStartMadeIt() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start(
                "rename_title",
                """
                -- table: media
                -- add-column: caption text = title
                -- drop-column: title = caption
                -- not-null: caption
                -- index: caption
                """, on: conn)
            let run = try await GodwitCommand.run(
                ["change", "status", "rename_title", "--format", "json", "-D", database.url])
            #expect(run.status == 0, "\(run.stderr)")
            let details = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(details["phase"] as? String == "backfilling")
            #expect(details["table"] as? String == "\"public\".\"media\"")
            #expect(details["backfill_job_id"] is Int)
            #expect(details["backfill_state"] as? String == "queued")
            #expect(details["ready"] as? Bool == false)
            #expect(details["dropped_columns"] as? [String] == ["title"])
            let objects = try #require(details["objects"] as? [[String: Any]])
            let states = Dictionary(
                uniqueKeysWithValues: objects.map { ($0["kind"] as? String ?? "", $0["state"] as? String ?? "") })
            #expect(states == ["not-null": "not valid", "index": "not built"], "\(objects)")
            await conn.close()
        }
    }

    /// Given its file, status shows the change the file names: planned until it is started,
    /// then as recorded; a file that is not a change file is one line naming its line.
    @Test func aFileShowsItsChangePlannedUntilStarted() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-status-\(UUID())")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            try """
            -- godwit:change
            -- table: media
            -- add-column: caption text = title
            -- drop-column: title = caption
            """.write(toFile: dir.path + "/rename_title.sql", atomically: true, encoding: .utf8)
            try "-- godwit:change\n-- table: media\n-- add-column: caption\n".write(
                toFile: dir.path + "/broken.sql", atomically: true, encoding: .utf8)

            var run = try await GodwitCommand.run(
                ["change", "status", "rename_title.sql", "-D", database.url], directory: dir.path)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("change:  rename_title\n"))
            #expect(run.stdout.contains("phase:   planned"))
            run = try await GodwitCommand.run(
                ["change", "status", "rename_title.sql", "--format", "json", "-D", database.url], directory: dir.path)
            var json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(json["phase"] as? String == "planned")
            #expect(json["name"] as? String == "rename_title")
            #expect(json["disagreeing_rows"] is NSNull)

            run = try await GodwitCommand.run(
                ["change", "start", "rename_title.sql", "-D", database.url], directory: dir.path)
            #expect(run.status == 0, "\(run.stderr)")
            run = try await GodwitCommand.run(
                ["change", "status", "rename_title.sql", "--format", "json", "-D", database.url], directory: dir.path)
            json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(json["phase"] as? String == "backfilling")

            run = try await GodwitCommand.run(
                ["change", "status", "broken.sql", "-D", database.url], directory: dir.path)
            #expect(run.status == 1)
            #expect(run.stderr.hasPrefix("error: broken.sql:3: `add-column` is"), "\(run.stderr)")
            #expect(run.stdout.isEmpty)
            await conn.close()
        }
    }
}
