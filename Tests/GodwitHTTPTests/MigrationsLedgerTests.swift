import Foundation
import GodwitHTTP
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The dashboard and `/metrics` read the migrations ledger that sqlx.toml's `table-name` names,
/// never a literal `_sqlx_migrations`.
@Suite("Migrations ledger named by sqlx.toml")
struct MigrationsLedgerTests {
    @Test(
        "A ledger named by sqlx.toml's table-name shows on the migrations page and in /metrics, with and without a folder; a decoy _sqlx_migrations is not read",
        arguments: [false, true])
    func customLedger(withFolder: Bool) async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-http-ledger")
        defer { folder.delete() }
        let toml = try folder.write(
            "sqlx.toml", "[migrate]\ncreate-schemas = [\"ledgers\"]\ntable-name = \"ledgers.applied\"\n")
        try folder.write("db/1_first_table.sql", "CREATE TABLE first_table (id bigint PRIMARY KEY);\n")
        try folder.write("db/2_second_table.sql", "CREATE TABLE second_table (id bigint PRIMARY KEY);\n")
        let config = try MigrationConfig.load(path: toml)
        try await withOperations(configure: {
            $0.migrationConfig = config
            if withFolder { $0.migrationsDirectory = folder.path + "/db" }
        }) { database, _, client in
            let connection = try await database.connect()
            try await Migrator(directory: folder.path + "/db", config: config).run(on: connection)
            // A ledger of the default name that says something else: read, it would show
            // version 99 and no applied migration of the folder.
            try await connection.execute(
                """
                CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
                    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
                    checksum bytea NOT NULL, execution_time bigint NOT NULL);
                INSERT INTO _sqlx_migrations VALUES (99, 'decoy', now(), true, '\\x00', 1);
                """)
            #expect(try await connection.query("SELECT count(*) AS n FROM ledgers.applied").first?.int("n") == 2)
            await connection.close()

            try await client.execute(uri: "/migrations", method: .get) { response in
                let page = response.text
                #expect(response.status == .ok)
                #expect(page.contains("second table") && page.contains(">installed<"), "\(page)")
                #expect(!page.contains("decoy"), "the page read _sqlx_migrations: \(page)")
                #expect(!page.contains(">pending<"), "applied shown as pending: \(page)")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = response.text
                #expect(text.contains("godwit_migrations_applied 2"), "\(text)")
                if withFolder { #expect(text.contains("godwit_migrations_pending 0"), "\(text)") }
                #expect(text.contains("godwit_migration_last_duration_seconds"), "\(text)")
            }
        }
    }
}
