import Foundation
import GodwitMigrations
import GodwitTestSupport
import Testing

/// What a migrations folder holds that sqlx passes over in silence: the folder itself missing,
/// names it skips, directories, links that lead nowhere, empty files.
@Suite("The migrations folder: nothing ignored in silence")
struct SourceFolderTests {
    // MARK: a missing folder

    @Test func aMissingFolderIsAnErrorNamingIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let error = try #require(throws: MigrationError.self) {
            try MigrationSource.load(directory: dir.path + "/nope")
        }
        #expect(error.code == .missingSource)
        #expect(error.message == "migrations folder \(dir.path)/nope does not exist")
    }

    /// Before, `run` exited 0 in silence and `check` said `ok: 0 migrations applied`.
    @Test func runAndCheckRefuseAMisspeltSource() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            for command in ["run", "check"] {
                let result = try await GodwitCommand.run(
                    ["migrate", command, "-D", f.db.url, "--source", "nope"], directory: f.dir.path)
                #expect(result.status == 1, "\(command): \(result.stdout)\(result.stderr)")
                #expect(result.stderr == "error: migrations folder nope does not exist\n", "\(command)")
                #expect(result.stdout == "", "\(command)")
            }
            #expect(try await f.exists("_sqlx_migrations") == false)
        }
    }

    @Test func runAndCheckRefuseAMissingMigrationsDirFromSqlxToml() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            try f.dir.write("sqlx.toml", "[migrate]\nmigrations-dir = \"nope\"\n")
            for command in ["run", "check"] {
                let result = try await GodwitCommand.run(["migrate", command, "-D", f.db.url], directory: f.dir.path)
                #expect(result.status == 1, "\(command): \(result.stdout)\(result.stderr)")
                #expect(result.stderr == "error: migrations folder nope does not exist\n", "\(command)")
                #expect(!result.stdout.contains("ok:"), "\(command)")
            }
            #expect(try await f.exists("_sqlx_migrations") == false)
        }
    }

    /// Every other command that reads the folder refuses the same way.
    @Test(arguments: [
        ["info"], ["revert"], ["verify"], ["lint"], ["baseline", "--target-version", "1"], ["repair"],
    ])
    func everyCommandThatReadsTheFolderRefusesAMissingOne(command: [String]) async throws {
        try await withFixture([:]) { f in
            let result = try await GodwitCommand.run(
                ["migrate"] + command + ["-D", f.db.url, "--source", "nope"], directory: f.dir.path)
            #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr == "error: migrations folder nope does not exist\n")
            #expect(try await f.exists("_sqlx_migrations") == false)
        }
    }

    // MARK: names sqlx skips, and directories: warnings

    @Test(arguments: ["1.sql", "2024-01-01-x.sql", "3_x.SQL", "20240101.up.sql"])
    func aNameThatLooksLikeAMigrationButIsNotReadIsAWarning(name: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("5_a.sql", "SELECT 1;")
        try dir.write(name, "SELECT 2;")
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.migrations.map(\.version) == [5])
        #expect(source.warnings.count == 1)
        #expect(source.warnings.first?.hasPrefix("\(dir.path)/\(name) is not read: ") == true, "\(source.warnings)")
    }

    @Test(arguments: ["README.md", "schema.sql", "1_notes.txt", "1_init.sql.bak"])
    func otherFilesStayQuiet(name: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("5_a.sql", "SELECT 1;")
        try dir.write(name, "SELECT 2;")
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.migrations.map(\.version) == [5])
        #expect(source.warnings.isEmpty, "\(source.warnings)")
    }

    @Test func aDirectoryNamedLikeAMigrationIsAWarning() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("5_a.sql", "SELECT 1;")
        try dir.write("6_b.sql/inside.txt", "x")
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.migrations.map(\.version) == [5])
        #expect(
            source.warnings == ["\(dir.path)/6_b.sql is a directory, not a migration file; it is ignored, as by sqlx"])
    }

    /// `migrate run` prints the warning on stderr and applies the rest.
    @Test func runWarnsAboutANameItDoesNotReadAndAppliesTheRest() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2.sql": "CREATE TABLE b (id int);"]) { f in
            let result = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(result.status == 0, "\(result.stderr)")
            let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
            #expect(warnings.count == 1)
            #expect(warnings.first?.hasPrefix("warning: \(f.dir.path)/2.sql is not read: ") == true, "\(result.stderr)")
            #expect(try await f.exists("a"))
            #expect(try await f.exists("b") == false)
        }
    }

    /// Every command that reads the folder prints its warnings (a name not read, a directory
    /// named `*.sql`, a link that leads nowhere), each once, as `warning:` lines on stderr:
    /// `worker --migrate` and `lint` (with and without a database) as `run` does.
    @Test(arguments: [
        ["migrate", "run"], ["migrate", "info"], ["migrate", "check"], ["migrate", "lint", "--no-dotenv"],
        ["migrate", "lint"], ["migrate", "add", "more"], ["worker", "--drain", "--migrate", "--log-level", "error"],
    ])
    func everyCommandThatReadsTheFolderPrintsItsWarningsOnce(command: [String]) async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2.sql": "CREATE TABLE b (id int);"]) {
            (f: Fixture) async throws in
            try FileManager.default.createDirectory(
                atPath: "\(f.dir.path)/3_dir.sql", withIntermediateDirectories: false)
            try FileManager.default.createSymbolicLink(atPath: "\(f.dir.path)/4.sql", withDestinationPath: "gone.sql")
            // Applied first, so that nothing is pending (check passes) and every command exits 0.
            try await f.migrator().run(on: f.conn)
            let database = command.contains("--no-dotenv") || command.contains("add") ? [] : ["-D", f.db.url]
            let result = try await GodwitCommand.run(command + database + ["--source", f.dir.path])
            #expect(result.status == 0, "\(command): \(result.stdout)\(result.stderr)")
            let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
            let expected = [
                "warning: \(f.dir.path)/2.sql is not read: ",
                "warning: \(f.dir.path)/3_dir.sql is a directory, not a migration file",
                "warning: \(f.dir.path)/4.sql is not read: ",
            ]
            #expect(warnings.count == expected.count, "\(command): \(result.stderr)")
            for prefix in expected {
                #expect(
                    warnings.filter { $0.hasPrefix(prefix) }.count == 1, "\(command): \(prefix) in \(result.stderr)")
            }
        }
    }

    // MARK: links that lead nowhere, empty migrations: errors

    @Test(arguments: [("2_b.sql", "9_gone.sql"), ("2_b.sql", "2_b.sql")])
    func aMigrationLinkThatLeadsNowhereIsAnError(name: String, target: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "SELECT 1;")
        try FileManager.default.createSymbolicLink(atPath: "\(dir.path)/\(name)", withDestinationPath: target)
        let error = try #require(throws: MigrationError.self) { try MigrationSource.load(directory: dir.path) }
        #expect(error.code == .invalidSource)
        #expect(error.message.hasPrefix("\(dir.path)/\(name) is a symbolic link that leads nowhere"), "\(error)")
    }

    @Test(arguments: ["", " \n\t\r\n"])
    func anEmptyMigrationIsAnErrorToRun(contents: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "SELECT 1;")
        try dir.write("2_b.up.sql", contents)
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.upMigrations.map(\.isEmpty) == [false, true])
        let error = try #require(throws: MigrationError.self) { try source.upMigrations[1].refuseIfEmpty() }
        #expect(error.code == .invalidSource)
        #expect(error.version == 2)
        #expect(error.message.hasPrefix("\(dir.path)/2_b.up.sql: the migration is empty"), "\(error)")
    }

    /// sqlx applies an empty file: a folder adopted from sqlx with one applied goes on running,
    /// and only an empty file that would run is refused (here a down).
    @Test func anEmptyMigrationAppliedAlreadyIsLeftAloneAndAnEmptyDownIsRefused() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            let first = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(first.status == 0, "\(first.stderr)")
            try f.dir.write("2_b.sql", "")
            let empty = try #require(try MigrationSource.load(directory: f.dir.path).upMigrations.last)
            try await f.conn.query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (2, 'b', true, decode($1, 'hex'), 0)",
                [empty.checksumHex])
            try f.dir.write("3_c.sql", "CREATE TABLE c (id int);")
            try f.dir.write("3_c.down.sql", "\n")
            let next = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(next.status == 0, "\(next.stderr)")
            #expect(try await f.exists("c"))
            let revert = try await GodwitCommand.run(["migrate", "revert", "-D", f.db.url, "--source", f.dir.path])
            #expect(revert.status == 1)
            #expect(
                revert.stderr.hasPrefix("error: \(f.dir.path)/3_c.down.sql: the migration is empty"), "\(revert.stderr)"
            )
            #expect(try await f.ledger().map(\.version) == [1, 2, 3])
        }
    }

    @Test func runAppliesNothingWhenAMigrationIsEmpty() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": ""]) { f in
            let result = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(result.status == 1)
            #expect(result.stderr.hasPrefix("error: \(f.dir.path)/2_b.sql: the migration is empty"), "\(result.stderr)")
            #expect(try await f.exists("a") == false)
            #expect(try await f.exists("_sqlx_migrations") == false)
        }
    }
}
