import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("migrate baseline")
struct BaselineTests {
    static let files = [
        "1_users.sql": "CREATE TABLE users (id int);",
        "2_media.up.sql": "CREATE TABLE media (id int);",
        "2_media.down.sql": "DROP TABLE media;",
        "3_tags.sql": "CREATE TABLE tags (id int);",
    ]

    /// A schema made by hand up to version 2: baseline records 1 and 2 without running them
    /// (running them would fail: the tables exist), then run applies only 3.
    @Test func recordsUpToTheTargetWithoutRunningThenRunAppliesTheRest() async throws {
        try await withFixture(Self.files) { fx in
            try await fx.conn.execute("CREATE TABLE users (id int); CREATE TABLE media (id int);")
            let migrator = try fx.migrator()
            let events = try await migrator.baseline(on: fx.conn, targetVersion: 2)
            #expect(events.map(\.line) == ["Baselined 1/migrate users (0ns)", "Baselined 2/migrate media (0ns)"])
            let rows = try await fx.conn.query(
                "SELECT version, description, success, checksum, execution_time FROM _sqlx_migrations ORDER BY version"
            ).rows
            #expect(try rows.map { try $0.int64("version") } == [1, 2])
            #expect(try rows.map { try $0.int64("execution_time") } == [0, 0])
            #expect(try rows.map { try $0.bool("success") } == [true, true])
            #expect(try rows.map { try $0.string("description") } == ["users", "media"])
            #expect(
                try rows.map { try $0.bytes("checksum") } == [
                    Migration.checksum(of: Array(Self.files["1_users.sql"]!.utf8)),
                    Migration.checksum(of: Array(Self.files["2_media.up.sql"]!.utf8)),
                ])
            #expect(try await migrator.run(on: fx.conn).map(\.version) == [3])
            #expect(try await fx.exists("tags"))
        }
    }

    @Test func refusesAVersionAlreadyInTheLedgerAndRecordsNothing() async throws {
        try await withFixture(Self.files) { fx in
            let migrator = try fx.migrator()
            try await migrator.run(on: fx.conn, targetVersion: 1)
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.baseline(on: fx.conn, targetVersion: 3)
            }
            #expect(error.code == .alreadyApplied)
            #expect(
                error.message
                    == "_sqlx_migrations already has migration 1: baseline records only versions the ledger does not have, so nothing was recorded"
            )
            #expect(try await fx.ledger().map(\.version) == [1])
        }
    }

    @Test func refusesATargetThatIsNotInTheSource() async throws {
        try await withFixture(Self.files) { fx in
            let error = try await #require(throws: MigrationError.self) {
                try await fx.migrator().baseline(on: fx.conn, targetVersion: 7)
            }
            #expect(error.code == .versionNotPresent)
            #expect(try await !fx.exists("_sqlx_migrations"))
        }
    }

    /// All or nothing: a ledger write that fails half-way leaves no row behind.
    @Test func aFailedWriteRecordsNothing() async throws {
        try await withFixture(Self.files) { fx in
            try await fx.conn.execute(
                """
                CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY CHECK (version <> 2), description TEXT NOT NULL,
                    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
                    checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)
                """)
            let error = try await #require(throws: MigrationError.self) {
                try await fx.migrator().baseline(on: fx.conn, targetVersion: 3)
            }
            #expect(error.message.hasPrefix("baseline recorded nothing: writing _sqlx_migrations failed"), "\(error)")
            #expect(try await fx.ledger().isEmpty)
        }
    }

    @Test func theExecutablePrintsALinePerMigrationAndRefusesInOneLine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for (name, text) in Self.files { try dir.write(name, text) }
        try await withTestDatabase { db in
            let args = ["migrate", "baseline", "--source", dir.path, "-D", db.url, "--target-version", "2"]
            let first = try await GodwitCommand.run(args)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout == "Baselined 1/migrate users (0ns)\nBaselined 2/migrate media (0ns)\n")
            let again = try await GodwitCommand.run(args)
            #expect(again.status == 1)
            #expect(
                again.stderr
                    == "error: _sqlx_migrations already has migrations 1, 2: baseline records only versions the ledger does not have, so nothing was recorded\n"
            )
            let info = try await GodwitCommand.run(["migrate", "info", "--source", dir.path, "-D", db.url])
            #expect(info.stdout == "1/installed users\n2/installed media\n3/pending tags\n")
        }
    }
}
