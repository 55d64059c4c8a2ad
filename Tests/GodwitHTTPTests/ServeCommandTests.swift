import Foundation
import GodwitQueue
import GodwitTestSupport
import Testing

/// `godwit serve` and `godwit worker --http` run in-process (`GodwitCommand.run`), each in a
/// working directory of its own: what they read (sqlx.toml, `--config`) and refuse. What only a
/// process shows (SIGTERM, the exit status, the default address) is in `HTTPProcessTests`.
@Suite("godwit worker --http and godwit serve, in-process")
struct ServeCommandTests {
    @Test(
        "godwit serve reads sqlx.toml (and --config): migrations in a custom ledger show as installed, and /metrics counts them"
    )
    func serveReadsSqlxToml() async throws {
        try await withTestDatabase(prefix: "godwit_http_sqlx") { database in
            let folder = try TemporaryDirectory(prefix: "godwit-serve-toml")
            defer { folder.delete() }
            try folder.write("sqlx.toml", "[migrate]\ntable-name = \"app_ledger\"\nmigrations-dir = \"db\"\n")
            try folder.write("db/1_first.sql", "CREATE TABLE first (id bigint PRIMARY KEY);\n")
            try folder.write("db/2_second.sql", "CREATE TABLE second (id bigint PRIMARY KEY);\n")
            let migrated = try await GodwitCommand.run(["migrate", "run", "-D", database.url], directory: folder.path)
            #expect(migrated.status == 0, "\(migrated.stderr)")
            let connection = try await database.connect()
            try await QueueSchema.withJobs().install(on: connection)
            #expect(try await connection.query("SELECT count(*) AS n FROM app_ledger").first?.int("n") == 2)
            await connection.close()

            // From the folder (./sqlx.toml), and from elsewhere with --config and --source,
            // relative to that other folder.
            let elsewhere = try TemporaryDirectory(prefix: "godwit-serve-elsewhere")
            defer { elsewhere.delete() }
            let relative = "../" + (folder.path as NSString).lastPathComponent
            let ways: [(arguments: [String], directory: String)] = [
                ([], folder.path),
                (["--config", relative + "/sqlx.toml", "--source", relative + "/db"], elsewhere.path),
            ]
            for way in ways {
                let port = try freeLoopbackPort()
                let (_, output) = try await whileServing(
                    ["serve", "-D", database.url, "--http", "127.0.0.1:\(port)"] + way.arguments,
                    directory: way.directory
                ) {
                    let answered = await eventually(timeout: .seconds(60)) { (try? await get(port, "/health")) != nil }
                    #expect(answered, "godwit serve never answered")
                    let migrations = try await get(port, "/migrations").text
                    #expect(
                        migrations.contains("second") && migrations.contains(">installed<"),
                        "\(way.arguments): \(migrations)")
                    #expect(
                        !migrations.contains(">pending<"), "\(way.arguments): applied shown as pending: \(migrations)")
                    let metrics = try await get(port, "/metrics").text
                    #expect(metrics.contains("godwit_migrations_applied 2"), "\(way.arguments): \(metrics)")
                    #expect(metrics.contains("godwit_migrations_pending 0"), "\(way.arguments): \(metrics)")
                    #expect(metrics.contains("godwit_migration_last_duration_seconds"), "\(way.arguments): \(metrics)")
                }
                // No `error:` nor `warning:` line of the command's (cancelling it ends Hummingbird's
                // server with log lines of its own).
                let lines = output.stderr.split(separator: "\n")
                #expect(
                    !lines.contains { $0.hasPrefix("error:") || $0.hasPrefix("warning:") },
                    "\(way.arguments): \(output.stderr)")
                #expect(lines.first?.hasSuffix("serving HTTP") == true, "\(way.arguments): \(output.stderr)")
            }
        }
    }

    @Test(
        "A port already in use: one line, `error: cannot listen on HOST:PORT: address already in use`, exit 1, and never \"serving HTTP\""
    )
    func portInUse() async throws {
        try await withTestDatabase(prefix: "godwit_http_taken") { database in
            let taken = try LoopbackListener()
            for command in ["serve", "worker"] {
                let output = try await GodwitCommand.run([
                    command, "-D", database.url, "--http", "127.0.0.1:\(taken.port)", "--log-level", "info",
                ])
                #expect(output.status == 1, "\(command): \(output.stderr)")
                let errors = output.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
                #expect(
                    errors == ["error: cannot listen on 127.0.0.1:\(taken.port): address already in use"],
                    "\(command): \(output.stderr)")
                #expect(!output.stderr.contains("serving HTTP"), "\(command) said it served: \(output.stderr)")
                #expect(!output.stderr.contains("bind("), "\(command): \(output.stderr)")
            }
        }
    }

    @Test("An address beyond loopback without --http-token is refused in one line before anything starts")
    func openAddressRefused() async throws {
        for command in ["worker", "serve"] {
            let output = try await GodwitCommand.run(
                [command, "-D", "postgres://nobody@127.0.0.1:1/none", "--http", "0.0.0.0:8433"])
            #expect(output.status != 0)
            let lines = output.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.isEmpty }
            #expect(lines.first?.contains("--http-token") == true, "\(command): \(output.stderr)")
        }
    }
}

/// Runs a `serve` or `worker --http` command line in-process while `body` runs, then cancels
/// it (a command run in-process leaves SIGTERM to the test process) and returns what it wrote.
func whileServing<T>(
    _ arguments: [String], directory: String? = nil, _ body: () async throws -> T
) async throws -> (result: T, output: GodwitProcess.Output) {
    try await withThrowingTaskGroup(of: GodwitProcess.Output.self) { group in
        group.addTask { try await GodwitCommand.run(arguments, directory: directory) }
        let result: T
        do {
            result = try await body()
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
        guard let output = try await group.next() else { throw TestSetupError(message: "the command never ran") }
        return (result, output)
    }
}
