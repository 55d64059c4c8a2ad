import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("ClientProgram")
struct ClientProgramTests {
    /// Four programs at once, on a machine whose pool has two threads, each waiting for a lock
    /// that this task holds until it has seen all four waiting. If waiting for a program held a
    /// pool thread, two of them would hold both threads, the other two could not start and this
    /// task could not look, so the lock would never be released: the time limit fails that.
    @Test(.timeLimit(.minutes(3))) func programsDoNotBlockTheCooperativePool() async throws {
        let server = try TestDatabase.serverURL
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: server)
        let tag = "godwit-pool-probe-\(UInt32.random(in: 0...UInt32.max))"
        let key = Int64.random(in: 1...Int64.max)
        let observer = try await Connection.connect(server)
        try await observer.query("SELECT pg_advisory_lock($1)", [key])
        try await withThrowingTaskGroup(of: ClientProgram.Output.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await ClientProgram.run(
                        "psql",
                        [
                            "-X", "-q", "--dbname=\(conninfo) application_name=\(tag)", "-c",
                            "SELECT pg_advisory_lock_shared(\(key))",
                        ],
                        environment: environment)
                }
            }
            let waiting = try await eventually(timeout: .seconds(120)) {
                try await observer.query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    [tag]
                ).first?.int("n") == 4
            }
            #expect(waiting, "this task did not see the four programs waiting at once")
            try await observer.query("SELECT pg_advisory_unlock($1)", [key])
            for try await output in group {
                #expect(output.succeeded, "\(output.stderr)")
            }
        }
        await observer.close()
    }

    @Test func outputAndStatusComeBack() async throws {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: try TestDatabase.serverURL)
        let output = try await ClientProgram.run(
            "psql", ["-X", "-A", "-t", "--dbname=\(conninfo)", "-c", "SELECT 6 * 7", "-c", "SELECT nonsense"],
            environment: environment)
        #expect(output.stdout == "42\n")
        #expect(output.status == 1)
        #expect(!output.succeeded)
        #expect(output.firstErrorLine.contains("ERROR:") && output.firstErrorLine.contains("nonsense"))
    }

    @Test func inputIsTheProgramsStdin() async throws {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: try TestDatabase.serverURL)
        let output = try await ClientProgram.run(
            "psql", ["-X", "-A", "-t", "--dbname=\(conninfo)", "-f", "-"], environment: environment,
            input: "SELECT 'from stdin';\n")
        #expect(output.succeeded, "\(output.stderr)")
        #expect(output.stdout == "from stdin\n")
    }

    @Test func aPipelineFeedsTheFirstProgramsOutputToTheSecond() async throws {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: try TestDatabase.serverURL)
        // The first psql prints a statement; the second one runs it.
        let (producer, consumer) = try await ClientProgram.pipeline(
            .init(
                "psql",
                [
                    "-X", "-A", "-t", "--dbname=\(conninfo)", "-c",
                    "SELECT 'SELECT ''' || repeat('x', 100000) || ''' AS v;'",
                ],
                environment: environment),
            into: .init("psql", ["-X", "-A", "-t", "--dbname=\(conninfo)", "-f", "-"], environment: environment))
        #expect(producer.succeeded, "\(producer.stderr)")
        #expect(producer.stdout.isEmpty)
        #expect(consumer.succeeded, "\(consumer.stderr)")
        #expect(consumer.stdout == String(repeating: "x", count: 100000) + "\n")
    }

    /// psql would sleep for an hour: the time limit fails a cancel that does not kill it.
    @Test(.timeLimit(.minutes(3))) func cancellingTheTaskKillsTheProgram() async throws {
        let server = try TestDatabase.serverURL
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: server)
        let tag = "godwit-cancel-probe-\(UInt32.random(in: 0...UInt32.max))"
        let observer = try await Connection.connect(server)
        let task = Task {
            try await ClientProgram.run(
                "psql", ["-X", "-q", "--dbname=\(conninfo) application_name=\(tag)", "-c", "SELECT pg_sleep(3600)"],
                environment: environment)
        }
        #expect(try await eventually(every: .milliseconds(20)) { try await sessions(tagged: tag, on: observer) > 0 })
        task.cancel()
        let output = try await task.value
        #expect(output.killedBySignal && output.status == SIGKILL, "\(output)")
        await observer.close()
    }

    @Test func aMissingProgramIsALaunchError() async throws {
        await #expect(throws: ClientProgram.LaunchError.self) {
            _ = try await ClientProgram.run("godwit-no-such-program", [])
        }
    }

    @Test func toolsAreFoundInPostgreSQLsBinDirectory() async throws {
        let path = await ClientProgram.path(of: "pg_restore")
        #expect(path.hasPrefix("/"))
        #expect(FileManager.default.isExecutableFile(atPath: path))
    }
}

/// How many sessions with application name `tag` are running `pg_sleep`.
func sessions(tagged tag: String, on connection: Connection) async throws -> Int {
    try await connection.query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%'", [tag]
    ).first?.int("n") ?? 0
}
