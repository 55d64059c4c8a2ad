import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("godwit migrate verify", .serialized)
struct MigrateVerifyTests {
    static let base: [String: String] = [
        "1_items.up.sql": "CREATE TABLE items (id bigint PRIMARY KEY, label text);",
        "1_items.down.sql": "DROP TABLE items;",
    ]

    func verify(_ files: [String: String]) async throws -> GodwitProcess.Output {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for (name, contents) in files { try dir.write("migrations/\(name)", contents) }
        return try await GodwitProcess.run(["migrate", "verify", "-D", try TestDatabase.serverURL], directory: dir.path)
    }

    func scratchDatabases() async throws -> Int {
        let conn = try await Connection.connect(try TestDatabase.serverURL)
        defer { Task { await conn.close() } }
        return try await conn.query("SELECT count(*) AS n FROM pg_database WHERE datname LIKE 'godwit_verify_%'")
            .first!.int("n")
    }

    @Test func theSampleSchemaVerifies() async throws {
        let output = try await GodwitProcess.run(["migrate", "verify", "-D", try TestDatabase.serverURL])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("ok 20240301130000/index media listing: down restores the schema"))
        #expect(output.stdout.contains("-- 20240101000200/create webhooks: irreversible (no .down.sql)"))
        #expect(output.stdout.hasSuffix("verified 6 migrations: 5 reversible, 1 irreversible\n"))
    }

    @Test(arguments: [
        (
            "ALTER TABLE items ADD COLUMN price numeric;", "SELECT 1;",
            "~ changed: Name: items; Type: TABLE; Schema: public", "+     price numeric"
        ),
        (
            "CREATE INDEX items_label_idx ON items (label);", "SELECT 1;",
            "+ left behind by the down: Name: items_label_idx; Type: INDEX; Schema: public", "CREATE INDEX items_label_idx"
        ),
        (
            "ALTER TABLE items ALTER COLUMN label SET DEFAULT 'none';", "SELECT 1;",
            "~ changed: Name: items; Type: TABLE; Schema: public", "DEFAULT 'none'::text"
        ),
        (
            "ALTER TABLE items DROP COLUMN label;", "ALTER TABLE items ADD COLUMN label varchar(10);",
            "~ changed: Name: items; Type: TABLE; Schema: public", "label character varying(10)"
        ),
    ])
    func aDownThatForgetsSomethingIsNamedWithTheDifference(
        up: String, down: String, header: String, detail: String
    ) async throws {
        var files = Self.base
        files["2_change.up.sql"] = up
        files["2_change.down.sql"] = down
        files["3_later.sql"] = "CREATE TABLE later (id int);"
        let output = try await verify(files)
        #expect(output.status == 1)
        #expect(output.stdout.contains("ok 1/items"))
        #expect(output.stderr.hasPrefix("error: migration 2 (change): the down does not restore the schema\n"), "\(output.stderr)")
        #expect(output.stderr.contains(header), "\(output.stderr)")
        #expect(output.stderr.contains(detail), "\(output.stderr)")
        #expect(try await scratchDatabases() == 0)
    }

    @Test func aDownThatFailsIsReported() async throws {
        var files = Self.base
        files["2_change.up.sql"] = "CREATE TABLE other (id int);"
        files["2_change.down.sql"] = "DROP TABLE otherr;"
        let output = try await verify(files)
        #expect(output.status == 1)
        #expect(output.stderr.hasPrefix("error: migration 2 (change): the down failed: "), "\(output.stderr)")
        #expect(output.stderr.contains("table \"otherr\" does not exist"))
        #expect(try await scratchDatabases() == 0)
    }

    @Test func anUpThatCannotRunAgainAfterItsDownIsReported() async throws {
        var files = Self.base
        // The down restores the schema but leaves the seeded row, so the up fails the second time.
        files["2_seed.up.sql"] = "CREATE TABLE extra (id int); INSERT INTO items VALUES (1, 'seed');"
        files["2_seed.down.sql"] = "DROP TABLE extra;"
        let output = try await verify(files)
        #expect(output.status == 1)
        #expect(
            output.stderr.hasPrefix("error: migration 2 (seed): the up does not run again after its down: "),
            "\(output.stderr)")
        #expect(output.stderr.contains("SQLSTATE 23505"))
        #expect(try await scratchDatabases() == 0)
    }
}
