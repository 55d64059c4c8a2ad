import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The constraint kinds of a change (NOT NULL, foreign key, CHECK, UNIQUE, index), each on a
/// column the change adds beside its old one: two application versions write at once, every
/// row ends consistent on both sides, the NOT VALID constraint refuses a bad write from start
/// on, and the worker's statements (`validate`, `uniques`, `indexes`) then succeed on the data.
@Suite("Change constraints")
struct ChangeConstraintTests {
    /// Starts `body` as change `name`, runs both versions, the backfill, and the worker's
    /// index builds and validations; expects no disagreeing row.
    static func run(
        _ name: String, _ body: String, old: AppVersion, new: AppVersion, on database: TestDatabase,
        conn: Connection
    ) async throws -> ChangeStatements {
        _ = try await ChangeTests.start(name, body, on: conn)
        try await writeConcurrently(database, old: old, new: new)
        try await ChangeTests.backfill(name, on: conn)
        #expect(try await ChangeTests.disagreeing(name, on: conn) == 0)
        let statements = try await ChangeTests.statements(name, on: conn)
        for index in statements.indexes { try await conn.execute(index.create) }
        for unique in statements.uniques {
            try await conn.execute(unique.create)
            try await conn.execute(unique.attach)
        }
        for validate in statements.validate { try await conn.execute(validate) }
        return statements
    }

    static let renameVersions = (
        old: AppVersion(columns: ["title", "views"]) { column, n in column == "title" ? "old \(n)" : "\(n)" },
        new: AppVersion(columns: ["caption", "views"]) { column, n in column == "caption" ? "new \(n)" : "\(n)" }
    )

    @Test func notNullOnTheNewColumnHoldsFromStartAndValidates() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await Self.run(
                "caption_not_null",
                "-- table: media\n-- add-column: caption text = title\n-- drop-column: title = caption\n-- not-null: caption\n",
                old: Self.renameVersions.old, new: Self.renameVersions.new, on: database, conn: conn)
            for statement in [
                "INSERT INTO media (title) VALUES (NULL)", "INSERT INTO media (caption) VALUES (NULL)",
                "UPDATE media SET caption = NULL WHERE id = 1",
            ] {
                let error = await ChangeTests.serverError { try await conn.query(statement) }
                #expect(error?.sqlState == SQLState("23514"), "\(statement)")
                let check = ChangeNames(change: "caption_not_null", table: "media").notNullCheck("caption")
                #expect(error?.message.contains(check) == true, "\(String(describing: error))")
            }
            let validated = try await conn.query(
                "SELECT bool_and(convalidated) AS v FROM pg_constraint WHERE conrelid = 'media'::regclass AND contype = 'c'"
            ).first!.bool("v")
            #expect(validated)
            await conn.close()
        }
    }

    @Test func aForeignKeyOnTheNewColumnRefusesAMissingOwnerAndValidates() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let owner: @Sendable (String, Int) -> String = { _, n in "\(1 + n % 10)" }
            _ = try await Self.run(
                "owner_ref",
                """
                -- table: media
                -- add-column: owner_ref bigint = owner_id
                -- drop-column: owner_id = owner_ref
                -- foreign-key: owner_ref REFERENCES owners (id)
                """,
                old: AppVersion(columns: ["owner_id"], value: owner),
                new: AppVersion(columns: ["owner_ref"], value: owner), on: database, conn: conn)
            #expect(
                try await conn.query("SELECT count(*) AS n FROM media WHERE owner_ref IS DISTINCT FROM owner_id")
                    .first!.int("n") == 0)
            for statement in [
                "INSERT INTO media (owner_id) VALUES (99)", "UPDATE media SET owner_ref = 99 WHERE id = 1",
            ] {
                let error = await ChangeTests.serverError { try await conn.query(statement) }
                #expect(error?.sqlState == SQLState("23503"), "\(statement)")
                #expect(error?.message.contains("media_owner_ref_fkey") == true)
            }
            let validated = try await conn.query(
                "SELECT convalidated AS v FROM pg_constraint WHERE conname = 'media_owner_ref_fkey'"
            ).first!.bool("v")
            #expect(validated)
            await conn.close()
        }
    }

    @Test func aCheckOnTheNewColumnRefusesABadWriteFromEitherVersion() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await Self.run(
                "size_kb_check",
                """
                -- table: media
                -- add-column: size_kb bigint = size_bytes / 1024
                -- drop-column: size_bytes = size_kb * 1024
                -- check: media_size_kb_nonneg size_kb >= 0
                """,
                old: AppVersion(columns: ["size_bytes"]) { _, n in "\(n * 1000)" },
                new: AppVersion(columns: ["size_kb"]) { _, n in "\(n)" }, on: database, conn: conn)
            // The old version's negative bytes become negative kilobytes: refused too.
            for statement in [
                "INSERT INTO media (size_kb) VALUES (-1)", "UPDATE media SET size_bytes = -4096 WHERE id = 1",
            ] {
                let error = await ChangeTests.serverError { try await conn.query(statement) }
                #expect(error?.sqlState == SQLState("23514"), "\(statement)")
                #expect(error?.message.contains("media_size_kb_nonneg") == true)
            }
            await conn.close()
        }
    }

    @Test func aUniqueOnTheNewColumnIsBuiltAttachedAndEnforced() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let statements = try await Self.run(
                "handle",
                "-- table: media\n-- add-column: handle text = slug\n-- drop-column: slug = handle\n-- unique: handle\n",
                old: AppVersion(columns: ["slug", "views"]) { column, n in column == "slug" ? "old-\(n)" : "\(n)" },
                new: AppVersion(columns: ["handle", "views"]) { column, n in column == "handle" ? "new-\(n)" : "\(n)" },
                on: database, conn: conn)
            #expect(statements.uniques.map(\.name) == ["media_handle_key"])
            let kind = try await conn.query(
                "SELECT contype::text AS t FROM pg_constraint WHERE conname = 'media_handle_key'"
            ).first?.string("t")
            #expect(kind == "u")
            let taken = try await conn.query("SELECT handle FROM media WHERE id = 1").first!.string("handle")
            // The old version writing a slug another row holds is refused by the new column's key.
            let error = await ChangeTests.serverError {
                try await conn.query("UPDATE media SET slug = $1 WHERE id = 2", [taken])
            }
            #expect(error?.sqlState == SQLState("23505"))
            #expect(error?.message.contains("media_handle_key") == true)
            await conn.close()
        }
    }

    @Test func anIndexOnTheNewColumnIsBuiltValid() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let statements = try await Self.run(
                "caption_index",
                "-- table: media\n-- add-column: caption text = title\n-- drop-column: title = caption\n-- index: caption\n",
                old: Self.renameVersions.old, new: Self.renameVersions.new, on: database, conn: conn)
            #expect(statements.indexes.map(\.name) == ["media_caption_idx"])
            let valid = try await conn.query(
                "SELECT indisvalid AS v FROM pg_index WHERE indexrelid = 'media_caption_idx'::regclass"
            ).first!.bool("v")
            #expect(valid)
            await conn.close()
        }
    }
}
