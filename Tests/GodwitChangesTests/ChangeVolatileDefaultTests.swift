import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// An old-side column whose default cannot be evaluated again to tell "left to its default" from
/// "written" (a volatile function, a sequence): in a BEFORE INSERT trigger both look the same.
/// Start moves such a default into the sync trigger for the change's life, so that the new
/// version can insert the new side alone and the old version can still leave the column to its
/// default; abort puts the default back.
@Suite("Volatile defaults on the old side")
struct ChangeVolatileDefaultTests {
    static let renameToken = """
        -- table: tokens
        -- add-column: api_token uuid = token
        -- drop-column: token = api_token
        """

    static let renameNumber = """
        -- table: tokens
        -- add-column: ticket bigint = number
        -- drop-column: number = ticket
        """

    static func createTokens(on conn: Connection) async throws {
        try await conn.execute(
            """
            CREATE TABLE tokens (
                id bigserial PRIMARY KEY,
                token uuid NOT NULL DEFAULT gen_random_uuid(),
                number bigserial,
                label text
            );
            INSERT INTO tokens (label) SELECT 'row ' || g FROM generate_series(1, 20) g;
            """)
    }

    static func defaultOf(_ column: String, on conn: Connection) async throws -> String? {
        try await conn.query(
            """
            SELECT pg_get_expr(d.adbin, d.adrelid) AS expr FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = 'tokens'::regclass AND a.attname = $1
            """, [column]
        ).first?["expr"]
    }

    @Test func bothVersionsInsertWhileAVolatileDefaultIsOnTheOldSide() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.createTokens(on: conn)
            _ = try await ChangeTests.start("rename_token", Self.renameToken, on: conn)
            // The new version writes the new side only: the old side follows it.
            let given = "5b0c8a3e-8f43-4f5e-9a53-0d6f3c1e2a10"
            try await conn.query("INSERT INTO tokens (api_token, label) VALUES ($1, 'new')", [given])
            let new = try await conn.query("SELECT token::text, api_token::text FROM tokens WHERE label = 'new'").first!
            #expect(new["token"] == given && new["api_token"] == given)
            // The old version leaves the column to its default: it gets one, and the new side follows.
            try await conn.execute("INSERT INTO tokens (label) VALUES ('old')")
            let old = try await conn.query(
                "SELECT token IS NOT NULL AS set, token = api_token AS same FROM tokens WHERE label = 'old'"
            ).first!
            #expect(try old.bool("set") && old.bool("same"))
            // Two rows left to the default get two values: it is evaluated per row, as a default is.
            try await conn.execute("INSERT INTO tokens (label) VALUES ('a'), ('b')")
            #expect(
                try await conn.query(
                    "SELECT count(DISTINCT token) AS n FROM tokens WHERE label IN ('a', 'b')"
                ).first!.int("n") == 2)
            // The old version writing its column explicitly still works.
            try await conn.query("INSERT INTO tokens (token, label) VALUES ($1, 'explicit')", [given])
            #expect(
                try await conn.query("SELECT api_token::text FROM tokens WHERE label = 'explicit'").first?[
                    "api_token"] == given)
            try await ChangeTests.backfill("rename_token", on: conn, table: "tokens")
            #expect(try await ChangeTests.disagreeing("rename_token", on: conn) == 0)
            await conn.close()
        }
    }

    @Test func aSequenceDefaultOnTheOldSideKeepsNumbering() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.createTokens(on: conn)
            _ = try await ChangeTests.start("rename_number", Self.renameNumber, on: conn)
            try await conn.execute("INSERT INTO tokens (ticket, label) VALUES (1000, 'new')")
            try await conn.execute("INSERT INTO tokens (label) VALUES ('old')")
            let rows = try await conn.query(
                "SELECT label, number, ticket FROM tokens WHERE label IN ('new', 'old') ORDER BY label")
            #expect(rows.rows.map { $0["number"] } == ["1000", "21"])
            #expect(rows.rows.map { $0["ticket"] } == ["1000", "21"])
            await conn.close()
        }
    }

    @Test func abortPutsTheDefaultBack() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.createTokens(on: conn)
            let before = try await Self.defaultOf("token", on: conn)
            #expect(before == "gen_random_uuid()")
            _ = try await ChangeTests.start("rename_token", Self.renameToken, on: conn)
            try await ChangeTests.manager().abort(name: "rename_token", on: conn)
            #expect(try await Self.defaultOf("token", on: conn) == before)
            try await conn.execute("INSERT INTO tokens (label) VALUES ('after')")
            await conn.close()
        }
    }

    @Test func aDefaultStableWithinTheTransactionStaysOnItsColumn() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await conn.execute(
                """
                CREATE TABLE tokens (id bigserial PRIMARY KEY, stamped timestamptz NOT NULL DEFAULT now(), label text);
                INSERT INTO tokens (label) VALUES ('before');
                """)
            _ = try await ChangeTests.start(
                "rename_stamped",
                """
                -- table: tokens
                -- add-column: created_at timestamptz = stamped
                -- drop-column: stamped = created_at
                """, on: conn)
            // now() is the same within a transaction, so the trigger tells a default from a write.
            #expect(try await Self.defaultOf("stamped", on: conn) == "now()")
            try await conn.execute("INSERT INTO tokens (created_at, label) VALUES ('2020-01-01', 'new')")
            #expect(
                try await conn.query("SELECT stamped = created_at AS same FROM tokens WHERE label = 'new'").first!
                    .bool("same"))
            await conn.close()
        }
    }
}
