import Testing

@testable import GodwitMigrations

@Suite("Concurrent index builds, recognised by their first words")
struct ConcurrentIndexBuildTests {
    @Test func readsTheIndexAndTable() {
        #expect(
            ConcurrentIndexBuild("CREATE INDEX CONCURRENTLY media_title ON media (title)")?.target
                == .create(index: "media_title", table: ["media"]))
        #expect(
            ConcurrentIndexBuild(
                "-- why\ncreate unique index concurrently if not exists \"Odd\"\"Name\" on only app.\"Media\" using btree (x)"
            )?.target == .create(index: "Odd\"Name", table: ["app", "Media"]))
        #expect(
            ConcurrentIndexBuild("CREATE INDEX CONCURRENTLY ON media (title)")?.target
                == .create(index: nil, table: ["media"]))
        #expect(
            ConcurrentIndexBuild("REINDEX (VERBOSE) INDEX CONCURRENTLY public.media_title")?.target
                == .reindexIndex(["public", "media_title"]))
        #expect(ConcurrentIndexBuild("REINDEX TABLE CONCURRENTLY media")?.target == .reindexTable(["media"]))
        #expect(ConcurrentIndexBuild("CREATE INDEX media_title ON media (title)") == nil)
        #expect(ConcurrentIndexBuild("/* CREATE INDEX CONCURRENTLY x ON y */ SELECT 1") == nil)
        #expect(ConcurrentIndexBuild("DROP INDEX CONCURRENTLY media_title") == nil)
    }
}
