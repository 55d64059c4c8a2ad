import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `migrate run` warns about its pending migrations with lint's catalog check, which reads
/// the target's catalog and runs nothing. Taken as a whole, the pending set must be judged as
/// lint's trace judges it: what an earlier pending statement does (validate a check, add a
/// column) counts for the statements after it.
@Suite("migrate run's catalog check agrees with lint's trace")
struct CatalogCheckTests {
    /// Applied first: `width` and `height` each have a NOT VALID `CHECK (col IS NOT NULL)`.
    static let base = """
        CREATE TABLE media (id bigint PRIMARY KEY, width int, height int, depth int, legacy text);
        ALTER TABLE media ADD CONSTRAINT media_width_nn CHECK (width IS NOT NULL) NOT VALID;
        ALTER TABLE media ADD CONSTRAINT media_height_nn CHECK (height IS NOT NULL) NOT VALID;
        """

    /// Pending, with the findings (`file rule`) both checks must raise.
    static let pending: [(file: String, sql: String)] = [
        // VALIDATE, then SET NOT NULL in a later migration: the safe pattern.
        ("2_validate_width.sql", "ALTER TABLE media VALIDATE CONSTRAINT media_width_nn;"),
        ("3_width_not_null.sql", "ALTER TABLE media ALTER COLUMN width SET NOT NULL;"),
        // The same in one migration.
        (
            "4_height.sql",
            "ALTER TABLE media VALIDATE CONSTRAINT media_height_nn;\nALTER TABLE media ALTER COLUMN height SET NOT NULL;"
        ),
        // A check added NOT VALID and never validated proves nothing: PostgreSQL scans.
        ("5_depth_check.sql", "ALTER TABLE media ADD CONSTRAINT media_depth_nn CHECK (depth IS NOT NULL) NOT VALID;"),
        ("6_depth_not_null.sql", "ALTER TABLE media ALTER COLUMN depth SET NOT NULL;"),
        // A column only this run adds, dropped again: no running application knows it.
        ("7_add_scratch.sql", "ALTER TABLE media ADD COLUMN scratch text;"),
        ("8_drop_scratch.sql", "ALTER TABLE media DROP COLUMN scratch;"),
        // A column the target has: breaks the running application.
        ("9_drop_legacy.sql", "ALTER TABLE media DROP COLUMN legacy;"),
    ]

    static let expected: Set<String> = ["6_depth_not_null.sql set-not-null", "9_drop_legacy.sql drop-column"]

    static func names(_ findings: [LintFinding]) -> Set<String> {
        Set(findings.map { "\(($0.file as NSString).lastPathComponent) \($0.rule)" })
    }

    @Test func theCatalogCheckAndTheTraceFindTheSame() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_base.sql", Self.base)
        for file in Self.pending { try dir.write(file.file, file.sql + "\n") }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let migrator = try Migrator(directory: dir.path)
            try await migrator.run(on: conn, targetVersion: 1)
            let pending = try await migrator.pendingMigrations(on: conn)
            #expect(pending.count == Self.pending.count)
            let linter = MigrationLinter(source: migrator.source)
            let catalog = try await linter.lint(pending, on: conn)
            let trace = try await linter.lint(pending, databaseURL: db.url)
            #expect(Self.names(trace.findings) == Self.expected)
            #expect(Self.names(catalog.findings) == Self.expected)
            await conn.close()
        }
    }

    /// What `migrate run` prints: one `warning:` line per finding of the catalog check, on
    /// stderr, and none for the safe patterns.
    @Test func runWarnsOnlyAboutWhatTheTraceFinds() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_base.sql", Self.base)
        try await withTestDatabase { db in
            let base = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(base.status == 0, "\(base.stderr)")
            for file in Self.pending { try dir.write(file.file, file.sql + "\n") }
            let run = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stderr.split(separator: "\n").map(String.init)
            #expect(lines.allSatisfy { $0.hasPrefix("warning: ") }, "\(run.stderr)")
            #expect(lines.count == Self.expected.count, "\(run.stderr)")
            #expect(
                lines.contains { $0.hasPrefix("warning: \(dir.path)/6_depth_not_null.sql:1: set-not-null: ") },
                "\(run.stderr)")
            #expect(
                lines.contains { $0.hasPrefix("warning: \(dir.path)/9_drop_legacy.sql:1: drop-column: ") },
                "\(run.stderr)")
            #expect(run.stdout.split(separator: "\n").count == Self.pending.count)
        }
    }
}
