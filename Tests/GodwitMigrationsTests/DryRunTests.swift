import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("migrate run/revert --dry-run shows the SQL")
struct DryRunTests {
    /// A multi-statement no-transaction file: each statement as it would be sent on its own,
    /// after the session's lock_timeout; nothing is run, not even the ledger created.
    @Test func aNoTransactionFileIsShownStatementByStatementAndNothingRuns() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_table.sql", "CREATE TABLE t (id int, note text);\n")
        let index = try dir.write(
            "2_index.sql",
            """
            -- no-transaction
            CREATE INDEX CONCURRENTLY t_id ON t (id);
            -- the second one; a ';' in a string stays in its statement
            UPDATE t SET note = 'a;b'
              WHERE id = 1;
            CREATE INDEX CONCURRENTLY t_note ON t (note);

            """)
        try await withTestDatabase { db in
            let run = try await GodwitCommand.run(
                [
                    "migrate", "run", "--dry-run", "--lock-timeout", "1500ms", "--lock-retries", "4", "--source",
                    dir.path, "-D", db.url,
                ])
            #expect(run.status == 0, "\(run.stderr)")
            let checksum2 = try MigrationSource.load(directory: dir.path).up(for: 2)!.checksumHex
            let expectedIndex = """
                Can apply 2/migrate index (0ns)
                -- \(index): -- no-transaction: 3 statements, each sent on its own outside a transaction; lock_timeout 1.5 s, a statement that times out is rolled back and tried again up to 4 times
                INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (2, 'index', FALSE, '\\x\(checksum2)', -1);
                SELECT pg_catalog.set_config('lock_timeout', '1500ms', false);
                -- line 2:
                CREATE INDEX CONCURRENTLY t_id ON t (id);
                -- line 4:
                UPDATE t SET note = 'a;b'
                  WHERE id = 1;
                -- line 6:
                CREATE INDEX CONCURRENTLY t_note ON t (note);
                UPDATE _sqlx_migrations SET success = TRUE, execution_time = <elapsed nanoseconds> WHERE version = 2;

                """
            #expect(run.stdout.hasSuffix(expectedIndex), "\(run.stdout)")
            #expect(
                run.stdout.hasPrefix(
                    "Can apply 1/migrate table (0ns)\n-- \(dir.path)/1_table.sql: one transaction, the file sent as one message; lock_timeout 1.5 s, the transaction is rolled back and tried again up to 4 times\nBEGIN;\nSET LOCAL lock_timeout = '1500ms';\n-- the file:\nCREATE TABLE t (id int, note text);\nINSERT INTO _sqlx_migrations"
                ))
            let conn = try await db.connect()
            for relation in ["t", "_sqlx_migrations"] {
                #expect(
                    try await conn.query("SELECT to_regclass($1) IS NULL AS absent", [relation]).first?.bool("absent")
                        == true)
            }
            await conn.close()
        }
    }

    @Test func revertDryRunShowsTheDownWithoutALockTimeoutWhenOff() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_t.up.sql", "CREATE TABLE t (id int);")
        let down = try dir.write(
            "1_t.down.sql", "-- no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\nDROP TABLE t;\n")
        try await withTestDatabase { db in
            let base = ["--source", dir.path, "-D", db.url]
            #expect(try await GodwitCommand.run(["migrate", "run"] + base).status == 0)
            let revert = try await GodwitCommand.run(["migrate", "revert", "--dry-run", "--lock-timeout", "0"] + base)
            #expect(revert.status == 0, "\(revert.stderr)")
            #expect(
                revert.stdout == """
                    Can apply 1/revert t (0ns)
                    -- \(down): -- no-transaction: 2 statements, each sent on its own outside a transaction; no lock_timeout (--lock-timeout 0)
                    -- line 2:
                    DROP INDEX CONCURRENTLY IF EXISTS t_id;
                    -- line 3:
                    DROP TABLE t;
                    DELETE FROM _sqlx_migrations WHERE version = 1;

                    """)
            let conn = try await db.connect()
            #expect(
                try await conn.query("SELECT to_regclass('t') IS NOT NULL AS present").first?.bool("present") == true)
            await conn.close()
        }
    }
}
