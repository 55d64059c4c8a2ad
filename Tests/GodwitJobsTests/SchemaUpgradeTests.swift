import Foundation
import GodwitBackups
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// Godwit's schema by owner (`SchemaPart`): a new install is the queue's, the backups' and the
/// jobs' files, and a database installed before owners, by the five steps kept in
/// `Sources/GodwitJobs/Resources/legacy`, upgrades in place to the very same catalog, keeping
/// its rows.
@Suite("Schema parts and the upgrade from the steps before owners")
struct SchemaUpgradeTests {
    /// The five steps godwit installed before owners, exactly as it ran them: the schema, the
    /// version table of that time, and each step in one transaction with its version.
    static func installLegacy(through lastStep: Int = 5, on conn: Connection) async throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/GodwitJobs/Resources/legacy")
        let files = [
            "queue_schema.sql", "queue_schema_2.sql", "queue_schema_3.sql", "queue_schema_4.sql",
            "queue_schema_5.sql",
        ].prefix(lastStep)
        let steps = try files.map { name in
            try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
                .replacingOccurrences(of: "@schema@", with: quoteIdentifier("godwit"))
                .replacingOccurrences(of: "@channel@", with: "'godwit_jobs'")
        }
        try await conn.withTransaction { conn in
            try await conn.execute(
                """
                CREATE SCHEMA godwit;
                CREATE TABLE godwit.schema_version (version integer PRIMARY KEY, installed_at timestamptz NOT NULL DEFAULT now());
                """)
            for (index, step) in steps.enumerated() {
                try await conn.execute(step)
                try await conn.query("INSERT INTO godwit.schema_version (version) VALUES ($1)", [index + 1])
            }
        }
    }

    /// The same rights in every database compared, so that the grants are compared too.
    static func grant(_ enqueuer: TestRole, _ controller: TestRole, on conn: Connection) async throws {
        try await conn.query("SELECT godwit.grant_enqueue($1::regrole)", [enqueuer.name])
        try await conn.query("SELECT godwit.grant_control($1::regrole)", [controller.name])
    }

    /// `pg_dump --schema-only` of the godwit schema, as a sorted list of statements without
    /// comments, settings and psql's meta-commands: what the schema is, whatever order it was
    /// made in.
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

    /// What differs between two catalogs, for a failure message a person can read.
    static func difference(_ a: [String], _ b: [String]) -> String {
        let onlyA = Set(a).subtracting(b).sorted()
        let onlyB = Set(b).subtracting(a).sorted()
        return
            "only in the upgraded schema:\n\(onlyA.joined(separator: "\n---\n"))\nonly in the new install:\n\(onlyB.joined(separator: "\n---\n"))"
    }

    /// Expects the godwit schemas of `upgraded` and `installed` to be the same, naming what
    /// differs; returns the first's catalog.
    @discardableResult
    static func expectSameCatalog(
        _ upgraded: TestDatabase, _ installed: TestDatabase, sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) async throws -> [String] {
        let a = try await catalog(of: upgraded)
        let b = try await catalog(of: installed)
        // Compared apart from #expect, which would print both catalogs whole.
        let same = a == b
        #expect(same, "\(difference(a, b))", sourceLocation: sourceLocation)
        return a
    }

    static func versions(_ conn: Connection) async throws -> [String] {
        try await conn.query("SELECT owner || ' ' || version AS v FROM godwit.schema_version ORDER BY owner, version")
            .rows.map { try $0.string("v") }
    }

    @Test func aDatabaseAtStepFiveUpgradesInPlaceToTheCatalogOfANewInstallAndKeepsItsRows() async throws {
        try await withRoles(["upgrade_enqueuer", "upgrade_controller"]) { roles in
            try await withTestDatabase { old in
                try await withTestDatabase { new in
                    let conn = try await old.connect()
                    try await Self.installLegacy(on: conn)
                    try await Self.grant(roles[0], roles[1], on: conn)
                    try await conn.execute(
                        """
                        CREATE TABLE public.items (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0);
                        INSERT INTO public.items (id) SELECT g FROM generate_series(1, 100) g;
                        """)
                    let plain = try await conn.query("SELECT godwit.enqueue('noop', 'plain') AS id").first!.int64("id")
                    let batched = try await conn.query(
                        "SELECT godwit.enqueue_batched('fill', 'items', 'id', 'UPDATE items SET v = 1 WHERE id BETWEEN $1 AND $2') AS id"
                    ).first!.int64("id")
                    try await conn.query(
                        """
                        INSERT INTO godwit.batches (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size, duration_ms)
                        VALUES ($1, 1, 1, '1', '10', 10, 10, 10, 1.5)
                        """, [batched])
                    try await conn.query(
                        "UPDATE godwit.job_progress SET cursor = '10', rows_done = 10, batches_done = 1 WHERE job_id = $1",
                        [batched])
                    try await conn.query(
                        """
                        INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, job_id, verified_at, reason)
                        VALUES ('/srv/backups/backup-1.dump', 42, 'abc', 'app', $1, now(), 'by hand')
                        """, [plain])

                    try await QueueSchema.withJobs().install(on: conn)

                    // Recognised and recorded, nothing run: the steps' rows stay, as legacy.
                    #expect(
                        try await Self.versions(conn)
                            == [
                                "backups 1", "jobs 1", "legacy 1", "legacy 2", "legacy 3", "legacy 4", "legacy 5",
                                "queue 1",
                            ])
                    #expect(try await QueueSchema.withJobs().isCurrent(on: conn))
                    // The rows are there, and the job's checkpoint with them.
                    let jobs = try await conn.query(
                        "SELECT id, kind, state::text AS state FROM godwit.jobs ORDER BY id"
                    ).rows
                    #expect(try jobs.map { try $0.int64("id") } == [plain, batched])
                    #expect(try jobs.map { try $0.string("kind") } == ["noop", "batched"])
                    let progress = try #require(
                        try await conn.query(
                            "SELECT cursor, rows_done, rows_total FROM godwit.progress WHERE id = $1", [batched]
                        ).first)
                    #expect(try progress.string("cursor") == "10")
                    #expect(try progress.int64("rows_done") == 10)
                    #expect(try await conn.query("SELECT count(*) AS n FROM godwit.batches").first!.int("n") == 1)
                    #expect(
                        try await conn.query("SELECT job_id, reason FROM godwit.backups").first.map {
                            [try $0.int64("job_id"), try $0.string("reason")] as [AnyHashable]
                        } == [plain, "by hand"])
                    // And it goes on working: a job enqueued and a second install that does nothing.
                    _ = try await conn.query("SELECT godwit.enqueue('noop', 'after') AS id")
                    try await QueueSchema.withJobs().install(on: conn)
                    #expect(try await Self.versions(conn).count == 8)

                    let fresh = try await new.connect()
                    try await QueueSchema.withJobs().install(on: fresh)
                    try await Self.grant(roles[0], roles[1], on: fresh)
                    #expect(try await Self.versions(fresh) == ["backups 1", "jobs 1", "queue 1"])

                    let upgraded = try await Self.expectSameCatalog(old, new)
                    #expect(upgraded.count > 50)
                    await conn.close()
                    await fresh.close()
                }
            }
        }
    }

    @Test func workersStartingAtOnceOnAStepFiveDatabaseUpgradeItOnce() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await Self.installLegacy(on: conn)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let worker = try await db.connect()
                        try await QueueSchema.withJobs().install(on: worker)
                        await worker.close()
                    }
                }
                try await group.waitForAll()
            }
            #expect(
                try await Self.versions(conn)
                    == ["backups 1", "jobs 1", "legacy 1", "legacy 2", "legacy 3", "legacy 4", "legacy 5", "queue 1"])
            await conn.close()
        }
    }

    @Test func theBackupsPartInstallsAloneAndTheOthersJoinItLater() async throws {
        try await withTestDatabase { first in
            try await withTestDatabase { all in
                let conn = try await first.connect()
                try await BackupManager(directory: "/tmp").installSchema(on: conn)
                #expect(try await Self.versions(conn) == ["backups 1"])
                #expect(try await conn.query("SELECT to_regclass('godwit.jobs') IS NULL AS n").first!.bool("n"))
                try await conn.query(
                    """
                    INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at, reason)
                    VALUES ('/srv/backups/backup-1.dump', 42, 'abc', 'app', now(), 'by hand')
                    """)
                try await QueueSchema.withJobs().install(on: conn)
                #expect(try await Self.versions(conn) == ["backups 1", "jobs 1", "queue 1"])
                #expect(try await conn.query("SELECT count(*) AS n FROM godwit.backups").first!.int("n") == 1)

                let other = try await all.connect()
                try await QueueSchema.withJobs().install(on: other)
                try await Self.expectSameCatalog(first, all)
                await conn.close()
                await other.close()
            }
        }
    }

    @Test func aPartWithoutThePartsItNeedsIsRefusedAndNothingIsInstalled() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let error = await #expect(throws: PostgresError.self) {
                try await SchemaInstaller(schema: "godwit", parts: [.jobs]).install(on: conn)
            }
            #expect(
                error?.message
                    == "schema godwit: the jobs objects need the queue objects, which are not installed: install queue first (godwit worker installs every part)"
            )
            #expect(try await conn.query("SELECT to_regnamespace('godwit') IS NULL AS n").first!.bool("n"))
            await conn.close()
        }
    }

    @Test(arguments: 1...4)
    func aDatabaseAnOlderGodwitLeftAtAnEarlierStepIsTakenThroughTheRestAndConverted(step: Int) async throws {
        try await withTestDatabase { old in
            try await withTestDatabase { new in
                let conn = try await old.connect()
                try await Self.installLegacy(through: step, on: conn)
                let plain = try await conn.query("SELECT godwit.enqueue('noop', 'plain') AS id").first!.int64("id")
                // A part alone (what `backup create` installs) has not the steps: it refuses.
                let error = await #expect(throws: PostgresError.self) {
                    try await QueueSchema(companions: [.backups]).install(on: conn)
                }
                #expect(
                    error?.message.hasPrefix(
                        "schema godwit is at step \(step) of the steps godwit took before its parts had owners")
                        == true)
                #expect(try await conn.query("SELECT count(*) AS n FROM godwit.schema_version").first!.int("n") == step)

                try await QueueSchema.withJobs().install(on: conn)
                #expect(
                    try await Self.versions(conn)
                        == [
                            "backups 1", "jobs 1", "legacy 1", "legacy 2", "legacy 3", "legacy 4", "legacy 5",
                            "queue 1",
                        ])
                #expect(
                    try await conn.query("SELECT name FROM godwit.jobs WHERE id = $1", [plain]).first?.string("name")
                        == "plain")
                let fresh = try await new.connect()
                try await QueueSchema.withJobs().install(on: fresh)
                try await Self.expectSameCatalog(old, new)
                await conn.close()
                await fresh.close()
            }
        }
    }

    @Test func aPartNewerThanThisGodwitIsRefused() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            try await conn.query("INSERT INTO godwit.schema_version (owner, version) VALUES ('jobs', 2)")
            let error = await #expect(throws: PostgresError.self) { try await QueueSchema.withJobs().install(on: conn) }
            #expect(
                error?.message
                    == "schema godwit holds the jobs objects at version 2, newer than this godwit knows (1): upgrade godwit"
            )
            #expect(try await QueueSchema.withJobs().isCurrent(on: conn) == false)
            await conn.close()
        }
    }
}
