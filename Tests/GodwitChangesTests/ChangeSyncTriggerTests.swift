import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The sync trigger of the column changes (rename, type change, split): two application
/// versions writing at once, each only the columns it knows, leave every row consistent on
/// both sides once the backfill has run; a write that sets both sides apart is refused naming
/// the change; the backfill's own statement fills the new side and fires nothing back.
@Suite("The sync trigger")
struct ChangeSyncTriggerTests {
    static let rename = """
        -- table: media
        -- add-column: caption text = title
        -- drop-column: title = caption
        """

    static let typeChange = """
        -- table: media
        -- add-column: size_kb bigint = size_bytes / 1024
        -- drop-column: size_bytes = size_kb * 1024
        """

    static let split = """
        -- table: media
        -- add-column: first_name text = split_part(full_name, ' ', 1)
        -- add-column: last_name text = split_part(full_name, ' ', 2)
        -- drop-column: full_name = first_name || ' ' || last_name
        """

    static func count(_ sql: String, on conn: Connection) async throws -> Int {
        try await conn.query("SELECT count(*) AS n FROM media WHERE \(sql)").first!.int("n")
    }

    @Test func aRenameKeepsTitleAndCaptionEqualUnderBothVersions() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("rename_title", Self.rename, on: conn)
            try await writeConcurrently(
                database,
                old: AppVersion(columns: ["title", "views"]) { column, n in column == "title" ? "old \(n)" : "\(n)" },
                new: AppVersion(columns: ["caption", "views"]) { column, n in column == "caption" ? "new \(n)" : "\(n)"
                })
            try await ChangeTests.backfill("rename_title", on: conn)
            #expect(try await Self.count("title IS DISTINCT FROM caption", on: conn) == 0)
            #expect(try await Self.count("caption IS NULL OR title IS NULL", on: conn) == 0)
            #expect(try await Self.count("caption LIKE 'new %'", on: conn) > 0, "the new version's writes are kept")
            #expect(try await ChangeTests.disagreeing("rename_title", on: conn) == 0)
            await conn.close()
        }
    }

    @Test func aTypeChangeFromBytesToKilobytesKeepsBothSidesConsistent() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            try await writeConcurrently(
                database,
                old: AppVersion(columns: ["size_bytes", "views"]) { column, n in
                    column == "size_bytes" ? "\(n * 1000 + 17)" : "\(n)"
                },
                new: AppVersion(columns: ["size_kb", "views"]) { column, n in "\(n)" })
            try await ChangeTests.backfill("size_kb", on: conn)
            // Lossy in one direction: a row is right when either side computes the other.
            #expect(
                try await Self.count(
                    "NOT (size_kb = size_bytes / 1024 OR size_bytes = size_kb * 1024)", on: conn) == 0)
            #expect(try await Self.count("size_kb IS NULL OR size_bytes IS NULL", on: conn) == 0)
            // Rows the new version wrote last carry its exact kilobytes, and their bytes follow.
            #expect(try await Self.count("size_bytes = size_kb * 1024 AND size_bytes % 1024 = 0", on: conn) > 0)
            #expect(try await ChangeTests.disagreeing("size_kb", on: conn) == 0)
            await conn.close()
        }
    }

    @Test func aSplitOfFullNameKeepsTheNameAndItsPartsInStep() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("split_name", Self.split, on: conn)
            try await writeConcurrently(
                database,
                old: AppVersion(columns: ["full_name", "views"]) { column, n in
                    column == "full_name" ? "Old\(n) Name\(n)" : "\(n)"
                },
                new: AppVersion(columns: ["first_name", "last_name", "views"]) { column, n in
                    switch column {
                    case "first_name": "New\(n)"
                    case "last_name": "Person\(n)"
                    default: "\(n)"
                    }
                })
            try await ChangeTests.backfill("split_name", on: conn)
            #expect(
                try await Self.count("full_name IS DISTINCT FROM first_name || ' ' || last_name", on: conn) == 0)
            #expect(try await Self.count("first_name IS NULL OR last_name IS NULL", on: conn) == 0)
            #expect(try await ChangeTests.disagreeing("split_name", on: conn) == 0)
            await conn.close()
        }
    }

    @Test func anOldColumnLeftToItsDefaultDoesNotCountAsWritten() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await conn.execute("ALTER TABLE media ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()")
            _ = try await ChangeTests.start(
                "view_count",
                """
                -- table: media
                -- add-column: view_count integer = views
                -- drop-column: views = view_count
                -- add-column: created timestamptz = created_at
                -- drop-column: created_at = created
                """, on: conn)
            // The new version knows neither views (NOT NULL DEFAULT 0) nor created_at (now()).
            let row = try await conn.query(
                "INSERT INTO media (view_count, created) VALUES (5, '2020-01-01Z') RETURNING views, created_at = '2020-01-01Z' AS same"
            ).first!
            #expect(try row.int("views") == 5)
            #expect(try row.bool("same"))
            // The old version inserting the default's own value still fills the new side.
            let old = try await conn.query(
                "INSERT INTO media (views) VALUES (0) RETURNING view_count, created = created_at AS same"
            ).first!
            #expect(try old.int("view_count") == 0)
            #expect(try old.bool("same"))
            // A value apart from the default on both sides is still refused.
            let error = await ChangeTests.serverError {
                try await conn.query("INSERT INTO media (views, view_count) VALUES (7, 8)")
            }
            #expect(error?.sqlState == SQLState("23514"))
            await conn.close()
        }
    }

    @Test func writesThatSetBothSidesApartAreRefusedNamingTheChange() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("rename_title", Self.rename, on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            let refusals = [
                "UPDATE media SET title = 'a', caption = 'b' WHERE id = 1",
                "INSERT INTO media (title, caption) VALUES ('a', 'b')",
                "UPDATE media SET size_bytes = 1500, size_kb = 5 WHERE id = 2",
                "INSERT INTO media (size_bytes, size_kb) VALUES (4096, 1)",
            ]
            for statement in refusals {
                let error = await ChangeTests.serverError { try await conn.query(statement) }
                #expect(error?.sqlState == SQLState("23514"), "\(statement): \(String(describing: error))")
                let change = statement.contains("size") ? "size_kb" : "rename_title"
                #expect(error?.message.contains("change \(change):") == true, "\(String(describing: error))")
            }
            // Both sides set consistently, in either direction, pass; the lossy pair too.
            try await conn.query("UPDATE media SET title = 'same', caption = 'same' WHERE id = 1")
            try await conn.query("UPDATE media SET size_bytes = 1500, size_kb = 1 WHERE id = 2")
            try await conn.query("UPDATE media SET size_bytes = 2048, size_kb = 2 WHERE id = 3")
            try await conn.query("INSERT INTO media (title, caption) VALUES ('both', 'both')")
            let row = try await conn.query("SELECT size_bytes, size_kb FROM media WHERE id = 2").first!
            #expect(try row.int("size_bytes") == 1500 && row.int("size_kb") == 1)
            // Nothing of the refused writes stayed.
            #expect(try await Self.count("title = 'a' OR caption = 'b' OR size_kb = 5", on: conn) == 0)
            await conn.close()
        }
    }

    @Test func theBackfillFillsTheNewSideAndFiresNothingBack() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("size_kb", Self.typeChange, on: conn)
            // Before the backfill the new side is NULL on the rows no one wrote since start.
            #expect(try await Self.count("size_kb IS NULL", on: conn) == 200)
            // The new version writes a few rows: their bytes follow their kilobytes exactly.
            try await conn.query("UPDATE media SET size_kb = 3 WHERE id IN (5, 6)")
            let before = try await conn.query(
                "SELECT md5(string_agg(id || ':' || size_bytes || ':' || coalesce(size_kb::text, '-'), ',' ORDER BY id)) AS h FROM media"
            ).first!.string("h")
            let oldSide = try await conn.query(
                "SELECT md5(string_agg(id || ':' || size_bytes, ',' ORDER BY id)) AS h FROM media"
            ).first!.string("h")
            try await ChangeTests.backfill("size_kb", on: conn)
            #expect(try await Self.count("size_kb IS NULL", on: conn) == 0)
            #expect(try await Self.count("size_kb IS DISTINCT FROM size_bytes / 1024", on: conn) == 0)
            // The old side is untouched (nothing fired back), and so are the rows written since.
            let oldSideAfter = try await conn.query(
                "SELECT md5(string_agg(id || ':' || size_bytes, ',' ORDER BY id)) AS h FROM media"
            ).first!.string("h")
            #expect(oldSide == oldSideAfter)
            #expect(try await Self.count("id IN (5, 6) AND size_kb = 3 AND size_bytes = 3072", on: conn) == 2)
            // A second pass changes nothing at all.
            let filled = try await conn.query(
                "SELECT md5(string_agg(id || ':' || size_bytes || ':' || size_kb, ',' ORDER BY id)) AS h FROM media"
            ).first!.string("h")
            try await ChangeTests.backfill("size_kb", on: conn)
            let again = try await conn.query(
                "SELECT md5(string_agg(id || ':' || size_bytes || ':' || size_kb, ',' ORDER BY id)) AS h FROM media"
            ).first!.string("h")
            #expect(filled == again)
            #expect(before != filled)
            await conn.close()
        }
    }
}
