import Foundation
import GodwitJobs
import GodwitMigrations
import GodwitTestSupport
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

    /// End to end: lint finds the UPDATE, writes the file, and `godwit job enqueue` takes it.
    @Test func lintWritesAJobThatEnqueues() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let migration = try dir.write("migrations/2_fill.sql", "UPDATE items SET label = upper(label);\n")
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE items (item_no bigint PRIMARY KEY, label text)")
            await conn.close()
            let lint = try await GodwitCommand.run(
                ["migrate", "lint", "-D", db.url, "--write-jobs", dir.path + "/jobs", migration])
            #expect(lint.status == 1, "\(lint.stderr)")
            let path = dir.path + "/jobs/lint_2_fill_line1.sql"
            #expect(lint.stdout.contains("wrote \(path)\n"), "\(lint.stdout)")
            let definition = try BatchedJobDefinition.parse(
                try String(contentsOfFile: path, encoding: .utf8), file: path)
            #expect(definition.key == "item_no")
            #expect(definition.statement == "UPDATE items SET label = upper(label)\nWHERE item_no BETWEEN $1 AND $2")
            let enqueue = try await GodwitCommand.run(["job", "enqueue", path, "-D", db.url])
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
        }
    }

    /// An UPDATE with RETURNING, or run by a WITH query, gets its batch's WHERE where PostgreSQL
    /// takes it: before RETURNING, inside the query.
    @Test(arguments: [
        (
            "UPDATE items SET label = upper(label) RETURNING item_no;\n",
            "UPDATE items SET label = upper(label) WHERE item_no BETWEEN $1 AND $2\nRETURNING item_no"
        ),
        (
            "WITH changed AS (UPDATE items SET label = upper(label) RETURNING item_no)\nINSERT INTO audit SELECT item_no FROM changed;\n",
            "WITH changed AS (UPDATE items SET label = upper(label) WHERE item_no BETWEEN $1 AND $2\nRETURNING item_no)\nINSERT INTO audit SELECT item_no FROM changed"
        ),
        (
            "WITH done (n) AS MATERIALIZED (SELECT 1)\nUPDATE items SET label = lower(label);\n",
            "WITH done (n) AS MATERIALIZED (SELECT 1)\nUPDATE items SET label = lower(label)\nWHERE item_no BETWEEN $1 AND $2"
        ),
    ])
    func anUpdateWithReturningOrInsideWithGetsAJobThatEnqueues(migrationSQL: String, statement: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let migration = try dir.write("migrations/3_fill.sql", migrationSQL)
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE items (item_no bigint PRIMARY KEY, label text)")
            try await conn.execute("CREATE TABLE audit (item_no bigint)")
            await conn.close()
            let lint = try await GodwitCommand.run(
                ["migrate", "lint", "-D", db.url, "--write-jobs", dir.path + "/jobs", migration])
            #expect(lint.status == 1, "\(lint.stderr)")
            #expect(lint.stdout.contains("whole-table-update"), "\(lint.stdout)")
            let path = dir.path + "/jobs/lint_3_fill_line1.sql"
            let definition = try BatchedJobDefinition.parse(
                try String(contentsOfFile: path, encoding: .utf8), file: path)
            #expect(definition.statement == statement)
            let enqueue = try await GodwitCommand.run(["job", "enqueue", path, "-D", db.url])
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
        }
    }
}
