import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// What only the `godwit` process itself shows: several processes racing for the migration
/// lock, and what reaches the stdout and stderr of a real process.
@Suite("godwit (the executable)")
struct ExecutableTests {
    @Test func threeConcurrentRunsApplyEachMigrationExactlyOnce() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        // Each migration logs itself in a table without a unique key, so a second
        // application would show as a duplicate row rather than as an error.
        try dir.write("1_log.sql", "CREATE TABLE applied_log (version int, at timestamptz DEFAULT clock_timestamp());")
        for version in 2...12 {
            try dir.write(
                "\(version)_step.sql",
                "SELECT pg_sleep(0.02); INSERT INTO applied_log (version) VALUES (\(version)); CREATE TABLE t\(version) (id int);"
            )
        }
        try dir.write(
            "13_idx.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY t2_idx ON t2 (id);\nINSERT INTO applied_log (version) VALUES (13);\n"
        )
        try await withTestDatabase { db in
            let processes = try (0..<3).map { _ in
                try GodwitProcess.start(["migrate", "run", "--source", dir.path, "-D", db.url])
            }
            var outputs: [GodwitProcess.Output] = []
            for process in processes { outputs.append(try await process.wait()) }
            for output in outputs { #expect(output.status == 0, "stderr: \(output.stderr)") }
            let appliedLines = outputs.flatMap { $0.stdout.split(separator: "\n") }.filter { $0.hasPrefix("Applied ") }
            #expect(appliedLines.count == 13)
            let conn = try await db.connect()
            let counts = try await conn.query(
                "SELECT version, count(*) AS n FROM applied_log GROUP BY version ORDER BY version")
            #expect(counts.rows.count == 12)
            #expect(try counts.rows.allSatisfy { try $0.int("n") == 1 })
            #expect(
                try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations WHERE success").first?.int("n") == 13)
            await conn.close()
        }
    }

    /// `PGCONNECT_TIMEOUT` bounds each attempt to connect, as it does libpq's own programs',
    /// though libpq applies it only to a connect that blocks, which Godwit's never do; a value
    /// libpq would refuse is refused in one line.
    @Test(.timeLimit(.minutes(2))) func pgConnectTimeoutBoundsEachAttempt() async throws {
        let server = try SilentServer()
        defer { withExtendedLifetime(server) {} }
        let arguments = ["job", "list", "-D", "postgres://nobody@127.0.0.1:\(server.port)/x", "--connect-timeout", "0"]
        let bounded = try await GodwitProcess.start(arguments, environment: ["PGCONNECT_TIMEOUT": "2"]).wait()
        #expect(bounded.status == 1)
        #expect(bounded.stderr.contains("could not connect within 2 s (connect timeout)"), "\(bounded.stderr)")
        let refused = try await GodwitProcess.start(arguments, environment: ["PGCONNECT_TIMEOUT": "soon"]).wait()
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("invalid integer value \"soon\" for PGCONNECT_TIMEOUT"), "\(refused.stderr)")
    }

    /// The real executable, at the most verbose log level, on a sample of the strings: nothing
    /// on stdout or stderr, whether libpq parses the string or not.
    @Test func theExecutableNeverPrintsTheSecret() async throws {
        let cases = SecretFuzzCase.generate(count: 24, seed: 0xE7EC, host: try TestDatabase.serverAddress)
        // An empty migrations folder, so that the commands get as far as connecting.
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try FileManager.default.createDirectory(atPath: dir.path + "/migrations", withIntermediateDirectories: true)
        try await withThrowingTaskGroup(of: (SecretFuzzCase, String, GodwitProcess.Output).self) { group in
            var pending = cases.flatMap { fuzz in
                [
                    (fuzz, "-D", ["migrate", "info", "-D", fuzz.conninfo]),
                    (fuzz, "-D", ["migrate", "verify", "-D", fuzz.conninfo]),
                    (fuzz, "DATABASE_URL", ["job", "list"]),
                    // A usage error quotes the argument it cannot place.
                    (fuzz, "positional", ["migrate", "info", fuzz.conninfo]),
                ]
            }[...]
            func next() throws {
                guard let (fuzz, how, arguments) = pending.popFirst() else { return }
                let environment: [String: String?] = how == "DATABASE_URL" ? ["DATABASE_URL": fuzz.conninfo] : [:]
                let process = try GodwitProcess.start(
                    arguments + ["--log-level", "trace", "--connect-timeout", "0"], environment: environment,
                    directory: dir.path)
                group.addTask { (fuzz, how, try await process.wait()) }
            }
            for _ in 0..<6 { try next() }
            while let (fuzz, how, output) = try await group.next() {
                #expect(output.status != 0, "\(how) \(fuzz): \(output.stderr)")
                #expect(fuzz.leak(in: output.stdout) == nil, "stdout, \(how) \(fuzz): \(output.stdout)")
                #expect(fuzz.leak(in: output.stderr) == nil, "stderr, \(how) \(fuzz): \(output.stderr)")
                try next()
            }
        }
    }
}
