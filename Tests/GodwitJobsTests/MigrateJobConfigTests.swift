import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// sqlx.toml's settings travel with a migrate job, and `worker --migrate` reads them too.
@Suite("Migrate jobs and worker --migrate with sqlx.toml")
struct MigrateJobConfigTests {
    static let toml =
        "[migrate]\ncreate-schemas = [\"tenant\"]\ntable-name = \"tenant._sqlx_migrations\"\nignored-chars = [\"\\r\"]\n"
    static let crlf = "CREATE TABLE tenant.items (\r\n    id int\r\n);\r\n"

    func ledger(_ conn: Connection) async throws -> [(Int64, [UInt8])] {
        try await conn.query("SELECT version, checksum FROM tenant._sqlx_migrations ORDER BY version").rows.map {
            (try $0.int64("version"), try $0.bytes("checksum"))
        }
    }

    @Test func aJobEnqueuedWithAConfigRunsWithItsLedgerAndChecksums() async throws {
        let dir = try TemporaryDirectory()
        let elsewhere = try TemporaryDirectory()
        defer {
            dir.delete()
            elsewhere.delete()
        }
        try dir.write("sqlx.toml", Self.toml)
        try dir.write("migrations/1_items.sql", Self.crlf)
        try await withQueue { db, conn, _ in
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            // A worker with no sqlx.toml of its own.
            let worker = try await drainWorker(db.url, directory: elsewhere.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            let state = try await conn.query(
                "SELECT state::text AS s, last_error FROM godwit.jobs WHERE kind = 'migrate'"
            ).first
            #expect(try state?.string("s") == "succeeded", "\(String(describing: state?["last_error"]))")
            let expected = Migration.checksum(of: Array(Self.crlf.utf8).filter { $0 != 0x0D })
            let rows = try await ledger(conn)
            #expect(rows.map(\.0) == [1] && rows.map(\.1) == [expected])
            #expect(
                try await conn.query("SELECT to_regclass('public._sqlx_migrations') IS NULL AS absent").first?.bool(
                    "absent") == true)
        }
    }

    @Test func workerMigrateReadsTheCurrentDirectorysConfig() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("sqlx.toml", Self.toml + "migrations-dir = \"db\"\n")
        try dir.write("db/1_items.sql", Self.crlf)
        try await withQueue { db, conn, _ in
            let worker = try await drainWorker(db.url, ["--migrate"], directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            #expect(try await ledger(conn).map(\.0) == [1])
            #expect(
                try await conn.query("SELECT to_regclass('tenant.items') IS NOT NULL AS present").first?.bool("present")
                    == true)
        }
    }
}
