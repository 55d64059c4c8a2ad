import GodwitChanges
import GodwitMigrations
import Testing

/// `migrate lint --write-changes`' files: each of the four findings a `godwit change` replaces
/// becomes a change file that reads back with `ChangeDefinition.parse` to the change meant.
@Suite("migrate lint's change files")
struct LintChangeFileTests {
    /// The statement's findings by the static rules (no database).
    func findings(_ sql: String) async throws -> [LintFinding] {
        let migration = Migration(
            version: 9, description: "x", kind: .simple, contents: Array(sql.utf8), path: "m/9_x.sql")
        return try await MigrationLinter(source: MigrationSource(migrations: [], directory: "m")).lintStatically([
            migration
        ]).findings
    }

    /// The one finding of `rule` in `sql`, its change file (with `columnType` for a rename),
    /// and that file read back.
    func changeFile(_ sql: String, rule: LintRule, columnType: String? = nil) async throws
        -> (text: String, definition: ChangeDefinition)
    {
        let found = try await findings(sql).filter { $0.rule == rule.id }
        let finding = try #require(found.first, "no \(rule.id) in \(sql)")
        #expect(found.count == 1)
        let name = try #require(LintChangeFile.name(for: finding))
        let text = try #require(LintChangeFile.text(for: finding, name: name, columnType: columnType))
        return (text, try ChangeDefinition.parse(text, file: "changes/\(name).sql"))
    }

    @Test func aRenameAddsTheNewNameFromTheOldAndDropsTheOldFromTheNew() async throws {
        let (text, change) = try await changeFile(
            "ALTER TABLE media RENAME COLUMN title TO caption;", rule: .renameColumn,
            columnType: "character varying(200)")
        #expect(change.name == "rename_media_title")
        #expect(change.table == "media")
        #expect(
            change.addedColumns.map { [$0.name, $0.type, $0.expression] } == [
                ["caption", "character varying(200)", "title"]
            ])
        #expect(change.droppedColumns.map { [$0.name, $0.expression] } == [["title", "caption"]])
        #expect(text.contains("m/9_x.sql line 1"), "the file names the statement it replaces: \(text)")
        #expect(text.contains("check it"))
    }

    @Test func aRenameWithoutACatalogSaysWhatToReplace() async throws {
        let (text, change) = try await changeFile(
            "ALTER TABLE public.\"Media\" RENAME \"Title\" TO \"Caption\";", rule: .renameColumn)
        #expect(change.table == "public.\"Media\"")
        #expect(
            change.addedColumns.map { [$0.name, $0.type, $0.expression] } == [
                ["Caption", "TYPE_OF_Title", "\"Title\""]
            ])
        #expect(change.droppedColumns.map { [$0.name, $0.expression] } == [["Title", "\"Caption\""]])
        #expect(text.contains("Replace TYPE_OF_Title with the type of Title"))
    }

    @Test func aTypeChangeAddsANewColumnOfTheNewType() async throws {
        var (_, change) = try await changeFile(
            "ALTER TABLE media ALTER COLUMN size_bytes TYPE bigint USING size_bytes / 1024;", rule: .columnTypeRewrite)
        #expect(change.name == "retype_media_size_bytes")
        #expect(
            change.addedColumns.map { [$0.name, $0.type, $0.expression] } == [
                ["size_bytes_new", "bigint", "size_bytes / 1024"]
            ])
        #expect(change.droppedColumns.map { [$0.name, $0.expression] } == [["size_bytes", "size_bytes_new"]])

        (_, change) = try await changeFile(
            "ALTER TABLE media ALTER n SET DATA TYPE numeric(10, 2);", rule: .columnTypeRewrite)
        #expect(change.addedColumns.map { [$0.type, $0.expression] } == [["numeric(10, 2)", "(n)::numeric(10, 2)"]])

        // An operator the lexer splits into characters is written back whole.
        (_, change) = try await changeFile(
            "ALTER TABLE media ALTER t TYPE int USING CASE WHEN t >= 'b' THEN 1 ELSE 0 END;", rule: .columnTypeRewrite)
        #expect(change.addedColumns.first?.expression == "CASE WHEN t >= 'b' THEN 1 ELSE 0 END")
    }

    @Test func aDropAndASetNotNullBecomeTheirDirectives() async throws {
        var (text, change) = try await changeFile("ALTER TABLE media DROP COLUMN legacy;", rule: .dropColumn)
        #expect(change.name == "drop_media_legacy")
        #expect(change.droppedColumns.map(\.name) == ["legacy"] && change.droppedColumns.first?.expression == nil)
        #expect(change.addedColumns.isEmpty)
        #expect(text.contains("no longer reads or writes legacy"))

        (text, change) = try await changeFile("ALTER TABLE media ALTER caption SET NOT NULL;", rule: .setNotNull)
        #expect(change.name == "not_null_media_caption")
        #expect(change.notNull.map(\.names) == [["caption"]])
        #expect(text.contains("fill them first"))
    }

    @Test func onlyTheFourRulesWriteAChangeFile() async throws {
        for finding in try await findings(
            "UPDATE media SET a = 1;\nCREATE INDEX i ON media (a);\nALTER TABLE media RENAME TO pictures;")
        {
            #expect(finding.columnChange == nil, "\(finding.rule)")
            #expect(LintChangeFile.text(for: finding, name: "x") == nil)
        }
    }

    @Test(arguments: [LintRule.renameColumn, .columnTypeRewrite, .dropColumn, .setNotNull])
    func theFourRecipesNameGodwitChange(rule: LintRule) {
        #expect(rule.recipe.contains("godwit change"), "\(rule.id): \(rule.recipe)")
        #expect(rule.recipe.contains("--write-changes DIR"), "\(rule.id): \(rule.recipe)")
    }
}
