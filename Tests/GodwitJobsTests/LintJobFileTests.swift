import GodwitBatched
import GodwitMigrations
import Testing

/// The job file `migrate lint --write-jobs` writes for a whole-table UPDATE is one that
/// `godwit job enqueue` reads.
@Suite("migrate lint --write-jobs files")
struct LintJobFileTests {
    @Test(arguments: [("id", "id"), (nil, "id"), ("MediaKey", "\"MediaKey\"")] as [(String?, String)])
    func theWrittenFileParsesAsABatchedJob(key: String?, column: String) throws {
        var finding = LintFinding(
            rule: .wholeTableUpdate, file: "migrations/20240101_fill.sql", line: 7,
            statement: "UPDATE media SET title = coalesce(title, filename)", table: "media", lock: .rowExclusive,
            message: "UPDATE without WHERE")
        finding.sql = "UPDATE media\nSET title = coalesce(title, filename)"
        finding.batchKey = key
        let text = try #require(BatchedJobFile.text(for: finding))
        #expect(BatchedJobFile.fileName(for: finding) == "lint_20240101_fill_line7.sql")
        let definition = try BatchedJobDefinition.parse(text, file: "jobs/lint_20240101_fill_line7.sql")
        #expect(definition.table == "media")
        #expect(definition.key == key ?? BatchedJobFile.assumedKey)
        #expect(definition.name == "20240101_fill line 7 in batches")
        #expect(
            definition.statement
                == "UPDATE media\nSET title = coalesce(title, filename)\nWHERE \(column) BETWEEN $1 AND $2")
        #expect(text.contains("is assumed") == (key == nil))
    }

    @Test func onlyWholeTableUpdatesGetAJobFile() {
        let finding = LintFinding(
            rule: .dropColumn, file: "m/1_x.sql", line: 1, statement: "ALTER TABLE t DROP c", message: "x")
        #expect(BatchedJobFile.text(for: finding) == nil)
    }
}
