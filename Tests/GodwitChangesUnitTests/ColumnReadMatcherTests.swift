import GodwitChanges
import Testing

/// Which statements, as `pg_stat_statements` shows their text, read a column a change drops:
/// tokens, not substrings; the table named too; Godwit's own statements never.
@Suite("Reading a dropped column")
struct ColumnReadMatcherTests {
    static let matcher = ColumnReadMatcher(
        qualifiedTable: #""public"."media""#, columns: ["title", "Legacy"],
        disagrees: #"NOT ("caption" IS NOT DISTINCT FROM (title || '!') OR "title" IS NOT DISTINCT FROM (caption))"#)

    @Test(arguments: [
        ("SELECT title FROM media WHERE id = $1", ["title"]),
        (#"SELECT "title" FROM "public"."media""#, ["title"]),
        ("select TITLE from public.media", ["title"]),
        ("UPDATE media SET title = $1 WHERE id = $2", ["title"]),
        ("INSERT INTO media (id, title) VALUES ($1, $2)", ["title"]),
        ("SELECT m.title FROM media m JOIN books b ON b.id = m.id", ["title"]),
        (#"SELECT "Legacy", title FROM media"#, ["title", "Legacy"]),
        ("WITH x AS (SELECT title FROM media) SELECT * FROM x", ["title"]),
        ("CREATE TABLE copy AS SELECT title FROM media", ["title"]),
        // An ORM's save of every column it knows, values as parameters.
        ("UPDATE media SET title = $1, caption = $2 WHERE id = $3", ["title"]),
    ])
    func reads(_ text: String, _ columns: [String]) {
        #expect(Self.matcher.columnsRead(by: text) == columns, "\(text)")
    }

    @Test(arguments: [
        // Another column, another table's same-named column, the name in a string, a comment,
        // a dollar-quoted body, as a function, quoted in another case, another schema's media.
        "SELECT caption FROM media",
        "SELECT title FROM books",
        "SELECT 'title' FROM media",
        "SELECT id FROM media -- title",
        "SELECT id FROM media /* title */",
        "SELECT $$title$$ FROM media",
        "SELECT title(id) FROM media",
        #"SELECT "TITLE", legacy FROM media"#,
        "SELECT title FROM archive.media",
        "SELECT * FROM media",
    ])
    func doesNotRead(_ text: String) {
        #expect(Self.matcher.columnsRead(by: text).isEmpty, "\(text)")
    }

    @Test(arguments: [
        // The backfill's no-op write (as start generates it, and as pg_stat_statements keeps it).
        #"UPDATE "public"."media" SET "title" = "title" WHERE "id" BETWEEN $1 AND $2"#,
        "UPDATE media SET title = title, legacy = legacy WHERE id BETWEEN $1 AND $2",
        // The verification, its constants normalised to parameters.
        #"SELECT count(*) FROM "public"."media" WHERE NOT ("caption" IS NOT DISTINCT FROM (title || $1) OR "title" IS NOT DISTINCT FROM (caption)) AND id > $2"#,
        #"SELECT id FROM "public"."media" WHERE NOT ("caption" IS NOT DISTINCT FROM (title || '!') OR "title" IS NOT DISTINCT FROM (caption))"#,
        // The sync trigger's row evaluation.
        #"SELECT ("title")::text FROM (SELECT NEW.*) AS "media""#,
        // DDL: start, the worker's steps, complete.
        #"ALTER TABLE "public"."media" DROP COLUMN "title""#,
        "ALTER TABLE media ALTER COLUMN title SET STATISTICS 100",
        "CREATE INDEX CONCURRENTLY media_title_idx ON media (title)",
        "ANALYZE media (title)",
        "COMMENT ON COLUMN media.title IS 'old'",
    ])
    func godwitsOwnStatementsDoNotCount(_ text: String) {
        #expect(Self.matcher.columnsRead(by: text).isEmpty, "\(text)")
    }

    @Test func anUpdateThatAssignsAValueIsNotTheBackfill() {
        #expect(Self.matcher.columnsRead(by: "UPDATE media SET title = title || 'x' WHERE id = $1") == ["title"])
        #expect(
            Self.matcher.columnsRead(by: #"UPDATE media SET title = "Legacy" WHERE id = $1"#) == ["title", "Legacy"])
    }

    @Test func aPlainDisagreesDoesNotHideStatements() {
        // "false" (nothing syncs) would match every constant: it hides nothing.
        let matcher = ColumnReadMatcher(qualifiedTable: "public.media", columns: ["title"], disagrees: "false")
        #expect(matcher.columnsRead(by: "SELECT title FROM media WHERE $1") == ["title"])
    }

    /// The backfill's statement as start stored it, and as `pg_stat_statements` keeps it (its
    /// constants as parameters): Godwit's own. The same shape with another table, or an
    /// application's statement that merely resembles it, still reads.
    @Test func theStoredBackfillIsGodwitsOwn() {
        let backfill =
            #"UPDATE "public"."media" AS "media" SET "caption" = COALESCE("caption", (title)::text) WHERE "id" BETWEEN $1 AND $2 AND (("caption" IS NULL AND (title)::text IS NOT NULL)) AND (SELECT pg_catalog.set_config('godwit.change', 'rename_title', true)) IS NOT NULL"#
        let matcher = ColumnReadMatcher(
            qualifiedTable: #""public"."media""#, columns: ["title"],
            disagrees: #"NOT ("caption" IS NOT DISTINCT FROM ((title)::text))"#, backfill: backfill)
        #expect(matcher.columnsRead(by: backfill).isEmpty)
        #expect(matcher.columnsRead(by: backfill + ";").isEmpty)
        let normalised =
            #"UPDATE "public"."media" AS "media" SET "caption" = COALESCE("caption", (title)::text) WHERE "id" BETWEEN $1 AND $2 AND (("caption" IS NULL AND (title)::text IS NOT NULL)) AND (SELECT pg_catalog.set_config($3, $4, $5)) IS NOT NULL"#
        #expect(matcher.columnsRead(by: normalised).isEmpty)
        #expect(
            matcher.columnsRead(
                by:
                    #"UPDATE "public"."media" AS "media" SET "caption" = COALESCE("caption", (title)::text) WHERE "id" = $1"#
            ) == ["title"])
        // Without the stored statement, the same text reads the column.
        #expect(Self.matcher.columnsRead(by: backfill) == ["title"])
    }
}
