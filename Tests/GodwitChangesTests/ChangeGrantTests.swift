import Foundation
import GodwitChanges
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `grant_change`: a team's migration role that owns the table but not schema godwit runs a
/// change from start to complete with no more than that grant; without it, start says which
/// grant is missing; and one granted role cannot move another's change. The schema's owner is
/// the test server's superuser, which installs the schema and runs the worker.
@Suite("Changes run by a role granted grant_change")
struct ChangeGrantTests {
    /// The rename these tests run: a dropped column, so complete's reader gate applies.
    static let rename = """
        -- table: media
        -- add-column: caption text = title
        -- drop-column: title = caption
        -- batch-size: 100
        """

    /// `media` owned by `migrator`, which may create in `public` (the sync trigger's function,
    /// the ledger), and the schema installed by the owner.
    static func prepare(_ admin: Connection, migrator: TestRole) async throws {
        try await ChangeTests.createMedia(on: admin, rows: 300)
        try await admin.execute(
            """
            ALTER TABLE media OWNER TO \(migrator.quoted);
            GRANT CREATE ON SCHEMA public TO \(migrator.quoted);
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
            """)
        try await QueueSchema.withChanges().install(on: admin)
    }

    static func phase(_ name: String, on conn: Connection) async throws -> String? {
        try await conn.query("SELECT phase FROM godwit.change_records WHERE name = $1", [name]).first?["phase"]
    }

    static func hasColumn(_ column: String, on conn: Connection) async throws -> Bool {
        try await conn.query(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = $1 AND NOT attisdropped",
            [column]
        ).rows.count == 1
    }

    @Test func aMigratorWithTheGrantStartsAndCompletesWhileTheOwnersWorkerRunsTheJobs() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-grant-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try await withRoles(["app_migrator"]) { roles in
            let migrator = roles[0]
            try await withTestDatabase { db in
                let admin = try await db.connect()
                defer { Task { await admin.close() } }
                try await Self.prepare(admin, migrator: migrator)
                try await admin.query("SELECT godwit.grant_change($1::regrole)", [migrator.name])
                let url = try migrator.url(db)

                try await ChangeTests.withChangeFile("rename_title", Self.rename) { file in
                    let planned = try await GodwitCommand.run(["change", "plan", file, "-D", url])
                    #expect(planned.status == 0, "\(planned.stderr)")
                    let started = try await GodwitCommand.run(["change", "start", file, "-D", url])
                    #expect(started.status == 0, "\(started.stderr)")
                }
                let record = try #require(
                    try await admin.query(
                        """
                        SELECT c.started_by, b.enqueued_by::text AS backfill_by, f.enqueued_by::text AS finish_by
                        FROM godwit.change_records c JOIN godwit.jobs b ON b.id = c.backfill_job_id
                        JOIN godwit.jobs f ON f.id = c.finish_job_id WHERE c.name = 'rename_title'
                        """
                    ).first)
                #expect(try record.string("started_by") == migrator.name)
                #expect(try record.string("backfill_by") == migrator.name)
                #expect(try record.string("finish_by") == migrator.name)

                // The owner's worker runs the backfill and the finish job, logging in as the
                // migrator for their SQL and writing the record itself.
                let worker = changeWorker(try TestPasswordFile.url(db.url))
                let ready = try await eventually(timeout: .seconds(180), every: .milliseconds(200)) {
                    try await Self.phase("rename_title", on: admin) == "ready"
                }
                #expect(ready, "\(worker.currentStderr.suffix(3000))")

                // complete, as the migrator, on the worker's samples (it may not sample itself):
                // once title has been quiet for 1 s.
                var last: GodwitProcess.Output?
                let completed = try await eventually(timeout: .seconds(120), every: .milliseconds(500)) {
                    let run = try await GodwitCommand.run(
                        [
                            "change", "complete", "rename_title", "--quiet-for", "1s", "--write-migration",
                            "migrations", "-D", url,
                        ], directory: root.path)
                    last = run
                    return run.status == 0
                }
                #expect(completed, "\(last?.stderr ?? "")\(worker.currentStderr.suffix(2000))")
                _ = await worker.stop()

                #expect(try await Self.phase("rename_title", on: admin) == "completed")
                #expect(try await !Self.hasColumn("title", on: admin))
                #expect(try await Self.hasColumn("caption", on: admin))
                let written = try FileManager.default.contentsOfDirectory(atPath: root.path + "/migrations")
                #expect(written.contains { $0.hasSuffix("_rename_title.sql") }, "\(written)")
                let recorded = try await admin.query(
                    "SELECT migration_version FROM godwit.change_records WHERE name = 'rename_title'"
                ).first?["migration_version"]
                #expect(recorded != nil)
                // The reader evidence it decided on was the worker's: it may not write any.
                let mayWrite = try await admin.query(
                    """
                    SELECT has_table_privilege($1, 'godwit.change_sampling', 'UPDATE')
                        OR has_table_privilege($1, 'godwit.change_readers', 'INSERT')
                        OR has_table_privilege($1, 'godwit.change_reader_statements', 'INSERT') AS may
                    """, [migrator.name]
                ).first?.bool("may")
                #expect(mayWrite == false)
            }
        }
    }

    @Test func withoutTheGrantStartFailsInOneLineNamingIt() async throws {
        try await withRoles(["app_migrator", "enqueuer_only"]) { roles in
            try await withTestDatabase { db in
                let admin = try await db.connect()
                defer { Task { await admin.close() } }
                try await Self.prepare(admin, migrator: roles[0])
                // The second owns the table too, with grant_enqueue but not grant_change.
                try await admin.execute("GRANT \(roles[0].quoted) TO \(roles[1].quoted)")
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [roles[1].name])
                for role in roles {
                    try await ChangeTests.withChangeFile("rename_title", Self.rename) { file in
                        let run = try await GodwitCommand.run(["change", "start", file, "-D", try role.url(db)])
                        #expect(run.status == 1)
                        #expect(run.stdout.isEmpty)
                        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
                        #expect(run.stderr.hasPrefix("error: \(file):"), "\(run.stderr)")
                        #expect(
                            run.stderr.contains(
                                "role \(role.name) may not start changes in schema \"godwit\": the schema's owner can allow it with SELECT \"godwit\".grant_change('\(role.name)')"
                            ), "\(run.stderr)")
                        #expect(!run.stderr.contains(role.password))
                    }
                    // Nothing was applied.
                    #expect(try await !Self.hasColumn("caption", on: admin))
                    #expect(try await Self.phase("rename_title", on: admin) == nil)
                    let jobs = try await admin.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n")
                    #expect(jobs == 0)
                }
            }
        }
    }

    @Test func anotherGrantedRoleCannotMoveTheChangeButAMemberOfTheStarterCan() async throws {
        try await withRoles(["app_migrator", "other_team", "migrator_member"]) { roles in
            let (migrator, other, member) = (roles[0], roles[1], roles[2])
            try await withTestDatabase { db in
                let admin = try await db.connect()
                defer { Task { await admin.close() } }
                try await Self.prepare(admin, migrator: migrator)
                try await admin.execute("GRANT \(migrator.quoted) TO \(member.quoted)")
                for role in roles {
                    try await admin.query("SELECT godwit.grant_change($1::regrole)", [role.name])
                }
                try await ChangeTests.withChangeFile("rename_title", Self.rename) { file in
                    let started = try await GodwitCommand.run(["change", "start", file, "-D", try migrator.url(db)])
                    #expect(started.status == 0, "\(started.stderr)")
                }

                // Through the CLI: refused, naming the starter, before anything runs.
                for command in [
                    ["complete", "rename_title", "--without-reader-check", "test"], ["abort", "rename_title"],
                ] {
                    let run = try await GodwitCommand.run(["change"] + command + ["-D", try other.url(db)])
                    #expect(run.status == 1)
                    #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
                    #expect(
                        run.stderr.contains(
                            "change rename_title was started by role \(migrator.name), and role \(other.name) is not a member of it: only \(migrator.name) or a member of it may \(command[0]) the change"
                        ), "\(run.stderr)")
                }
                #expect(try await Self.phase("rename_title", on: admin) == "backfilling")
                #expect(try await Self.hasColumn("caption", on: admin))

                // Through SQL: the row is not the other role's to update, nor its jobs to cancel.
                let otherConn = try await other.connect(db)
                defer { Task { await otherConn.close() } }
                let updated = try await otherConn.query(
                    "UPDATE godwit.change_records SET phase = 'aborted' WHERE name = 'rename_title'"
                ).affectedRows
                #expect(updated == 0)
                let cancel = await ChangeTests.serverError {
                    try await otherConn.query("SELECT godwit.change_cancel_jobs('rename_title')")
                }
                #expect(cancel?.sqlState == .insufficientPrivilege, "\(String(describing: cancel))")
                let forged = await ChangeTests.serverError {
                    try await otherConn.query("UPDATE godwit.change_records SET verified_at = now()")
                }
                #expect(forged?.sqlState == .insufficientPrivilege, "\(String(describing: forged))")
                // Nor may the starter itself move its change past the worker.
                let migratorConn = try await migrator.connect(db)
                defer { Task { await migratorConn.close() } }
                let early = await ChangeTests.serverError {
                    try await migratorConn.query(
                        "UPDATE godwit.change_records SET phase = 'ready' WHERE name = 'rename_title'")
                }
                #expect(early?.sqlState == .insufficientPrivilege, "\(String(describing: early))")
                let jobs = try await admin.query(
                    "SELECT count(*) AS n FROM godwit.jobs WHERE state = 'cancelled'"
                ).first?.int("n")
                #expect(jobs == 0)
                #expect(try await Self.phase("rename_title", on: admin) == "backfilling")

                // A member of the starter's role aborts it: its jobs cancelled, its columns gone.
                let aborted = try await GodwitCommand.run(["change", "abort", "rename_title", "-D", try member.url(db)])
                #expect(aborted.status == 0, "\(aborted.stderr)")
                #expect(try await Self.phase("rename_title", on: admin) == "aborted")
                #expect(try await !Self.hasColumn("caption", on: admin))
                let cancelled = try await admin.query(
                    """
                    SELECT count(*) AS n FROM godwit.jobs j JOIN godwit.change_records c
                        ON j.id IN (c.backfill_job_id, c.finish_job_id)
                    WHERE c.name = 'rename_title' AND j.state = 'cancelled'
                    """
                ).first?.int("n")
                #expect(cancelled == 2)
            }
        }
    }

    /// The changes part at version 1 (its first three files) upgrades to version 2 with the
    /// same catalog as a new install, and the upgraded schema has grant_change.
    @Test func anInstallOfVersionOneUpgradesToTheNewInstallsCatalog() async throws {
        let oldPart = try Self.versionOne()
        try await withTestDatabase { upgraded in
            try await withTestDatabase { installed in
                let old = try await upgraded.connect()
                defer { Task { await old.close() } }
                let jobs = QueueSchema.withJobs()
                try await QueueSchema(companions: jobs.companions + [oldPart], legacySteps: jobs.legacySteps)
                    .install(on: old)
                #expect(try await !QueueSchema.withChanges().isCurrent(on: old))
                try await QueueSchema.withChanges().install(on: old)
                #expect(try await QueueSchema.withChanges().isCurrent(on: old))
                let versions = try await old.query(
                    "SELECT version FROM godwit.schema_version WHERE owner = 'changes' ORDER BY version"
                ).rows.map { try $0.int("version") }
                #expect(versions == [1, 2])

                let new = try await installed.connect()
                defer { Task { await new.close() } }
                try await QueueSchema.withChanges().install(on: new)
                let a = try await Self.catalog(of: upgraded)
                let b = try await Self.catalog(of: installed)
                let same = a == b
                #expect(
                    same,
                    "only upgraded: \(Set(a).subtracting(b).sorted()); only new: \(Set(b).subtracting(a).sorted())")
                #expect(a.contains { $0.contains("FUNCTION godwit.grant_change(") }, "\(a.count) statements")
                #expect(a.contains { $0.contains("POLICY change_records_finish") })
            }
        }
    }

    /// Before the upgrade there is no grant_change: a role with grant_enqueue, which may not
    /// upgrade the schema, is told in one line who can, and nothing is applied.
    @Test func aRoleThatMayNotUpgradeAnOlderSchemaIsToldWhoCan() async throws {
        try await withRoles(["app_migrator"]) { roles in
            let migrator = roles[0]
            try await withTestDatabase { db in
                let admin = try await db.connect()
                defer { Task { await admin.close() } }
                try await ChangeTests.createMedia(on: admin, rows: 10)
                try await admin.execute(
                    "ALTER TABLE media OWNER TO \(migrator.quoted); GRANT CREATE ON SCHEMA public TO \(migrator.quoted)"
                )
                let jobs = QueueSchema.withJobs()
                try await QueueSchema(
                    companions: jobs.companions + [try Self.versionOne()], legacySteps: jobs.legacySteps
                ).install(on: admin)
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [migrator.name])
                try await ChangeTests.withChangeFile("rename_title", Self.rename) { file in
                    let run = try await GodwitCommand.run(["change", "start", file, "-D", try migrator.url(db)])
                    #expect(run.status == 1)
                    #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
                    #expect(
                        run.stderr.hasPrefix(
                            "error: \(file):2: schema \"godwit\" is not installed or is older than this godwit, and role \(migrator.name) may not install or upgrade it: start `godwit worker` once"
                        ), "\(run.stderr)")
                }
                #expect(try await !Self.hasColumn("caption", on: admin))
                let versions = try await admin.query(
                    "SELECT max(version) AS v FROM godwit.schema_version WHERE owner = 'changes'"
                ).first?.int("v")
                #expect(versions == 1)
            }
        }
    }

    /// The changes part as version 1 installed it: its first three files.
    static func versionOne() throws -> SchemaPart {
        let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/GodwitChanges/Resources")
        let install = try ["changes_records.sql", "changes_readers.sql", "changes_view.sql"].map {
            try String(contentsOf: resources.appendingPathComponent($0), encoding: .utf8)
        }.joined(separator: "\n")
        return SchemaPart(owner: "changes", requires: ["jobs"], install: install)
    }

    /// Schema godwit as `pg_dump --schema-only` prints it, one statement an element, sorted,
    /// without comments and settings.
    static func catalog(of db: TestDatabase) async throws -> [String] {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: db.url)
        let dump = try await ClientProgram.run(
            "pg_dump", ["--schema-only", "--schema=godwit", "--dbname=\(conninfo)"], environment: environment)
        guard dump.succeeded else { throw TestSetupError(message: "pg_dump failed: \(dump.stderr)") }
        let lines = dump.stdout.split(separator: "\n", omittingEmptySubsequences: true).filter {
            !$0.hasPrefix("--") && !$0.hasPrefix("SET ") && !$0.hasPrefix("\\")
                && !$0.hasPrefix("SELECT pg_catalog.set_config")
        }
        return lines.joined(separator: "\n").components(separatedBy: ";\n").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        }.filter { !$0.isEmpty }.sorted()
    }
}
