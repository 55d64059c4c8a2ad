import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The `godwit migrate` executable as a person runs it: exit status, stdout, stderr.
@Suite("godwit migrate (the executable)")
struct MigrateCommandTests {
    @Test func outputMatchesSqlxAndErrorsAreOneLine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_create_things.up.sql", "CREATE TABLE things (id int);")
        try dir.write("1_create_things.down.sql", "DROP TABLE things;")
        try dir.write("2_broken.sql", "SELECT 1;\nSELEC 2;\n")
        try await withTestDatabase { db in
            let info = try await GodwitCommand.run(["migrate", "info", "--source", dir.path, "-D", db.url])
            #expect(info.status == 0)
            #expect(info.stdout == "1/pending create things\n2/pending broken\n")

            let run = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(run.status == 1)
            #expect(run.stdout.hasPrefix("Applied 1/migrate create things ("))
            let errorLines = run.stderr.split(separator: "\n")
            #expect(errorLines.count == 1)
            #expect(
                errorLines.first?.hasPrefix("error: migration 2 failed at \(dir.path)/2_broken.sql:2:1: syntax error")
                    == true)

            try dir.write("2_broken.sql", "SELECT 2;\n")
            let fixed = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(fixed.status == 0)
            #expect(fixed.stdout.hasPrefix("Applied 2/migrate broken ("))

            try dir.write("1_create_things.up.sql", "CREATE TABLE things (id bigint);")
            let modified = try await GodwitCommand.run(["migrate", "info", "--source", dir.path, "-D", db.url])
            let lines = modified.stdout.split(separator: "\n")
            #expect(lines.first == "1/installed (different checksum) create things")
            #expect(lines.dropFirst().first?.hasPrefix("applied migration had checksum ") == true)
            let refused = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(refused.status == 1)
            #expect(refused.stderr == "error: migration 1 was previously applied but has been modified\n")

            let json = try await GodwitCommand.run([
                "migrate", "info", "--format", "json", "--source", dir.path, "-D", db.url,
            ])
            let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(decoded?.map { $0["status"] as? String } == ["installed (different checksum)", "installed"])
        }
    }

    @Test func revertPrintsSqlxLinesAndSaysWhenThereIsNothing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.up.sql", "CREATE TABLE a (id int);")
        try dir.write("1_a.down.sql", "DROP TABLE a;")
        try await withTestDatabase { db in
            _ = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            let revert = try await GodwitCommand.run(["migrate", "revert", "--source", dir.path, "-D", db.url])
            #expect(revert.status == 0)
            #expect(revert.stdout.hasPrefix("Applied 1/revert a ("))
            let nothing = try await GodwitCommand.run(["migrate", "revert", "--source", dir.path, "-D", db.url])
            #expect(nothing.stdout == "No migrations available to revert\n")
        }
    }

    @Test func theDatabaseURLComesFromTheEnvironmentThenDotEnv() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);")
        try await withTestDatabase { db in
            try dir.write(".env", "# local settings\nexport DATABASE_URL=\"\(db.url)\"\n")
            let fromDotEnv = try await GodwitCommand.run(["migrate", "info"], directory: dir.path)
            #expect(fromDotEnv.status == 0, "\(fromDotEnv.stderr)")
            #expect(fromDotEnv.stdout == "1/pending a\n")

            let noDotEnv = try await GodwitCommand.run(["migrate", "info", "--no-dotenv"], directory: dir.path)
            #expect(noDotEnv.status == 1)
            #expect(noDotEnv.stderr.hasPrefix("error: no database given"))

            let bogus = "postgres://postgres@127.0.0.1:1/nothing"
            try dir.write(".env", "DATABASE_URL=\(bogus)\n")
            let fromEnvironment = try await GodwitCommand.run(
                ["migrate", "info"], environment: ["DATABASE_URL": db.url], directory: dir.path)
            #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")
        }
    }

    @Test func aPasswordIsNeverPrinted() async throws {
        let empty = try TemporaryDirectory()
        defer { empty.delete() }
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let secret = "pw-\(UInt32.random(in: 0...UInt32.max))"
            let role = "cli_\(UInt32.random(in: 0...UInt32.max))"
            try await admin.execute("CREATE ROLE \(quoteIdentifier(role)) LOGIN PASSWORD \(quoteLiteral(secret))")
            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = secret + "x"
            let wrong = try #require(components.string)
            let failed = try await GodwitCommand.run(
                [
                    "migrate", "info", "--log-level", "trace", "--connect-timeout", "0", "-D", wrong, "--source",
                    empty.path,
                ])
            #expect(failed.status == 1)
            #expect(failed.stderr.contains("password authentication failed"))
            #expect(!failed.stderr.contains(secret) && !failed.stdout.contains(secret))

            components.password = secret
            let good = try #require(components.string)
            let ok = try await GodwitCommand.run(
                ["migrate", "info", "--log-level", "trace", "-D", good, "--source", empty.path])
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect(!ok.stderr.contains(secret) && !ok.stdout.contains(secret))
            #expect(ok.stderr.contains("connecting"))
            try await admin.execute("DROP ROLE \(quoteIdentifier(role))")
            await admin.close()
        }
    }

    @Test func addCreatesFilesLikeSqlx() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let first = try await GodwitCommand.run(["migrate", "add", "-r", "create", "users"], directory: dir.path)
        #expect(first.status == 0)
        let created = first.stdout.split(separator: "\n").map { String($0.dropFirst("Creating ".count)) }
        #expect(created.count == 2)
        #expect(created[0].hasPrefix("migrations/2") && created[0].hasSuffix("_create_users.up.sql"))
        // The next one is reversible too, inferred from the newest.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/migrations")
        #expect(files.count == 2)
        let both = try await GodwitCommand.run(["migrate", "add", "--simple", "-r", "x"], directory: dir.path)
        #expect(both.status != 0)
        #expect(both.stderr.contains("--reversible and --simple"))
    }

    @Test func addInQuickSuccessionGivesGrowingVersions() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        var versions: [Int64] = []
        for description in ["one", "two", "three"] {
            let add = try await GodwitCommand.run(["migrate", "add", "--timestamp", description], directory: dir.path)
            #expect(add.status == 0, "\(add.stderr)")
            let name = add.stdout.dropFirst("Creating migrations/".count)
            versions.append(Int64(name.prefix { $0 != "_" }) ?? 0)
        }
        #expect(versions.count == 3 && versions == versions.sorted() && Set(versions).count == 3, "\(versions)")
    }

    /// libpq sends SQL as a C string, so before the refusal everything after a NUL was dropped
    /// and the migration recorded as applied.
    @Test(arguments: [
        ("", 2),
        ("-- no-transaction\n", 3),
    ])
    func aMigrationWithANulByteIsRefusedAndNothingIsApplied(prefix: String, line: Int) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_first.sql", "CREATE TABLE n0 (x int);")
        try dir.write(
            "2_x.sql",
            bytes: Array("\(prefix)CREATE TABLE n1 (x int);\n".utf8) + [0] + Array("\nCREATE TABLE n2 (x int);\n".utf8))
        try await withTestDatabase { db in
            let run = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(run.status == 1)
            #expect(
                run.stderr
                    == "error: \(dir.path)/2_x.sql:\(line): the file contains a NUL byte, which PostgreSQL cannot take (the SQL after it would be silently dropped); remove it\n"
            )
            #expect(run.stdout.isEmpty)
            let conn = try await db.connect()
            for relation in ["n0", "n1", "n2", "_sqlx_migrations"] {
                #expect(
                    try await conn.query("SELECT to_regclass($1) IS NULL AS absent", [relation]).first?.bool("absent")
                        == true, "\(relation)")
            }
            await conn.close()
        }
    }

    /// Against a database with `default_transaction_read_only = on`, the one line says what
    /// could not be done: the ledger, or which migration.
    @Test func aReadOnlyDatabaseNamesTheLedgerOrTheMigration() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withTestDatabase { db in
            // A session opened before the ALTER stays read-write, for setting things up.
            let conn = try await db.connect()
            try await conn.execute("ALTER DATABASE \(quoteIdentifier(db.name)) SET default_transaction_read_only = on")
            func run() async throws -> GodwitProcess.Output {
                try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            }
            try dir.write("1_create.sql", "CREATE TABLE a (id int);")
            let noLedger = try await run()
            #expect(noLedger.status == 1)
            #expect(
                noLedger.stderr
                    == "error: cannot create the migrations ledger _sqlx_migrations: cannot execute CREATE TABLE in a read-only transaction (SQLSTATE 25006)\n"
            )

            try await conn.execute(
                """
                CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
                    checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)
                """)
            let migration = try await run()
            #expect(migration.status == 1)
            #expect(
                migration.stderr
                    == "error: migration 1 failed at \(dir.path)/1_create.sql:1:1: cannot execute CREATE TABLE in a read-only transaction (SQLSTATE 25006)\n"
            )

            // A migration that only reads runs, and then cannot be recorded.
            try dir.remove("1_create.sql")
            try dir.write("2_read.sql", "SELECT 1;")
            let record = try await run()
            #expect(record.status == 1)
            #expect(
                record.stderr
                    == "error: migration 2 (\(dir.path)/2_read.sql) was rolled back: recording it in _sqlx_migrations failed: cannot execute INSERT in a read-only transaction (SQLSTATE 25006)\n"
            )

            try dir.remove("2_read.sql")
            try dir.write("3_read.sql", "-- no-transaction\nSELECT 1;")
            let outside = try await run()
            #expect(outside.status == 1)
            // Recorded as started before its first statement: that write fails, so nothing ran.
            #expect(
                outside.stderr.hasPrefix(
                    "error: migration 3 (\(dir.path)/3_read.sql) was not run: recording it as started in _sqlx_migrations failed: cannot execute INSERT in a read-only transaction"
                ),
                "\(outside.stderr)")
            #expect(outside.stderr.split(separator: "\n").count == 1)

            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 0)
            #expect(try await conn.query("SELECT to_regclass('a') IS NULL AS absent").first?.bool("absent") == true)
            await conn.close()
        }
    }
}
