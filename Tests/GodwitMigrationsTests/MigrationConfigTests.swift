import Crypto
import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// sqlx.toml honoured by the executable, against PostgreSQL.
@Suite("sqlx.toml (the executable)")
struct MigrationConfigCommandTests {
    /// sqlx's documented rule, computed here without Godwit: SHA-384 of the file's bytes with
    /// every ignored character removed (all of them one byte in UTF-8 here).
    static func sqlxChecksum(_ bytes: [UInt8], ignoring ignored: Set<UInt8>) -> [UInt8] {
        Array(SHA384.hash(data: bytes.filter { !ignored.contains($0) }))
    }

    /// A CRLF checkout (sqlx #2659) with `ignored-chars = ["\r"]`: the ledger gets sqlx's
    /// checksums, and the same files checked out with LF are not "modified".
    @Test func aCRLFCheckoutWithIgnoredCarriageReturnsIsNotModified() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let config = try dir.write("sqlx.toml", "[migrate]\nignored-chars = [\"\\r\"]\n")
        let files = [
            "1_users.sql": "CREATE TABLE users (\r\n    id int\r\n);\r\n",
            "2_index.sql": "-- no-transaction\r\nCREATE INDEX CONCURRENTLY users_id ON users (id);\r\n",
        ]
        for (name, text) in files { try dir.write("migrations/\(name)", text) }
        try await withTestDatabase { db in
            // The files named, so the command runs in-process; finding ./sqlx.toml is
            // MigrationConfigTests.theFileComesFromConfigThenTheCurrentDirectoryThenDefaults's.
            let source = ["--source", dir.path + "/migrations"]
            let run = try await GodwitCommand.run(["migrate", "run", "-D", db.url, "--config", config] + source)
            #expect(run.status == 0, "\(run.stderr)")
            let conn = try await db.connect()
            let rows = try await conn.query("SELECT version, checksum FROM _sqlx_migrations ORDER BY version").rows
            let expected = ["1_users.sql", "2_index.sql"].map {
                Self.sqlxChecksum(Array(files[$0]!.utf8), ignoring: [0x0D])
            }
            #expect(try rows.map { try $0.bytes("checksum") } == expected)
            // The raw bytes' hash (sqlx 0.8 and Godwit without the setting) differs.
            #expect(expected[0] != Array(SHA384.hash(data: Array(files["1_users.sql"]!.utf8))))

            // The same files checked out with LF.
            for (name, text) in files {
                try dir.write("migrations/\(name)", text.replacingOccurrences(of: "\r\n", with: "\n"))
            }
            let info = try await GodwitCommand.run(["migrate", "info", "-D", db.url, "--config", config] + source)
            #expect(info.stdout == "1/installed users\n2/installed index\n", "\(info.stderr)")
            let again = try await GodwitCommand.run(["migrate", "run", "-D", db.url, "--config", config] + source)
            #expect(again.status == 0 && again.stdout.isEmpty, "\(again.stderr)")

            // The CRLF checkout again: accepted with the setting, "modified" without it (sqlx
            // #2659), so the setting is what makes the check pass.
            for (name, text) in files { try dir.write("migrations/\(name)", text) }
            let crlfAgain = try await GodwitCommand.run(["migrate", "run", "-D", db.url, "--config", config] + source)
            #expect(crlfAgain.status == 0 && crlfAgain.stdout.isEmpty, "\(crlfAgain.stderr)")
            let without = try await GodwitCommand.run(
                ["migrate", "run", "-D", db.url, "--config", "/dev/null"] + source)
            #expect(without.status == 1)
            #expect(without.stderr == "error: migration 1 was previously applied but has been modified\n")
            await conn.close()
        }
    }

    /// sqlx's `examples/postgres/multi-tenant` layout: the app's folder moved to
    /// `src/migrations` by its sqlx.toml, and two crates with a schema and a ledger each.
    @Test func theMultiTenantExampleKeepsThreeLedgersInThreeSchemas() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(
            "sqlx.toml", "[migrate]\n# The app's migrations live under src/.\nmigrations-dir = \"src/migrations\"\n")
        try dir.write(
            "src/migrations/01_setup.sql", "CREATE TABLE app_setting (name text PRIMARY KEY, value text);\n")
        try dir.write(
            "src/migrations/02_purchase.sql",
            """
            CREATE TABLE purchase (
                purchase_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id bigint NOT NULL REFERENCES accounts.account (account_id),
                payment_id bigint NOT NULL REFERENCES payments.payment (payment_id)
            );

            """)
        let accountsToml = """
            [migrate]
            create-schemas = ["accounts"]
            table-name = "accounts._sqlx_migrations"

            [macros.table-overrides.'accounts.account']
            'account_id' = "crate::AccountId"

            """
        try dir.write("accounts/sqlx.toml", accountsToml)
        try dir.write(
            "accounts/migrations/01_setup.sql", "CREATE DOMAIN accounts.email AS text CHECK (VALUE LIKE '%@%');\n")
        try dir.write(
            "accounts/migrations/02_account.sql",
            "CREATE TABLE accounts.account (account_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email accounts.email NOT NULL UNIQUE);\n"
        )
        try dir.write(
            "accounts/migrations/03_session.sql",
            "CREATE TABLE accounts.session (token text PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts.account);\n"
        )
        try dir.write(
            "payments/sqlx.toml",
            "[migrate]\ncreate-schemas = [\"payments\"]\ntable-name = \"payments._sqlx_migrations\"\n")
        try dir.write(
            "payments/migrations/01_setup.sql", "CREATE TYPE payments.payment_status AS ENUM ('pending', 'paid');\n")
        try dir.write(
            "payments/migrations/02_payment.sql",
            """
            CREATE TABLE payments.payment (
                payment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id bigint NOT NULL REFERENCES accounts.account (account_id),
                status payments.payment_status NOT NULL DEFAULT 'pending'
            );

            """)
        try await withTestDatabase { db in
            // As the example's README runs them: accounts, payments, then the app.
            for folder in ["accounts", "payments", ""] {
                let run = try await GodwitCommand.run(
                    ["migrate", "run", "-D", db.url], directory: dir.path + "/" + folder)
                #expect(run.status == 0, "\(folder): \(run.stderr)")
                #expect(run.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("Applied ") }, "\(run.stdout)")
            }
            let conn = try await db.connect()
            let ledgers = try await conn.query(
                """
                SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relname = '_sqlx_migrations' ORDER BY 1
                """
            ).rows.map { try $0.string("schema") }
            #expect(ledgers == ["accounts", "payments", "public"])
            for (table, count) in [
                ("accounts._sqlx_migrations", 3), ("payments._sqlx_migrations", 2), ("public._sqlx_migrations", 2),
            ] {
                let versions = try await conn.query("SELECT version FROM \(table) WHERE success ORDER BY version").rows
                    .map { try $0.int64("version") }
                #expect(versions == Array(1...Int64(count)), "\(table)")
            }
            // Each folder applied once: a second round applies nothing, and info is right for each.
            let expectedInfo = [
                "accounts": "1/installed setup\n2/installed account\n3/installed session\n",
                "payments": "1/installed setup\n2/installed payment\n",
                "": "1/installed setup\n2/installed purchase\n",
            ]
            for folder in ["accounts", "payments", ""] {
                let again = try await GodwitCommand.run(
                    ["migrate", "run", "-D", db.url], directory: dir.path + "/" + folder)
                #expect(again.status == 0 && again.stdout.isEmpty, "\(folder): \(again.stdout) \(again.stderr)")
                let info = try await GodwitCommand.run(
                    ["migrate", "info", "-D", db.url], directory: dir.path + "/" + folder)
                #expect(info.stdout == expectedInfo[folder], "\(folder): \(info.stderr)")
            }
            // verify makes the crate's schemas in its scratch database before the first up.
            let verify = try await GodwitCommand.run(
                ["migrate", "verify", "-D", db.url], directory: dir.path + "/accounts")
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout.contains("-- 3/session: irreversible"), "\(verify.stdout)")
            // From the top, --config names a crate's file; migrations-dir is relative to the
            // current directory, as in sqlx-cli, so --source points at the crate's folder.
            let fromTop = try await GodwitCommand.run(
                ["migrate", "info", "-D", db.url, "--config", "accounts/sqlx.toml", "--source", "accounts/migrations"],
                directory: dir.path)
            #expect(fromTop.stdout == expectedInfo["accounts"], "\(fromTop.stderr)")
            await conn.close()
        }
    }

    @Test func aBadConfigIsOneLineAndNothingRuns() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("sqlx.toml", "[migrate]\ntable-name = \"ledger\"\ncreate-schema = [\"x\"]\n")
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);")
        try await withTestDatabase { db in
            let run = try await GodwitCommand.run(["migrate", "run", "-D", db.url], directory: dir.path)
            #expect(run.status == 1)
            #expect(
                run.stderr
                    == "error: sqlx.toml:3: unknown key `migrate.create-schema` (known: create-schemas, table-name, migrations-dir, ignored-chars, defaults)\n"
            )
            let conn = try await db.connect()
            #expect(try await conn.query("SELECT to_regclass('a') IS NULL AS absent").first?.bool("absent") == true)
            await conn.close()
        }
    }

    @Test func addFollowsTheConfigsDefaultsAndFlagsWin() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(
            "sqlx.toml",
            "[migrate]\nmigrations-dir = \"db\"\n[migrate.defaults]\nmigration-type = \"reversible\"\nmigration-versioning = \"sequential\"\n"
        )
        let first = try await GodwitCommand.run(["migrate", "add", "create users"], directory: dir.path)
        #expect(
            first.stdout == "Creating db/0001_create_users.up.sql\nCreating db/0001_create_users.down.sql\n",
            "\(first.stderr)")
        let simple = try await GodwitCommand.run(["migrate", "add", "--simple", "seed"], directory: dir.path)
        #expect(simple.stdout == "Creating db/0002_seed.sql\n", "\(simple.stderr)")
    }
}

/// `migrate lint` picks the pending migrations from sqlx.toml's ledger.
@Suite("sqlx.toml and migrate lint")
struct MigrationConfigLintTests {
    @Test func lintLooksAtTheConfiguredLedger() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let config = try dir.write(
            "sqlx.toml", "[migrate]\ncreate-schemas = [\"app\"]\ntable-name = \"app._sqlx_migrations\"\n")
        try dir.write("migrations/1_t.sql", "CREATE TABLE app.t (id int);")
        try dir.write("migrations/2_drop.sql", "ALTER TABLE app.t DROP COLUMN id;")
        let files = ["--config", config, "--source", dir.path + "/migrations"]
        try await withTestDatabase { db in
            #expect(try await GodwitCommand.run(["migrate", "run", "-D", db.url] + files).status == 0)
            // Both applied: nothing is pending in app._sqlx_migrations, so nothing to flag.
            let lint = try await GodwitCommand.run(["migrate", "lint", "-D", db.url] + files)
            #expect(lint.status == 0, "\(lint.stdout) \(lint.stderr)")
            #expect(!lint.stdout.contains("drop-column"), "\(lint.stdout)")
        }
    }

    /// A schema that create-schemas makes before migrating is made in the trace's scratch
    /// database too, so a migration into it is traced (here: an index on a table made in the
    /// same run, which locks nobody) instead of failing there for want of the schema.
    @Test func lintMakesTheConfiguredSchemasInItsTrace() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let config = try dir.write(
            "sqlx.toml", "[migrate]\ncreate-schemas = [\"app\"]\ntable-name = \"app._sqlx_migrations\"\n")
        try dir.write("migrations/1_t.sql", "CREATE TABLE app.t (id int);")
        try dir.write("migrations/2_index.sql", "CREATE INDEX t_id ON app.t (id);")
        try await withTestDatabase { db in
            let lint = try await GodwitCommand.run(
                ["migrate", "lint", "-D", db.url, "--config", config, "--source", dir.path + "/migrations"])
            #expect(lint.status == 0, "\(lint.stdout) \(lint.stderr)")
            #expect(lint.stdout == "no findings in 2 migrations\n", "\(lint.stdout) \(lint.stderr)")
        }
    }

    /// A ledger of another name in a schema of its own is left out of verify's snapshots, as
    /// `_sqlx_migrations` is: it is what verify drives, not what it checks.
    @Test func verifyLeavesAConfiguredLedgerOutOfItsSnapshots() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let config = try dir.write(
            "sqlx.toml", "[migrate]\ncreate-schemas = [\"ledgers\"]\ntable-name = \"ledgers.applied\"\n")
        try dir.write("migrations/1_items.up.sql", "CREATE TABLE items (id int PRIMARY KEY);\n")
        try dir.write("migrations/1_items.down.sql", "DROP TABLE items;\n")
        try await withTestDatabase { db in
            let verify = try await GodwitCommand.run(
                ["migrate", "verify", "-D", db.url, "--config", config, "--source", dir.path + "/migrations"])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.contains("ok 1/items: down restores the schema"), "\(verify.stdout)")
        }
    }

    // MARK: unknown sections

    /// `[migrat]` after `[migrate]`: its setting is not read, and the warning names the line of
    /// `[migrat]`, not of `[migrate]` (which contains the same letters).
    @Test func anUnknownSectionIsAWarningNamingTheFileAndLine() throws {
        let config = try MigrationConfig.parse(
            """
            [migrate]
            create-schemas = ["app"]

            [migrat]
            table-name = "other"

            [macros.preferred-crates]
            date-time = "chrono"
            """, path: "sqlx.toml")
        #expect(config.tableName == MigrationConfig.defaultTableName)
        #expect(config.createSchemas == ["app"])
        #expect(
            config.warnings == [
                "sqlx.toml:4: unknown section `migrat` is ignored (sqlx.toml's sections: common, drivers, macros, migrate)"
            ])
    }

    @Test(arguments: [
        ("x = 1\n", 1), ("[common]\n[[migrations]]\nx = 1\n", 2), ("migration.dir = \"db\"\n[common]\n", 1),
    ])
    func everyFormOfAnUnknownTopLevelKeyIsFound(text: String, line: Int) throws {
        let config = try MigrationConfig.parse(text, path: "f.toml")
        #expect(config.warnings.count == 1)
        #expect(config.warnings.first?.hasPrefix("f.toml:\(line): unknown section") == true, "\(config.warnings)")
    }

    @Test func sqlxsSectionsAreNotWarnedAbout() throws {
        let config = try MigrationConfig.parse(
            "[common]\n[drivers]\n[macros]\n[migrate]\ntable-name = \"t\"\n", path: "sqlx.toml")
        #expect(config.warnings.isEmpty)
    }

    /// The command prints the warning once on stderr and goes on.
    @Test func runWarnsOnceAboutAnUnknownSection() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("sqlx.toml", "[migrat]\ntable-name = \"other\"\n")
        try dir.write("migrations/1_t.sql", "CREATE TABLE t (id int);")
        try await withTestDatabase { db in
            let run = try await GodwitCommand.run(["migrate", "run", "-D", db.url], directory: dir.path)
            #expect(run.status == 0, "\(run.stderr)")
            let warnings = run.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
            #expect(
                warnings == [
                    "warning: sqlx.toml:1: unknown section `migrat` is ignored (sqlx.toml's sections: common, drivers, macros, migrate)"
                ])
        }
    }
}
