import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@testable import GodwitCLI

/// `Godwit.run(_:environment:directory:)`: a command line parsed and run in this process, in a
/// working directory of its own, its output captured and rendered as the executable renders it.
@Suite("The in-process runner")
struct RunnerTests {
    @Test func aUsageErrorExits64WithSwiftArgumentParsersMessageOnStderr() async throws {
        let outcome = await Godwit.run(["migrate", "run", "--no-such-option"])
        #expect(outcome.status == 64)
        #expect(outcome.stdout.isEmpty)
        #expect(outcome.stderr.hasPrefix("Error: Unknown option '--no-such-option'\nUsage: godwit migrate run"))
    }

    @Test func helpGoesToStdoutAndExits0() async throws {
        let outcome = await Godwit.run(["migrate", "--help"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("USAGE: godwit migrate <subcommand>"))
        #expect(outcome.stderr.isEmpty)
        let version = await Godwit.run(["--version"])
        #expect(version.status == 0 && version.stdout == "0.1.0\n")
    }

    @Test func aFailureIsOneErrorLineAndExit1() async throws {
        let empty = try TemporaryDirectory()
        defer { empty.delete() }
        let outcome = await Godwit.run(["migrate", "info", "--no-dotenv", "--source", empty.path])
        #expect(outcome.status == 1)
        #expect(outcome.stdout.isEmpty)
        #expect(
            outcome.stderr
                == "error: no database given: pass --database-url, or set DATABASE_URL in the environment or in ./.env\n"
        )
    }

    /// A usage error quotes the argument it cannot place: a URL's password is scrubbed from it.
    @Test func aPasswordInAnArgumentIsScrubbedFromAUsageError() async throws {
        let secret = "pw\(UInt32.random(in: 0...UInt32.max))"
        let outcome = await Godwit.run(["migrate", "info", "postgres://someone:\(secret)@localhost/db"])
        #expect(outcome.status == 64)
        #expect(outcome.stderr.hasPrefix("Error: Unexpected argument 'postgres://someone:"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains(secret) && !outcome.stdout.contains(secret))
    }

    /// `DATABASE_URL` is the environment given, not the test process's: its password is
    /// scrubbed from the error as the executable's would be.
    @Test func theEnvironmentGivenIsWhereDatabaseURLComesFrom() async throws {
        let secret = "pw\(UInt32.random(in: 0...UInt32.max))"
        let empty = try TemporaryDirectory()
        defer { empty.delete() }
        let outcome = await Godwit.run(
            ["migrate", "info", "--source", empty.path, "--connect-timeout", "0", "--log-level", "trace"],
            environment: ["DATABASE_URL": "postgres://someone:\(secret)@127.0.0.1:1/db"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("error: "), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("connecting"), "the trace log line goes to the captured stderr")
        #expect(!outcome.stderr.contains(secret) && !outcome.stdout.contains(secret))
    }

    /// Commands run at once in one process each get their own output, and each run's secrets
    /// are scrubbed from its own output (and not needed by another's).
    @Test func runsInParallelKeepTheirOutputAndSecretsApart() async throws {
        let dirs = try (0..<12).map { _ in try TemporaryDirectory() }
        defer { for dir in dirs { dir.delete() } }
        let outcomes = await withTaskGroup(of: (Int, CommandOutcome).self) { group in
            for (index, dir) in dirs.enumerated() {
                group.addTask {
                    if index.isMultiple(of: 2) {
                        return (
                            index,
                            await Godwit.run(["migrate", "add", "--source", dir.path, "--sequential", "step \(index)"])
                        )
                    }
                    // A usage error quotes the URL it cannot place: only the scrub hides the password.
                    let url = "postgres://user\(index):secret\(index)x@127.0.0.1:1/db"
                    return (index, await Godwit.run(["migrate", "info", "--source", dir.path, url]))
                }
            }
            var all: [Int: CommandOutcome] = [:]
            for await (index, outcome) in group { all[index] = outcome }
            return all
        }
        for (index, dir) in dirs.enumerated() {
            let outcome = try #require(outcomes[index])
            if index.isMultiple(of: 2) {
                #expect(outcome.status == 0, "\(outcome.stderr)")
                #expect(outcome.stdout == "Creating \(dir.path)/0001_step_\(index).sql\n")
                #expect(outcome.stderr.isEmpty)
            } else {
                #expect(outcome.status == 64)
                #expect(outcome.stdout.isEmpty)
                #expect(
                    outcome.stderr.hasPrefix("Error: Unexpected argument 'postgres://user\(index):"),
                    "\(outcome.stderr)")
                #expect(!outcome.stderr.contains("secret\(index)x"), "\(outcome.stderr)")
            }
        }
    }

    /// Output from the database is escaped as on a terminal: a migration's description with
    /// an escape character cannot drive the terminal of whoever reads the captured output.
    @Test func controlCharactersAreEscapedInTheCapturedOutput() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let outcome = await Godwit.run(["migrate", "add", "--source", dir.path, "--sequential", "a\u{1B}[2Kb"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(!outcome.stdout.contains("\u{1B}"))
        #expect(outcome.stdout.contains("\\u001B"), "\(outcome.stdout)")
    }

    /// A worker run in-process leaves SIGTERM and SIGINT to the test process, and ends by
    /// `--drain`: its log lines are in the captured stderr.
    @Test func aDrainingWorkerRunsInProcessAndLogsToTheCapturedStderr() async throws {
        try await withTestDatabase { db in
            let outcome = await Godwit.run(
                ["worker", "--drain", "--poll-interval", "1", "--log-level", "info", "-D", db.url])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.stdout.isEmpty)
            #expect(outcome.stderr.contains("info godwit:"), "\(outcome.stderr)")
        }
    }

    /// Commands run at once in different working directories each open their own `.env`,
    /// `sqlx.toml` and migrations folder, and name them relative, as the executable started in
    /// that folder names them: its output for the same command is the same, byte for byte.
    @Test func runsInParallelEachOpenTheirOwnFolderAndNameItAsGiven() async throws {
        try await withTestDatabase { first in
            try await withTestDatabase { second in
                let databases = [first, second]
                let dirs = try databases.map { _ in try TemporaryDirectory() }
                defer { for dir in dirs { dir.delete() } }
                for (index, dir) in dirs.enumerated() {
                    try dir.write(".env", "DATABASE_URL=\(databases[index].url)\n")
                    try dir.write(
                        "sqlx.toml",
                        "[migrate]\nmigrations-dir = \"m\(index)\"\ntable-name = \"ledger\(index)\"\n\n[mine\(index)]\n"
                    )
                    try dir.write("m\(index)/1_create_t\(index).sql", "CREATE TABLE t\(index) (id int);\n")
                    // Not a migration's name: a warning naming it.
                    try dir.write("m\(index)/2.sql", "SELECT 1;\n")
                }
                let runs = await withTaskGroup(of: (Int, CommandOutcome).self) { group in
                    for index in 0..<(dirs.count * 3) {
                        group.addTask {
                            (index, await Godwit.run(["migrate", "run"], directory: dirs[index % 2].path))
                        }
                    }
                    var all: [Int: CommandOutcome] = [:]
                    for await (index, outcome) in group { all[index] = outcome }
                    return all
                }
                for (index, outcome) in runs.sorted(by: { $0.key < $1.key }) {
                    let own = index % 2
                    #expect(outcome.status == 0, "\(outcome.stderr)")
                    // Then, maybe, a notice that another run holds the migration lock.
                    #expect(
                        outcome.stderr.hasPrefix(
                            """
                            warning: sqlx.toml:5: unknown section `mine\(own)` is ignored (sqlx.toml's sections: common, drivers, macros, migrate)
                            warning: m\(own)/2.sql is not read: a migration's name is <version>_<description>.sql (e.g. 20240101120000_create_users.sql); sqlx ignores it too

                            """), "\(outcome.stderr)")
                    #expect(!outcome.stderr.contains("mine\(1 - own)") && !outcome.stderr.contains("m\(1 - own)/"))
                    #expect(!outcome.stdout.contains("t\(1 - own)"), "\(outcome.stdout)")
                }
                // Each folder's migration was applied once, to the database of its own .env, in its ledger.
                #expect(runs.values.filter { $0.stdout.hasPrefix("Applied 1/migrate create t0 ") }.count == 1)
                #expect(runs.values.filter { $0.stdout.hasPrefix("Applied 1/migrate create t1 ") }.count == 1)
                for (index, database) in databases.enumerated() {
                    let conn = try await database.connect()
                    let row = try await conn.query(
                        "SELECT to_regclass('t\(index)')::text AS own, to_regclass('t\(1 - index)')::text AS other, to_regclass('ledger\(index)')::text AS ledger"
                    ).first
                    await conn.close()
                    #expect(row?["own"] == "t\(index)" && row?["other"] == nil && row?["ledger"] == "ledger\(index)")
                }
                // The executable started in the folder says the same, relative paths included.
                for arguments in [
                    ["migrate", "info"], ["migrate", "info", "--config", "nope.toml"], ["migrate", "run"],
                ] {
                    let inProcess = await Godwit.run(arguments, directory: dirs[0].path)
                    let spawned = try await GodwitProcess.run(arguments, directory: dirs[0].path)
                    #expect(inProcess.status == spawned.status, "\(arguments)")
                    #expect(inProcess.stdout == spawned.stdout, "\(arguments)")
                    #expect(inProcess.stderr == spawned.stderr, "\(arguments)")
                }
                let missing = await Godwit.run(["migrate", "info", "--config", "nope.toml"], directory: dirs[0].path)
                #expect(missing.stderr == "error: nope.toml: no such config file (given with --config)\n")
            }
        }
    }

    /// A relative `directory` is inside the process's current directory; without one, the
    /// command opens the process's own.
    @Test func aRelativeOrNoDirectoryIsTheProcesssCurrentOne() async throws {
        let here = FileManager.default.currentDirectoryPath
        #expect(WorkingDirectory("a/b").path == here + "/a/b")
        #expect(WorkingDirectory("/x").resolve("sqlx.toml") == "/x/sqlx.toml")
        #expect(WorkingDirectory("/x").resolve("/y/sqlx.toml") == "/y/sqlx.toml")
        #expect(WorkingDirectory("/x").resolve("") == "")
        let console = Console.current
        #expect(console.directory.path == here)
        // An empty --source names no folder, as for the executable: not the working directory.
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "SELECT 1;")
        let empty = await Godwit.run(
            ["migrate", "run", "--source", "", "-D", "postgres://127.0.0.1:1/x"], directory: dir.path)
        #expect(empty.status == 1)
        #expect(empty.stderr == "error: migrations folder  does not exist\n")
    }

    /// What the executable renders the same way: `GodwitCommand` returns `GodwitProcess`'s shape.
    @Test func godwitCommandGivesTheExecutablesShape() async throws {
        let output = try await GodwitCommand.run(
            ["migrate", "info", "--no-dotenv"], environment: ["DATABASE_URL": nil])
        #expect(output.status == 1)
        #expect(output.pid == ProcessInfo.processInfo.processIdentifier)
        #expect(output.stderr.hasPrefix("error: no database given"))
    }
}
