import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A change run by a worker while both application versions write at once: `change start`,
/// the old and the new version writing concurrently while the worker backfills, verifies,
/// builds the index and validates the NOT NULL check, `ready` with every row's sides equal,
/// then `change complete`: the old column gone, the new one NOT NULL, no trigger left.
@Suite("A change under both versions on a worker", .serialized)
struct ChangeUnderBothVersionsTests {
    @Test func aRenameGoesFromStartThroughTheWorkerToComplete() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn, rows: 400)
            try await ChangeTests.withChangeFile(
                "rename_title",
                """
                -- table: media
                -- add-column: caption text = title
                -- drop-column: title = caption
                -- not-null: caption
                -- index: caption
                -- batch-size: 40
                """
            ) { file in
                let started = try await GodwitCommand.run(["change", "start", file, "-D", database.url])
                #expect(started.status == 0, "\(started.stderr)")

                let worker = GodwitCommand.start(
                    [
                        "worker", "-D", database.url, "--poll-interval", "1", "--retry-delay", "0.05",
                    ] + testWorkerConnectTimeout)
                try await writeConcurrently(
                    database,
                    old: AppVersion(columns: ["title", "views"]) { column, n in column == "title" ? "old \(n)" : "\(n)"
                    },
                    new: AppVersion(columns: ["caption", "views"]) { column, n in
                        column == "caption" ? "new \(n)" : "\(n)"
                    })
                let ready = try await eventually(timeout: .seconds(180)) {
                    try await conn.query("SELECT phase FROM godwit.change_records WHERE name = 'rename_title'").first?
                        .string("phase") == "ready"
                }
                let output = await worker.stop()
                #expect(ready, "\(output.stderr.suffix(3000))")
                let apart = try await conn.query(
                    "SELECT count(*) AS n FROM media WHERE caption IS DISTINCT FROM title OR caption IS NULL"
                ).first!.int("n")
                #expect(apart == 0)

                let completed = try await GodwitCommand.run([
                    "change", "complete", "rename_title", "-D", database.url, "--without-reader-check",
                    "lifecycle test: no old reader runs",
                ])
                #expect(completed.status == 0, "\(completed.stderr)")
                let end = try await conn.query(
                    """
                    SELECT (SELECT phase FROM godwit.change_records WHERE name = 'rename_title') AS phase,
                           (SELECT count(*) FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'title'
                                AND NOT attisdropped) AS titles,
                           (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'caption') AS not_null,
                           (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'media'::regclass AND NOT tgisinternal) AS triggers,
                           (SELECT count(*) FROM pg_constraint WHERE conrelid = 'media'::regclass AND contype = 'c') AS checks,
                           (SELECT indisvalid FROM pg_index WHERE indexrelid = 'media_caption_idx'::regclass) AS index_valid
                    """
                ).first!
                #expect(try end.string("phase") == "completed")
                #expect(try end.int("titles") == 0)
                #expect(try end.bool("not_null"))
                #expect(try end.int("triggers") == 0)
                #expect(try end.int("checks") == 0)
                #expect(try end.bool("index_valid"))
                await conn.close()
            }
        }
    }
}
