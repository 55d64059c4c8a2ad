import Foundation
import GodwitChanges
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `complete --write-migration DIR`: the change's end state as one migration in the folder,
/// recorded in the live ledger with its checksum in complete's transaction, so that a database
/// built from the folder alone ends with the live schema, and sqlx's rules hold on the live
/// database (nothing pending, nothing modified, nothing missing).
@Suite("The folded migration")
struct FoldedMigrationTests {
    /// A folder with the application's first migration, which makes `media`.
    static func makeFolder() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-folded-\(UUID().uuidString)")
        let migrations = root.appendingPathComponent("migrations")
        try FileManager.default.createDirectory(at: migrations, withIntermediateDirectories: true)
        try Data((ReadyChange.tableSQL + "\n").utf8).write(
            to: migrations.appendingPathComponent("0001_create_media.sql"))
        return root.path
    }

    /// The change set up by hand (its statements written for the test), or by `change start`
    /// itself (the statements and the folded migration it generates).
    @Test(arguments: [false, true])
    func rebuildsTheLiveSchemaAndKeepsTheLedgerAcceptable(realStart: Bool) async throws {
        let root = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withTestDatabase { live in
            try await withTestDatabase { fresh in
                let env: [String: String?] = ["DATABASE_URL": live.url]
                let migrated = try await GodwitCommand.run(["migrate", "run"], environment: env, directory: root)
                #expect(migrated.status == 0, "\(migrated.stderr)")
                let conn = try await live.connect()
                defer { Task { await conn.close() } }
                if realStart {
                    try await ReadyChange.start(on: conn)
                } else {
                    try await ReadyChange.create(on: conn, createTable: false)
                }
                let folded = try await conn.query(
                    "SELECT statements->>'migration' AS m FROM godwit.change_records WHERE name = $1",
                    [ReadyChange.name]
                ).first!.string("m")

                let completed = try await GodwitCommand.run(
                    ["change", "complete", ReadyChange.name, "--quiet-for", "0s", "--write-migration", "migrations"],
                    environment: env, directory: root)
                #expect(completed.status == 0, "\(completed.stderr)")
                #expect(completed.stdout.contains("completed change media_caption on \"public\".\"media\""))
                #expect(
                    completed.stdout.contains(
                        "wrote migrations/0002_media_caption.sql and recorded version 2 in _sqlx_migrations"),
                    "\(completed.stdout)")
                #expect(
                    completed.stderr.contains("a database whose _sqlx_migrations lacks version 2 runs"),
                    "\(completed.stderr)")
                let path = root + "/migrations/0002_media_caption.sql"
                let written = try String(contentsOfFile: path, encoding: .utf8)
                #expect(written == (folded.hasSuffix("\n") ? folded : folded + "\n"))
                #expect(
                    try FileManager.default.contentsOfDirectory(atPath: root + "/migrations").sorted() == [
                        "0001_create_media.sql", "0002_media_caption.sql",
                    ])
                #expect(try await ReadyChange.phase(on: conn) == "completed")

                // The ledger: the file's checksum (sqlx's: SHA-384 of its bytes), and sqlx's
                // rules hold: everything installed, a run applies nothing and fails on nothing.
                let row = try #require(
                    try await conn.query("SELECT checksum FROM _sqlx_migrations WHERE version = 2").first)
                #expect(try row.bytes("checksum") == Migration.checksum(of: Array(written.utf8)))
                let recorded = try await conn.query(
                    "SELECT migration_version FROM godwit.change_records WHERE name = $1", [ReadyChange.name]
                ).first?["migration_version"]
                #expect(recorded == "2")
                let info = try await GodwitCommand.run(["migrate", "info"], environment: env, directory: root)
                #expect(info.status == 0, "\(info.stderr)")
                let states = info.stdout.split(separator: "\n")
                #expect(states == ["1/installed create media", "2/installed media caption"], "\(info.stdout)")
                let rerun = try await GodwitCommand.run(["migrate", "run"], environment: env, directory: root)
                #expect(rerun.status == 0, "\(rerun.stderr)")
                #expect(!rerun.stdout.contains("Applied"), "\(rerun.stdout)")

                // A database built from the folder alone has the live schema.
                let built = try await GodwitCommand.run(
                    ["migrate", "run"], environment: ["DATABASE_URL": fresh.url], directory: root)
                #expect(built.status == 0, "\(built.stderr)")
                let liveSchema = try await ReadyChange.schemaDump(of: live)
                let builtSchema = try await ReadyChange.schemaDump(of: fresh)
                #expect(liveSchema == builtSchema)
                #expect(liveSchema.contains("caption text NOT NULL"), "\(liveSchema)")
                #expect(!liveSchema.contains("title"), "\(liveSchema)")
            }
        }
    }

    /// A refused complete writes no file, and records nothing.
    @Test func aRefusedCompleteWritesNoFile() async throws {
        let root = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withTestDatabase { live in
            let env: [String: String?] = ["DATABASE_URL": live.url]
            let migrated = try await GodwitCommand.run(["migrate", "run"], environment: env, directory: root)
            #expect(migrated.status == 0, "\(migrated.stderr)")
            let conn = try await live.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn, createTable: false)
            try await conn.execute("UPDATE godwit.change_records SET disagreeing_rows = 1")
            let refused = try await GodwitCommand.run(
                ["change", "complete", ReadyChange.name, "--quiet-for", "0s", "--write-migration", "migrations"],
                environment: env, directory: root)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("1 rows whose two sides disagree"), "\(refused.stderr)")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: root + "/migrations") == ["0001_create_media.sql"])
            let versions = try await conn.query("SELECT version FROM _sqlx_migrations ORDER BY version").rows.map {
                try $0.int64("version")
            }
            #expect(versions == [1])
        }
    }
}
