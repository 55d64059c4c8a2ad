import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Runs one of the ops/ procedures with bash, against `url`, using the built executable.
/// `directory` is where it runs (its ops/ folder is the one run), the package's folder by default.
func runOps(
    _ script: String, _ arguments: [String], url: String, environment extra: [String: String] = [:],
    directory: String? = nil
) async throws -> (status: Int32, output: String) {
    var environment = ProcessInfo.processInfo.environment
    environment["DATABASE_URL"] = url
    environment["GODWIT"] = GodwitProcess.executable
    environment.merge(extra) { _, new in new }
    return try await runProgram(
        "/bin/bash", ["ops/\(script)"] + arguments, environment: environment, directory: directory)
}

/// One at a time: each runs several godwit processes, pg_dump and pg_restore, and together
/// they would starve the suites beside them of the machine's two cores.
@Suite("ops procedures", .serialized)
struct OpsScriptTests {
    /// Every shell script under ops/ (a `#!` line naming bash or sh, or a `.sh` file) passes
    /// `bash -n`, and every Python file parses: the benchmarks are not run by the suite, so this
    /// is what catches a typo in them. A deliberately broken script proves the check can fail.
    @Test func everyOpsScriptParses() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../ops").standardizedFileURL.path
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).sorted()
        var shell: [String] = []
        var python: [String] = []
        for file in files {
            let path = root + "/" + file
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let firstLine = text.prefix { $0 != "\n" }
            if file.hasSuffix(".sh")
                || (firstLine.hasPrefix("#!") && (firstLine.hasSuffix("bash") || firstLine.hasSuffix("/sh")))
            {
                shell.append(path)
            } else if file.hasSuffix(".py") {
                python.append(path)
            }
        }
        #expect(shell.contains(root + "/bench/backfill") && shell.contains(root + "/lib-postgres.sh"), "\(shell)")
        #expect(shell.contains(root + "/bench/change"), "\(shell)")
        #expect(python.contains(root + "/bench/band_app.py"), "\(python)")
        for path in shell {
            let checked = try await runProgram("/bin/bash", ["-n", path])
            #expect(checked.status == 0, "bash -n \(path): \(checked.output)")
        }
        for path in python {
            let checked = try await runProgram(
                "/usr/bin/env",
                ["python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", path])
            #expect(checked.status == 0, "\(path) does not parse: \(checked.output)")
        }

        let work = try TemporaryDirectory()
        defer { work.delete() }
        let broken = try work.write("broken", "#!/usr/bin/env bash\nif true; then\n  echo missing fi\n")
        #expect(try await runProgram("/bin/bash", ["-n", broken]).status != 0)
    }

    /// ops/package checks what it packs: the test build links the Swift runtime from the
    /// toolchain's folder, so packaging it is refused and no tarball is written. (A release
    /// build, which links it statically, passes the same check; ops/package builds one.)
    @Test func packagingRefusesABinaryThatNeedsTheToolchain() async throws {
        let out = try TemporaryDirectory()
        defer { out.delete() }
        let packaged = try await runOps(
            "package", [], url: "", environment: ["GODWIT_BIN": GodwitProcess.executable, "OUT": out.path])
        #expect(packaged.status == 1, "\(packaged.output)")
        #expect(packaged.output.contains("needs libraries a server without Swift does not have"), "\(packaged.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }

    /// The tarball carries the alerting rules beside the scrape configuration that loads them.
    /// The binary packed is a small C program (no Swift library, so the checks pass), made with
    /// the C compiler the toolchain brings.
    @Test func packageCarriesThePrometheusRules() async throws {
        let work = try TemporaryDirectory()
        defer { work.delete() }
        let source = try work.write("fake.c", "#include <stdio.h>\nint main(void) { puts(\"9.9.9\"); return 0; }\n")
        let compiler = ["/usr/bin/cc", "/opt/swift/usr/bin/clang", "/usr/bin/clang"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        let cc = try #require(compiler, "no C compiler to build the stand-in binary")
        let built = try await runProgram(cc, [source, "-o", work.path + "/godwit"])
        #expect(built.status == 0, "\(built.output)")
        try FileManager.default.createDirectory(atPath: work.path + "/out", withIntermediateDirectories: true)
        let packaged = try await runOps(
            "package", [], url: "", environment: ["GODWIT_BIN": work.path + "/godwit", "OUT": work.path + "/out"])
        #expect(packaged.status == 0, "\(packaged.output)")
        let tarball = packaged.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(tarball.hasSuffix(".tar.gz"), "\(packaged.output)")
        let listed = try await runProgram("/bin/tar", ["-tzf", tarball])
        #expect(listed.status == 0, "\(listed.output)")
        let entries = listed.output.split(separator: "\n").map {
            $0.split(separator: "/", maxSplits: 1).last.map(String.init) ?? ""
        }
        #expect(entries.contains("ops/prometheus-rules.yml"), "\(listed.output)")
        #expect(entries.contains("ops/prometheus.yml"), "\(listed.output)")
    }

    @Test func migrateSafelyThenRollBackByRevertAndByRestore() async throws {
        let backups = try TemporaryDirectory()
        defer { backups.delete() }
        try await withTestDatabase { db in
            let migrated = try await runOps("migrate-safely", ["--backup-dir", backups.path], url: db.url)
            #expect(migrated.status == 0, "\(migrated.output)")
            #expect(migrated.output.contains("migrate-safely: done. Backup: \(backups.path)/backup-"))
            let conn = try await db.connect()
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 6)

            let reverted = try await runOps("rollback-migration", ["--backup-dir", backups.path], url: db.url)
            #expect(reverted.status == 0, "\(reverted.output)")
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 5)

            // A revert past the irreversible migration is refused before any backup, and names
            // the backup taken before the migrations it would revert (migrate-safely's).
            let first = try await conn.query("SELECT file FROM godwit.backups ORDER BY id LIMIT 1").first!.string(
                "file")
            let backupsBefore = try await conn.query("SELECT count(*) AS n FROM godwit.backups").first!.int("n")
            let refused = try await runOps(
                "rollback-migration", ["--target-version", "0", "--backup-dir", backups.path], url: db.url)
            #expect(refused.status == 1)
            #expect(
                refused.output.contains(
                    "STOPPED: cannot revert: migration 20240101000200 (create webhooks) has no .down.sql"),
                "\(refused.output)")
            #expect(
                refused.output.contains(
                    "To undo migration 20240101000000 instead, restore the backup taken before it: ops/rollback-migration --restore \(first)"
                ),
                "\(refused.output)")
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.backups").first!.int("n") == backupsBefore)

            // The first backup was of the empty database: restoring it empties the schema.
            let restored = try await runOps(
                "rollback-migration", ["--restore", first, "--backup-dir", backups.path], url: db.url)
            #expect(restored.status == 0, "\(restored.output)")
            #expect(try await conn.query("SELECT to_regclass('media') IS NULL AS gone").first?.bool("gone") == true)
            await conn.close()
        }
    }

    @Test func migrateSafelyStopsAtAFailureWithTheRollbackCommand() async throws {
        let backups = try TemporaryDirectory()
        let empty = try TemporaryDirectory()
        defer {
            backups.delete()
            empty.delete()
        }
        try await withTestDatabase { db in
            let result = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", empty.path], url: db.url)
            #expect(result.status == 0, "an empty source migrates nothing: \(result.output)")
            let unreachable = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path],
                url: "postgres://postgres@127.0.0.1:1/x?connect_timeout=1")
            #expect(unreachable.status == 1)
            #expect(
                unreachable.output.contains("STOPPED: lint refused the pending migrations (above): nothing was changed")
            )
        }
    }

    @Test func migrateSafelyStopsAtALintFindingBeforeTheBackupWithNothingChanged() async throws {
        let backups = try TemporaryDirectory()
        let source = try TemporaryDirectory()
        defer {
            backups.delete()
            source.delete()
        }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE media (id bigint PRIMARY KEY, title text)")
            try "CREATE INDEX media_title ON media (title);\n".write(
                toFile: source.path + "/1_title_index.sql", atomically: true, encoding: .utf8)
            let refused = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path, "--lock-timeout", "1s"],
                url: db.url)
            #expect(refused.status == 1)
            #expect(refused.output.contains("non-concurrent-index"), "\(refused.output)")
            #expect(
                refused.output.contains("STOPPED: lint refused the pending migrations (above): nothing was changed"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).isEmpty)
            #expect(
                try await conn.query("SELECT to_regclass('_sqlx_migrations') IS NULL AS none").first?.bool("none")
                    == true)

            // Accepted with a reason, it runs, under the lock timeout given.
            try "-- godwit:allow non-concurrent-index media is tiny\nCREATE INDEX media_title ON media (title);\n"
                .write(
                    toFile: source.path + "/1_title_index.sql", atomically: true, encoding: .utf8)
            let migrated = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path, "--lock-timeout", "1s"],
                url: db.url)
            #expect(migrated.status == 0, "\(migrated.output)")
            #expect(
                try await conn.query("SELECT to_regclass('media_title') IS NOT NULL AS built").first?.bool("built")
                    == true)
            await conn.close()
        }
    }

    /// The newest migration has no down: the script checks first, takes no backup, changes
    /// nothing, and names the backup taken before that migration, not one taken after it.
    @Test func rollbackOfAnIrreversibleMigrationNamesTheBackupTakenBeforeIt() async throws {
        let backups = try TemporaryDirectory()
        let source = try TemporaryDirectory()
        defer {
            backups.delete()
            source.delete()
        }
        try await withTestDatabase { db in
            try source.write("1_add_notes.up.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);\n")
            try source.write("1_add_notes.down.sql", "DROP TABLE notes;\n")
            let first = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(first.status == 0, "\(first.output)")
            try source.write("2_fill_notes.sql", "INSERT INTO notes VALUES (1);\n")
            let second = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(second.status == 0, "\(second.output)")
            let conn = try await db.connect()
            let before = try await conn.query(
                "SELECT file FROM godwit.backups WHERE reason = 'before migration 2 (fill notes)'"
            ).rows.map { try $0.string("file") }
            #expect(before.count == 1)
            let count = try await conn.query("SELECT count(*) AS n FROM godwit.backups").first!.int("n")

            let refused = try await runOps(
                "rollback-migration", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(refused.status == 1)
            let stopped = refused.output.split(separator: "\n").filter { $0.contains("STOPPED") }
            #expect(stopped.count == 1, "\(refused.output)")
            #expect(
                stopped.first?.contains(
                    "cannot revert: migration 2 (fill notes) has no .down.sql") == true, "\(refused.output)")
            #expect(
                stopped.first?.contains(
                    "To undo migration 2 instead, restore the backup taken before it: ops/rollback-migration --restore \(before.first ?? "?")"
                ) == true,
                "\(refused.output)")
            #expect(
                try await conn.query("SELECT count(*) AS n FROM godwit.backups").first!.int("n") == count,
                "no backup taken")
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 2)

            // backup list says why each was taken, and of which database.
            let listed = try await GodwitCommand.run(["backup", "list", "-D", db.url])
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains("database \(db.name)  before migration 2 (fill notes)"), "\(listed.stdout)")
            #expect(listed.stdout.contains("database \(db.name)  before migration 1 (add notes)"), "\(listed.stdout)")

            // Without a backup before the migration, it says that there is none.
            try await conn.query("UPDATE godwit.backups SET reason = 'by hand'")
            let none = try await runOps(
                "rollback-migration", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(none.status == 1)
            #expect(
                none.output.contains("No backup taken before migration 2 is recorded in godwit.backups"),
                "\(none.output)")
            await conn.close()
        }
    }

    /// Every backup records why: by hand, before a migration run (alone or several), before a
    /// rollback.
    @Test func backupsRecordWhyTheyWereTaken() async throws {
        let backups = try TemporaryDirectory()
        let source = try TemporaryDirectory()
        defer {
            backups.delete()
            source.delete()
        }
        try await withTestDatabase { db in
            try source.write("1_add_notes.up.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);\n")
            try source.write("1_add_notes.down.sql", "DROP TABLE notes;\n")
            try source.write("2_add_tags.up.sql", "CREATE TABLE tags (id bigint PRIMARY KEY);\n")
            try source.write("2_add_tags.down.sql", "DROP TABLE tags;\n")
            let byHand = try await GodwitCommand.run(["backup", "create", "-D", db.url, "--dir", backups.path])
            #expect(byHand.status == 0, "\(byHand.stderr)")
            let run = try await GodwitCommand.run([
                "migrate", "run", "-D", db.url, "--source", source.path, "--backup", "--backup-dir", backups.path,
            ])
            #expect(run.status == 0, "\(run.stderr)")
            let reverted = try await runOps(
                "rollback-migration", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(reverted.status == 0, "\(reverted.output)")
            let conn = try await db.connect()
            let reasons = try await conn.query("SELECT reason, database_name FROM godwit.backups ORDER BY id").rows.map
            {
                (try $0.string("reason"), try $0.string("database_name"))
            }
            await conn.close()
            #expect(
                reasons.map(\.0) == [
                    "by hand", "before migrations 1 (add notes) to 2 (add tags)", "before rollback of 2",
                ])
            #expect(reasons.allSatisfy { $0.1 == db.name })
        }
    }

    /// migrate-safely runs migrate verify when every pending migration has a down, and stops
    /// when a down does not undo its up; with an irreversible one pending, it says it skipped it.
    @Test func migrateSafelyVerifiesReversibleMigrations() async throws {
        let backups = try TemporaryDirectory()
        let source = try TemporaryDirectory()
        defer {
            backups.delete()
            source.delete()
        }
        try await withTestDatabase { db in
            try source.write("1_add_notes.up.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);\n")
            // A down that forgets the table: verify must catch it, before any backup.
            try source.write("1_add_notes.down.sql", "SELECT 1;\n")
            let refused = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(refused.status == 1, "\(refused.output)")
            #expect(refused.output.contains("==> 3/6 godwit migrate verify"), "\(refused.output)")
            #expect(
                refused.output.contains("STOPPED: migrate verify found a down that does not undo its up"),
                "\(refused.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).isEmpty)

            try source.write("1_add_notes.down.sql", "DROP TABLE notes;\n")
            let verified = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(verified.status == 0, "\(verified.output)")
            #expect(verified.output.contains("ok 1/add notes: down restores the schema"), "\(verified.output)")

            try source.write("2_fill_notes.sql", "INSERT INTO notes VALUES (1);\n")
            let skipped = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path], url: db.url)
            #expect(skipped.status == 0, "\(skipped.output)")
            #expect(
                skipped.output.contains(
                    "migrate-safely: skipped godwit migrate verify: pending migrations without a .down.sql cannot be verified or reverted: 2 (fill notes)"
                ),
                "\(skipped.output)")
        }
    }

    /// After ops/demo, godwit run from the demo's folder reaches its database: the demo printed
    /// the URL and wrote ./.env; it leaves an .env naming another database alone, and never
    /// writes or prints a password.
    @Test func demoLeavesTheDatabaseWhereGodwitFindsIt() async throws {
        let checkout = try TemporaryDirectory(prefix: "godwit-demo")
        defer { checkout.delete() }
        for folder in ["ops", "migrations", "jobs"] {
            try FileManager.default.copyItem(atPath: folder, toPath: checkout.path + "/" + folder)
        }
        try await withTestDatabase { db in
            let environment = ["GODWIT_BIN": GodwitProcess.executable, "PGPASSFILE": TestPasswordFile.path]
            let demo = try await runOps(
                "demo", ["--rows", "300"], url: db.url, environment: environment, directory: checkout.path)
            #expect(demo.status == 0, "\(demo.output)")
            #expect(demo.output.contains("==> the demo database: \(db.url)"), "\(demo.output)")
            #expect(demo.output.contains("wrote ./.env: DATABASE_URL=\(db.url)"), "\(demo.output)")
            let dotenv = try String(contentsOfFile: checkout.path + "/.env", encoding: .utf8)
            #expect(dotenv == "DATABASE_URL=\(db.url)\n")
            let mode =
                try FileManager.default.attributesOfItem(atPath: checkout.path + "/.env")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            // The README's next step, from that folder, with no DATABASE_URL in the environment.
            let list = try await GodwitCommand.run(["job", "list"], directory: checkout.path)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains("backfill media.title"), "\(list.stdout)")

            // An .env that names another database is left as it is, and the demo says so.
            try "DATABASE_URL=postgres://elsewhere/db\n".write(
                toFile: checkout.path + "/.env", atomically: true, encoding: .utf8)
            let other = try await runOps(
                "demo", ["--rows", "300"], url: db.url, environment: environment, directory: checkout.path)
            #expect(other.status == 0, "\(other.output)")
            #expect(
                other.output.contains("./.env exists and says DATABASE_URL=postgres://elsewhere/db: left as it is"),
                "\(other.output)")
            #expect(
                try String(contentsOfFile: checkout.path + "/.env", encoding: .utf8)
                    == "DATABASE_URL=postgres://elsewhere/db\n")

            // A URL with a password: shown without it, not written.
            try FileManager.default.removeItem(atPath: checkout.path + "/.env")
            let secret = "Zq7-not-shown"
            guard var parts = URLComponents(string: db.url) else { throw TestSetupError(message: "bad test URL") }
            parts.password = secret
            let withPassword = try await runOps(
                "demo", ["--rows", "300"], url: parts.string ?? "", environment: environment, directory: checkout.path)
            #expect(withPassword.status == 0, "\(withPassword.output)")
            #expect(!withPassword.output.contains(secret), "\(withPassword.output)")
            #expect(withPassword.output.contains("(password left out)"), "\(withPassword.output)")
            #expect(!FileManager.default.fileExists(atPath: checkout.path + "/.env"))
        }
    }
}
