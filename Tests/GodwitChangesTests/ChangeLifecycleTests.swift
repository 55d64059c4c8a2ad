import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A rename from file to completed, through the commands a team runs and a worker running
/// in-process: `change start`, the backfill, the verification and the index build on the
/// worker, `change status` ready, `change complete` refused while the old version still reads
/// the old column (naming it and the old version's application name), then accepted once it
/// has been quiet for `--quiet-for`, leaving the end schema.
@Suite("A change from start to complete")
struct ChangeLifecycleTests {
    @Test func renameFromStartToComplete() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn, rows: 500)
            try await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            try await ChangeTests.withChangeFile(
                "rename_title",
                """
                -- table: media
                -- add-column: caption text = title
                -- drop-column: title = caption
                -- not-null: caption
                -- index: caption
                -- batch-size: 100
                """
            ) { file in

                let started = try await GodwitCommand.run(["change", "start", file, "-D", database.url])
                #expect(started.status == 0, "\(started.stderr)")
                #expect(started.stdout.contains("rename_title"), "\(started.stdout)")

                // The old version keeps reading and writing `title` while the change runs.
                let old = try await Connection.connect(database.url, applicationName: "media-v1")
                let oldVersion = Task {
                    var id: Int64 = 1
                    while !Task.isCancelled {
                        _ = try await old.query("SELECT title FROM media WHERE id = $1", [id])
                        try await old.query("UPDATE media SET title = 'v1 ' || id WHERE id = $1", [id + 250])
                        id = id % 200 + 1
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                let worker = changeWorker(database.url)
                let ready = try await eventually(timeout: .seconds(180), every: .milliseconds(200)) {
                    try await conn.query("SELECT phase FROM godwit.changes WHERE name = 'rename_title'").first?
                        .string("phase") == "ready"
                }
                #expect(ready, "\(worker.currentStderr.suffix(3000))")
                let status = try await GodwitCommand.run(["change", "status", "rename_title", "-D", database.url])
                #expect(status.status == 0 && status.stdout.contains("ready"), "\(status.stdout)\(status.stderr)")

                // Refused while version 1 still reads title: the column and its application named.
                let refused = try await GodwitCommand.run([
                    "change", "complete", "rename_title", "--quiet-for", "5s", "-D", database.url,
                ])
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("title") && refused.stderr.contains("media-v1"), "\(refused.stderr)")
                #expect(
                    try await conn.query(
                        "SELECT 1 FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'title' AND NOT attisdropped"
                    ).rows.count == 1)

                // Version 1 stops; once title has been quiet for 5 s, complete goes through.
                oldVersion.cancel()
                _ = await oldVersion.result
                var last = refused
                let completed = try await eventually(timeout: .seconds(120), every: .seconds(1)) {
                    last = try await GodwitCommand.run([
                        "change", "complete", "rename_title", "--quiet-for", "5s", "-D", database.url,
                    ])
                    return last.status == 0
                }
                #expect(completed, "\(last.stderr)")
                _ = await worker.stop()

                let columns = try await conn.query(
                    """
                    SELECT attname, attnotnull FROM pg_attribute
                    WHERE attrelid = 'media'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
                    """
                ).rows.map { "\(try $0.string("attname")):\(try $0.bool("attnotnull"))" }
                #expect(!columns.contains { $0.hasPrefix("title:") }, "\(columns)")
                #expect(columns.contains("caption:true"), "\(columns)")
                #expect(
                    try await conn.query(
                        "SELECT 1 FROM pg_trigger WHERE tgrelid = 'media'::regclass AND NOT tgisinternal"
                    )
                    .rows.count == 0)
                #expect(
                    try await conn.query(
                        "SELECT 1 FROM pg_index WHERE indexrelid = 'media_caption_idx'::regclass AND indisvalid"
                    ).rows.count == 1)
                #expect(
                    try await conn.query("SELECT count(*) AS n FROM media WHERE caption IS NULL").first!.int("n") == 0)
                #expect(
                    try await conn.query("SELECT count(*) AS n FROM media WHERE caption LIKE 'v1 %'").first!.int("n")
                        > 0)
                #expect(
                    try await conn.query("SELECT phase FROM godwit.changes WHERE name = 'rename_title'").first?.string(
                        "phase") == "completed")
            }
        }
    }
}
