import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A folder of migrations plus a database, for one test.
struct Fixture {
    let dir: TemporaryDirectory
    let db: TestDatabase
    let conn: Connection

    func migrator() throws -> Migrator { try Migrator(directory: dir.path) }

    func ledger() async throws -> [(version: Int64, success: Bool)] {
        try await conn.query("SELECT version, success FROM _sqlx_migrations ORDER BY version").rows.map {
            (try $0.int64("version"), try $0.bool("success"))
        }
    }

    func exists(_ relation: String) async throws -> Bool {
        try await conn.query("SELECT to_regclass($1) IS NOT NULL AS present", [relation]).first?.bool("present")
            ?? false
    }
}

func withFixture(_ files: [String: String], _ body: (Fixture) async throws -> Void) async throws {
    let dir = try TemporaryDirectory()
    defer { dir.delete() }
    for (name, contents) in files { try dir.write(name, contents) }
    try await withTestDatabase { db in
        let conn = try await db.connect()
        try await body(Fixture(dir: dir, db: db, conn: conn))
        await conn.close()
    }
}

let threeReversible: [String: String] = [
    "1_a.up.sql": "CREATE TABLE a (id int);",
    "1_a.down.sql": "DROP TABLE a;",
    "2_b.up.sql": "CREATE TABLE b (id int);",
    "2_b.down.sql": "DROP TABLE b;",
    "3_c.up.sql": "CREATE TABLE c (id int);",
    "3_c.down.sql": "DROP TABLE c;",
]

@Suite("Migrator against PostgreSQL")
struct MigratorTests {
    @Test func theLedgerHasSqlxsExactShape() async throws {
        try await withFixture(["1_a.sql": "SELECT 1;"]) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn)
            let columns = try await fx.conn.query(
                """
                SELECT column_name, data_type, is_nullable, column_default
                FROM information_schema.columns WHERE table_name = '_sqlx_migrations' ORDER BY ordinal_position
                """
            ).rows.map { "\($0[0]!) \($0[1]!) \($0[2]!) \($0[3] ?? "-")" }
            #expect(
                columns == [
                    "version bigint NO -", "description text NO -",
                    "installed_on timestamp with time zone NO now()", "success boolean NO -",
                    "checksum bytea NO -", "execution_time bigint NO -",
                ])
            let row = try #require(try await fx.conn.query("SELECT * FROM _sqlx_migrations").first)
            #expect(try row.string("description") == "a")
            #expect(try row.bytes("checksum") == Migration.checksum(of: Array("SELECT 1;".utf8)))
            #expect(try row.int64("execution_time") > 0)
            #expect(try row.bool("success"))
        }
    }

    @Test func runRevertAndInfoWithTargetVersions() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            let migrator = try fx.migrator()
            var events = try await migrator.run(on: fx.conn, targetVersion: 2)
            #expect(events.map(\.action) == [.applied, .applied, .skipped])
            #expect(try await fx.ledger().map(\.version) == [1, 2])
            #expect(try await migrator.status(on: fx.conn).map(\.state) == [.installed, .installed, .pending])

            events = try await migrator.run(on: fx.conn)
            #expect(events.map(\.version) == [3])
            #expect(events.first?.line.hasPrefix("Applied 3/migrate c (") == true)

            events = try await migrator.revert(on: fx.conn)
            #expect(events.map(\.version) == [3])
            #expect(events.first?.line.hasPrefix("Applied 3/revert c (") == true)
            #expect(try await !fx.exists("c"))

            try await migrator.run(on: fx.conn)
            events = try await migrator.revert(on: fx.conn, targetVersion: 1)
            #expect(events.map(\.version) == [3, 2])
            #expect(try await fx.ledger().map(\.version) == [1])

            events = try await migrator.revert(on: fx.conn, targetVersion: 0)
            #expect(events.map(\.version) == [1])
            #expect(try await fx.ledger().isEmpty)
            #expect(try await migrator.revert(on: fx.conn).isEmpty)
        }
    }

    @Test func targetVersionsAreChecked() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            let migrator = try fx.migrator()
            var error = await #expect(throws: MigrationError.self) {
                try await migrator.run(on: fx.conn, targetVersion: 9)
            }
            #expect(error?.code == .versionNotPresent)
            try await migrator.run(on: fx.conn)
            error = await #expect(throws: MigrationError.self) { try await migrator.run(on: fx.conn, targetVersion: 1) }
            #expect(error?.message == "migration 1 is older than the latest applied migration 3")
            try await migrator.revert(on: fx.conn, targetVersion: 1)
            error = await #expect(throws: MigrationError.self) {
                try await migrator.revert(on: fx.conn, targetVersion: 3)
            }
            #expect(error?.message == "migration 3 is newer than the latest applied migration 1")
        }
    }

    @Test func aModifiedFileIsRefusedBeforeAnythingRuns() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn, targetVersion: 2)
            try fx.dir.write("2_b.up.sql", "CREATE TABLE b (id bigint);")
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.message == "migration 2 was previously applied but has been modified")
            #expect(try await !fx.exists("c"))
            let statuses = try await fx.migrator().status(on: fx.conn)
            #expect(statuses.map(\.state) == [.installed, .modified, .pending])
        }
    }

    @Test func aDirtyLedgerIsRefused() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn, targetVersion: 1)
            try await fx.conn.execute("UPDATE _sqlx_migrations SET success = false WHERE version = 1")
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.code == .dirty)
            #expect(error?.message.contains("migration 1 is partially applied") == true)
            #expect(try await !fx.exists("b"))
            await #expect(throws: MigrationError.self) { try await fx.migrator().revert(on: fx.conn) }
        }
    }

    @Test func anAppliedMigrationMissingFromTheSourceIsRefusedUnlessIgnored() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn, targetVersion: 1)
            try fx.dir.remove("1_a.up.sql")
            try fx.dir.remove("1_a.down.sql")
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.message == "migration 1 was previously applied but is missing in the resolved migrations")
            let events = try await fx.migrator().run(on: fx.conn, ignoreMissing: true)
            #expect(events.map(\.version) == [2, 3])
            #expect(try await fx.migrator().status(on: fx.conn).first?.state == .missingFromSource)
        }
    }

    @Test func dryRunChangesNothingAndCreatesNoLedger() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            let events = try await fx.migrator().run(on: fx.conn, dryRun: true)
            #expect(events.map(\.action) == [.canApply, .canApply, .canApply])
            #expect(events.first?.line == "Can apply 1/migrate a (0ns)")
            #expect(try await !fx.exists("_sqlx_migrations"))
            #expect(try await !fx.exists("a"))
            try await fx.migrator().run(on: fx.conn)
            let reverts = try await fx.migrator().revert(on: fx.conn, targetVersion: 0, dryRun: true)
            #expect(reverts.map(\.version) == [3, 2, 1])
            #expect(try await fx.ledger().count == 3)
        }
    }

    @Test func revertRefusesAnIrreversibleMigrationBeforeRevertingAny() async throws {
        var files = threeReversible
        files["2_b.sql"] = files.removeValue(forKey: "2_b.up.sql")
        files.removeValue(forKey: "2_b.down.sql")
        try await withFixture(files) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn)
            let error = await #expect(throws: MigrationError.self) {
                try await fx.migrator().revert(on: fx.conn, targetVersion: 0)
            }
            #expect(error?.code == .notReversible)
            #expect(error?.message.contains("migration 2 (b) has no .down.sql") == true)
            #expect(try await fx.ledger().count == 3)
            #expect(try await fx.exists("c"))
        }
    }

    @Test func aFailingMigrationRollsBackWholeAndNamesFileLineAndColumn() async throws {
        try await withFixture([
            "1_ok.sql": "CREATE TABLE ok (id int);",
            "2_bad.sql":
                "CREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\n\nSELECT\n    nosuch_column FROM partial;\n",
        ]) { (fx: Fixture) async throws in
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.code == .execution)
            #expect(error?.version == 2)
            #expect(error?.message.contains("2_bad.sql:5:5") == true)
            #expect(error?.message.contains("SQLSTATE 42703") == true)
            #expect(error?.underlying?.sqlState == .undefinedColumn)
            #expect(try await fx.ledger().map(\.version) == [1])
            #expect(try await !fx.exists("partial"))
        }
    }

    @Test func anErrorWithoutAPositionIsLocatedByItsStatement() async throws {
        try await withFixture([
            "1_dup.sql":
                "CREATE TABLE d (id int PRIMARY KEY);\n-- two rows, one key\nINSERT INTO d VALUES (1);\n  INSERT INTO d VALUES (1);\n"
        ]) { (fx: Fixture) async throws in
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.message.contains("1_dup.sql:4:3") == true)
            #expect(error?.message.contains("SQLSTATE 23505") == true)
            #expect(error?.message.contains("detail: Key (id)=(1) already exists.") == true)
        }
    }

    @Test func noTransactionFileRunsStatementByStatement() async throws {
        try await withFixture([
            "1_t.sql": "CREATE TABLE t (a int, b int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;",
            "2_idx.sql": """
            -- no-transaction
            CREATE INDEX CONCURRENTLY t_a_idx ON t (a);
            /* a comment; with a semicolon */
            CREATE INDEX CONCURRENTLY t_b_idx ON t (b);
            """,
        ]) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn)
            let valid = try await fx.conn.query(
                "SELECT count(*) AS n FROM pg_index WHERE indisvalid AND indrelid = 't'::regclass")
            #expect(try valid.first?.int("n") == 2)
            #expect(try await fx.ledger().map(\.success) == [true, true])
        }
    }

    @Test func aNoTransactionFileFailingHalfWayIsRecordedAsPartiallyApplied() async throws {
        try await withFixture([
            "1_t.sql": "CREATE TABLE t (a int);",
            "2_idx.sql":
                "-- no-transaction\nCREATE INDEX CONCURRENTLY t_a_idx ON t (a);\nCREATE INDEX CONCURRENTLY t_z_idx ON t (zz);\n",
            "3_more.sql": "CREATE TABLE more (id int);",
        ]) { (fx: Fixture) async throws in
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.message.contains("2_idx.sql:3:") == true)
            #expect(error?.message.contains("1 of 2 statements had already run") == true)
            #expect(try await fx.ledger().map(\.success) == [true, false])
            // Neither Godwit nor sqlx goes on until a person has looked.
            let again = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(again?.code == .dirty)
            #expect(try await !fx.exists("more"))
        }
    }

    @Test func aNoTransactionFileFailingOnItsFirstStatementLeavesNoTrace() async throws {
        try await withFixture([
            "1_idx.sql": "-- no-transaction\nCREATE INDEX CONCURRENTLY nope ON missing_table (a);\n"
        ]) { (fx: Fixture) async throws in
            await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(try await fx.ledger().isEmpty)
        }
    }

    @Test func aFileWithAByteOrderMarkRuns() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("CREATE TABLE bom (id int);\r\n".utf8)
        let path = try dir.write("1_bom.sql", bytes: bytes)
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await Migrator(directory: dir.path).run(on: conn)
            let row = try #require(try await conn.query("SELECT checksum FROM _sqlx_migrations").first)
            #expect(try row.bytes("checksum").hexEncoded == (try sha384sum(path)))
            #expect(try await conn.query("SELECT to_regclass('bom') IS NOT NULL AS p").first?.bool("p") == true)
            await conn.close()
        }
    }

    @Test func runWaitsForTheLockHeldByAnotherSession() async throws {
        try await withFixture(threeReversible) { (fx: Fixture) async throws in
            let holder = try await fx.db.connect()
            let database = fx.db.name
            try await holder.query("SELECT pg_advisory_lock($1)", [MigrationLock.key(forDatabase: database)])
            let runner = Task { try await fx.migrator().run(on: fx.conn) }
            try await Task.sleep(for: .milliseconds(700))
            // Still waiting: nothing applied, and the ledger was not even created.
            let observer = try await fx.db.connect()
            #expect(
                try await observer.query("SELECT to_regclass('_sqlx_migrations') IS NULL AS absent").first?.bool(
                    "absent") == true)
            // While waiting, the runner holds no transaction open (so CREATE INDEX
            // CONCURRENTLY elsewhere cannot deadlock on it).
            let open = try await observer.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid() AND state <> 'idle'",
                [database])
            #expect(try open.first?.int("n") == 0)
            try await holder.query("SELECT pg_advisory_unlock($1)", [MigrationLock.key(forDatabase: database)])
            let events = try await runner.value
            #expect(events.count == 3)
            await holder.close()
            await observer.close()
        }
    }

    @Test func theSampleSchemaMigratesDownAndUpAgain() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            let migrator = try Migrator(directory: "migrations")
            let applied = try await migrator.run(on: conn)
            #expect(applied.count == migrator.source.upMigrations.count)
            // Revert down to the newest irreversible migration, then apply again.
            let lastSimple = try #require(
                migrator.source.upMigrations.last { migrator.source.down(for: $0.version) == nil })
            let reverted = try await migrator.revert(on: conn, targetVersion: lastSimple.version)
            #expect(!reverted.isEmpty)
            let reapplied = try await migrator.run(on: conn)
            #expect(reapplied.map(\.version) == reverted.map(\.version).reversed())
            await conn.close()
        }
    }
}
