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

    func verify(_ files: [String: String], url: String? = nil) async throws -> ScratchRun {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for (name, contents) in files { try dir.write("migrations/\(name)", contents) }
        return try await ScratchRun.run(
            ["migrate", "verify", "-D", try url ?? TestDatabase.serverURL], directory: dir.path)
    }

    @Test func theSampleSchemaVerifies() async throws {
        let output = try await GodwitCommand.run(["migrate", "verify", "-D", try TestDatabase.serverURL])
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
            "+ left behind by the down: Name: items_label_idx; Type: INDEX; Schema: public",
            "CREATE INDEX items_label_idx"
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
        let run = try await verify(files)
        let output = run.output
        #expect(output.status == 1)
        #expect(output.stdout.contains("ok 1/items"))
        #expect(
            output.stderr.hasPrefix("error: migration 2 (change): the down does not restore the schema\n"),
            "\(output.stderr)")
        #expect(output.stderr.contains(header), "\(output.stderr)")
        #expect(output.stderr.contains(detail), "\(output.stderr)")
        #expect(try await run.leftovers() == 0)
    }

    @Test func aDownThatFailsIsReported() async throws {
        var files = Self.base
        files["2_change.up.sql"] = "CREATE TABLE other (id int);"
        files["2_change.down.sql"] = "DROP TABLE otherr;"
        let run = try await verify(files)
        let output = run.output
        #expect(output.status == 1)
        #expect(output.stderr.hasPrefix("error: migration 2 (change): the down failed: "), "\(output.stderr)")
        #expect(output.stderr.contains("table \"otherr\" does not exist"))
        #expect(try await run.leftovers() == 0)
    }

    @Test func anUpThatCannotRunAgainAfterItsDownIsReported() async throws {
        var files = Self.base
        // The down restores the schema but leaves the seeded row, so the up fails the second time.
        files["2_seed.up.sql"] = "CREATE TABLE extra (id int); INSERT INTO items VALUES (1, 'seed');"
        files["2_seed.down.sql"] = "DROP TABLE extra;"
        let run = try await verify(files)
        let output = run.output
        #expect(output.status == 1)
        #expect(
            output.stderr.hasPrefix("error: migration 2 (seed): the up does not run again after its down: "),
            "\(output.stderr)")
        #expect(output.stderr.contains("SQLSTATE 23505"))
        #expect(try await run.leftovers() == 0)
    }

    /// The scratch database has the encoding, collation, character classes and locale provider
    /// of the database verified: a folder with a nondeterministic ICU collation verifies
    /// against an ICU database whose encoding is not the server's default.
    @Test func theScratchDatabaseHasTheEncodingAndLocaleOfTheOneVerified() async throws {
        let admin = try await Connection.connect(try TestDatabase.serverURL)
        let defaultEncoding = try await admin.query(
            "SELECT pg_encoding_to_char(encoding) AS e FROM pg_database WHERE datname = 'template0'"
        ).first!.string("e")
        let encoding = defaultEncoding == "LATIN1" ? "UTF8" : "LATIN1"
        let name = "godwit_test_icu_\(UInt32.random(in: 0...UInt32.max))"
        try await admin.execute(
            "CREATE DATABASE \(quoteIdentifier(name)) TEMPLATE template0 ENCODING '\(encoding)' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
        var files = Self.base
        // Fails unless the scratch database is like the one verified.
        files["2_names.up.sql"] = """
            DO $$
            DECLARE d jsonb := (SELECT to_jsonb(d) FROM pg_database d WHERE datname = current_database());
            BEGIN
                IF pg_encoding_to_char((d ->> 'encoding')::int) <> '\(encoding)' OR d ->> 'datcollate' <> 'C'
                    OR d ->> 'datctype' <> 'C' OR d ->> 'datlocprovider' <> 'i'
                    OR coalesce(d ->> 'datlocale', d ->> 'daticulocale') <> 'en-US' THEN
                    RAISE EXCEPTION 'the scratch database is not like the one verified: %', d;
                END IF;
            END $$;
            CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            CREATE TABLE names (name text COLLATE case_insensitive UNIQUE);
            INSERT INTO names VALUES ('Godwit');
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM names WHERE name = 'GODWIT') THEN RAISE EXCEPTION 'not case-insensitive'; END IF;
            END $$;
            """
        files["2_names.down.sql"] = "DROP TABLE names; DROP COLLATION case_insensitive;"
        let run: ScratchRun
        do {
            run = try await verify(files, url: try TestDatabase.url(try TestDatabase.serverURL, database: name))
            try await admin.execute("DROP DATABASE \(quoteIdentifier(name)) WITH (FORCE)")
            await admin.close()
        } catch {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
            await admin.close()
            throw error
        }
        let output = run.output
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("ok 2/names: down restores the schema"), "\(output.stdout)")
        #expect(try await run.leftovers() == 0)
    }

    @Test func withoutCreatedbTheErrorSaysWhatIsNeeded() async throws {
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let role = "verify_\(UInt32.random(in: 0...UInt32.max))"
            let password = "Zq-\(UInt32.random(in: 0...UInt32.max))-pw"
            try await admin.execute(
                "CREATE ROLE \(quoteIdentifier(role)) LOGIN NOCREATEDB PASSWORD \(quoteLiteral(password))")
            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = password
            let url = try #require(components.string)
            let output: GodwitProcess.Output
            do {
                output = try await verify(Self.base, url: url).output
                try await admin.execute("DROP ROLE \(quoteIdentifier(role))")
                await admin.close()
            } catch {
                _ = try? await admin.execute("DROP ROLE IF EXISTS \(quoteIdentifier(role))")
                await admin.close()
                throw error
            }
            #expect(output.status == 1)
            #expect(
                output.stderr.hasPrefix(
                    "error: migrate verify needs a scratch database beside the one given, and role \"\(role)\" may not create one: it needs the CREATEDB privilege (ALTER ROLE \"\(role)\" CREATEDB)"
                ),
                "\(output.stderr)")
            #expect(output.stderr.contains("permission denied to create database (SQLSTATE 42501)"))
            #expect(output.stderr.split(separator: "\n").count == 1)
            #expect(!output.stderr.contains(password) && !output.stdout.contains(password))
        }
    }
}
