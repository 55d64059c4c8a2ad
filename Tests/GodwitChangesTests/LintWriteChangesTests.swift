import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `godwit migrate lint --write-changes DIR`, run in-process against a database: a change file
/// for each rename, drop, rewriting type change and scanning SET NOT NULL, the rename's type
/// read from the target's catalog, every file read back as `godwit change` reads it.
@Suite("migrate lint --write-changes")
struct LintWriteChangesTests {
    static let migration = """
        ALTER TABLE media RENAME COLUMN title TO headline;
        ALTER TABLE media DROP COLUMN legacy;
        ALTER TABLE media ALTER COLUMN size_bytes TYPE numeric(20, 0);
        ALTER TABLE media ALTER COLUMN caption SET NOT NULL;
        """

    /// A folder with the migration file, removed afterwards.
    func withFolder<T>(_ body: (String) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "godwit-write-changes-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.migration.write(toFile: folder + "/2_change_media.sql", atomically: true, encoding: .utf8)
        return try await body(folder)
    }

    @Test func writesAChangeFileForEachFindingWithTheRenamedColumnsTypeFromTheCatalog() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await conn.execute(
                """
                CREATE TABLE media (id bigint PRIMARY KEY, title varchar(200), legacy text, size_bytes bigint,
                    caption text);
                INSERT INTO media SELECT g, 't' || g, 'l', g, 'c' FROM generate_series(1, 100) g;
                """)
            await conn.close()
            try await withFolder { folder in
                let run = try await GodwitCommand.run(
                    ["migrate", "lint", "-D", database.url, "--write-changes", "changes", "2_change_media.sql"],
                    directory: folder)
                #expect(run.status == 1, "findings make lint exit 1: \(run.stderr)")
                for name in [
                    "rename_media_title", "drop_media_legacy", "retype_media_size_bytes", "not_null_media_caption",
                ] {
                    #expect(run.stdout.contains("wrote changes/\(name).sql\n"), "\(name): \(run.stdout)")
                }
                let rename = try String(contentsOfFile: folder + "/changes/rename_media_title.sql", encoding: .utf8)
                let change = try ChangeDefinition.parse(rename, file: "changes/rename_media_title.sql")
                #expect(change.table == "media")
                #expect(
                    change.addedColumns.map { [$0.name, $0.type, $0.expression] } == [
                        ["headline", "character varying(200)", "title"]
                    ])
                #expect(change.droppedColumns.map { [$0.name, $0.expression] } == [["title", "headline"]])
                let retype = try ChangeDefinition.parse(
                    try String(contentsOfFile: folder + "/changes/retype_media_size_bytes.sql", encoding: .utf8),
                    file: "retype.sql")
                #expect(retype.addedColumns.first?.type == "numeric(20, 0)")
                let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/changes").sorted()
                #expect(files.count == 4, "\(files)")
            }
        }
    }

    @Test func withoutADatabaseTheRenamesTypeIsLeftToFillIn() async throws {
        try await withFolder { folder in
            let run = try await GodwitCommand.run(
                ["migrate", "lint", "--write-changes", "changes", "2_change_media.sql"], directory: folder)
            #expect(run.status == 1)
            #expect(
                run.stdout.contains(
                    "wrote changes/rename_media_title.sql (replace TYPE_OF_title with the column's type)\n"),
                "\(run.stdout)")
            let text = try String(contentsOfFile: folder + "/changes/rename_media_title.sql", encoding: .utf8)
            #expect(text.contains("-- add-column: headline TYPE_OF_title = title\n"))
            #expect(text.contains("Replace TYPE_OF_title with the type of title"))
        }
    }
}
