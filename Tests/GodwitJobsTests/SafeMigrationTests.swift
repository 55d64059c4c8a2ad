import Foundation
import GodwitBackups
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `SafeMigration`, the "migrate safely" policy of `migrate run` as a library: the lint gate,
/// backup then run, enqueue, dry run. The command's output is `RunLintWarningTests`' and
/// `MigrateEnqueueOutputTests`'.
@Suite("Migrating safely")
struct SafeMigrationTests {
    /// A folder of migrations, a database, and what a test needs of both.
    struct Setup {
        let dir: TemporaryDirectory
        let db: TestDatabase
        let conn: Connection

        var migrations: String { "\(dir.path)/migrations" }
        var backups: String { "\(dir.path)/backups" }

        func migration(_ options: SafeMigration.Options) throws -> SafeMigration {
            SafeMigration(migrator: try Migrator(directory: migrations), databaseURL: db.url, options: options)
        }

        func exists(_ relation: String) async throws -> Bool {
            try await conn.query("SELECT to_regclass($1) IS NOT NULL AS present", [relation]).first?.bool("present")
                ?? false
        }

        func backupFiles() -> [String] {
            (try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []
        }
    }

    func withSetup(_ files: [String: String], _ body: (Setup) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for (name, contents) in files { try dir.write("migrations/\(name)", contents) }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            do {
                try await body(Setup(dir: dir, db: db, conn: conn))
            } catch {
                await conn.close()
                throw error
            }
            await conn.close()
        }
    }

    /// A non-concurrent index on a table that exists before the run: lint flags it.
    static let flagged = ["2_index.sql": "CREATE INDEX media_title ON media (title);"]

    @Test func strictRefusesOnTheTracesFindingsAndNothingIsAppliedOrBackedUp() async throws {
        try await withSetup(Self.flagged) { s in
            try await s.conn.execute("CREATE TABLE media (id int PRIMARY KEY, title text)")
            let migration = try s.migration(
                SafeMigration.Options(strict: true, backups: BackupManager(directory: s.backups)))
            var events: [SafeMigration.Event] = []
            var error: SafeMigrationError?
            do {
                try await migration.run(on: s.conn) { events.append($0) }
                Issue.record("strict ran a flagged migration")
            } catch let refusal as SafeMigrationError {
                error = refusal
            }
            #expect(error?.code == .lintRefused)
            #expect(error?.findings.map(\.rule) == ["non-concurrent-index"])
            #expect(error?.findings.first?.file.hasSuffix("2_index.sql") == true)
            #expect(
                error?.description
                    == "--strict: migrate lint flags 1 of the pending statements, so nothing was applied: make them safe, or accept one with -- godwit:allow RULE reason on the line before it"
            )
            #expect(events.isEmpty)
            #expect(try await !s.exists("media_title"))
            #expect(try await !s.exists("_sqlx_migrations"))
            #expect(try await !s.exists("godwit.backups"))
            #expect(s.backupFiles().isEmpty)
            // Enqueueing is refused alike: no queue, no job.
            await #expect(throws: SafeMigrationError.self) { try await migration.enqueue(on: s.conn) }
            #expect(try await !s.exists("godwit.jobs"))
        }
    }

    @Test func withoutStrictTheCatalogChecksFindingsAreWarningsAndTheRunGoesOn() async throws {
        try await withSetup(Self.flagged) { s in
            try await s.conn.execute("CREATE TABLE media (id int PRIMARY KEY, title text)")
            var warnings: [LintFinding] = []
            var applied: [Int64] = []
            let events = try await s.migration(SafeMigration.Options()).run(on: s.conn) { event in
                switch event {
                case .lintWarning(let finding): warnings.append(finding)
                case .migration(let event) where event.action == .applied: applied.append(event.version)
                default: Issue.record("unexpected event \(event)")
                }
            }
            #expect(warnings.map(\.rule) == ["non-concurrent-index"])
            #expect(warnings.first?.file.hasSuffix("2_index.sql") == true)
            #expect(warnings.first?.line == 1)
            #expect(applied == [2])
            #expect(events.map(\.version) == [2])
            #expect(try await s.exists("media_title"))
        }
    }

    @Test func theBackupIsTakenFirstAndRecordedWithTheVersionsItPrecedes() async throws {
        let files = [
            "1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": "CREATE TABLE b (id int);",
            "3_c.sql": "CREATE TABLE c (id int);",
        ]
        try await withSetup(files) { s in
            var order: [String] = []
            var made: Backup?
            let options = SafeMigration.Options(targetVersion: 2, backups: BackupManager(directory: s.backups))
            try await s.migration(options).run(on: s.conn) { event in
                switch event {
                case .backup(let backup):
                    made = backup
                    order.append("backup")
                case .migration(let event): order.append("\(event.action.rawValue) \(event.version)")
                default: Issue.record("unexpected event \(event)")
                }
            }
            #expect(order == ["backup", "Applied 1", "Applied 2", "Skipped 3"])
            let backup = try #require(made)
            #expect(FileManager.default.fileExists(atPath: backup.file))
            #expect(s.backupFiles().count == 1)
            let recorded = try await s.conn.query("SELECT file, reason FROM godwit.backups").rows.map {
                (try $0.string("file"), try $0.string("reason"))
            }
            #expect(recorded.count == 1)
            #expect(recorded.first?.0 == backup.file)
            #expect(recorded.first?.1 == "before migrations 1 (a) to 2 (b)")
            // Migration 3 is past the target: neither run nor named in the backup's reason.
            #expect(try await s.exists("b"))
            #expect(try await !s.exists("c"))
        }
    }

    @Test func enqueueWritesAMigrateJobWhosePayloadCarriesTheFiles() async throws {
        try await withSetup(["1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": "CREATE TABLE b (id int);"]) { s in
            let options = SafeMigration.Options(
                targetVersion: 1, ignoreMissing: true, backups: BackupManager(directory: s.backups))
            let enqueued = try await s.migration(options).enqueue(on: s.conn)
            #expect(enqueued.fileCount == 2)
            let job = try #require(
                try await s.conn.query("SELECT id, kind, name, max_attempts, payload::text AS p FROM godwit.jobs").first
            )
            #expect(try job.int64("id") == enqueued.id)
            #expect(try job.string("kind") == "migrate")
            #expect(try job.string("name") == "migrate \(s.migrations)")
            #expect(try job.int64("max_attempts") == 3)
            let payload = try JSONDecoder().decode(MigratePayload.self, from: Data(try job.string("p").utf8))
            #expect(payload.files.map(\.name) == ["1_a.sql", "2_b.sql"])
            #expect(
                payload.files.map { Data(base64Encoded: $0.contents).map { String(decoding: $0, as: UTF8.self) } } == [
                    "CREATE TABLE a (id int);", "CREATE TABLE b (id int);",
                ])
            #expect(payload.targetVersion == 1)
            #expect(payload.ignoreMissing)
            #expect(payload.backup)
            // Nothing ran here, and no backup was taken here: the worker does both.
            #expect(try await !s.exists("_sqlx_migrations"))
            #expect(try await !s.exists("a"))
            #expect(s.backupFiles().isEmpty)
        }
    }

    @Test func aDryRunChangesNothingEvenWithABackupAsked() async throws {
        try await withSetup(["1_a.sql": "CREATE TABLE a (id int);"]) { s in
            var actions: [MigrationEvent.Action] = []
            let options = SafeMigration.Options(dryRun: true, backups: BackupManager(directory: s.backups))
            try await s.migration(options).run(on: s.conn) { event in
                guard case .migration(let event) = event else {
                    Issue.record("unexpected event \(event)")
                    return
                }
                actions.append(event.action)
                #expect(event.plan != nil)
            }
            #expect(actions == [.canApply])
            #expect(try await !s.exists("a"))
            #expect(try await !s.exists("_sqlx_migrations"))
            #expect(
                try await s.conn.query("SELECT to_regnamespace('godwit') IS NULL AS absent").first?.bool("absent")
                    == true)
            #expect(s.backupFiles().isEmpty)
        }
    }
}
