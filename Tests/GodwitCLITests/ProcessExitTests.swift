import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// Process exit is orderly on every path: every connection closed and its thread joined
/// before `exit()`. A connection thread still ending while `exit()` tears down the libraries'
/// state (Kerberos/GSS, which libpq loads) made two concurrent `backup create` print success
/// and then abort (`k5_mutex_lock: Assertion 'r == 0' failed`, exit 134).
@Suite("Orderly process exit")
struct ProcessExitTests {
    /// Many short commands at once, succeeding and failing: each exits with its own status,
    /// never by a signal, and says nothing of an assertion.
    @Test func concurrentShortCommandsExitInOrder() async throws {
        let backups = try TemporaryDirectory()
        let migrations = try TemporaryDirectory()
        defer {
            backups.delete()
            migrations.delete()
        }
        try migrations.write("1_first.sql", "CREATE TABLE first (id bigint);\n")
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            try await conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
            await conn.close()
            // A dozen at once, two rounds: enough to overlap their exits, few enough that the
            // other suites running beside this one keep their share of two cores.
            let commands: [(arguments: [String], status: Int32)] =
                Array(repeating: (["backup", "create", "-D", db.url, "--dir", backups.path], 0), count: 4)
                + Array(repeating: (["backup", "list", "-D", db.url], 0), count: 2)
                + Array(repeating: (["job", "list", "-D", db.url], 0), count: 2)
                + Array(repeating: (["migrate", "info", "-D", db.url, "--source", migrations.path], 0), count: 2)
                // Failures leave through the same door: a job that is not there, a missing file.
                + Array(repeating: (["job", "show", "-D", db.url, "999999"], 1), count: 2)
                + Array(repeating: (["backup", "verify", "-D", db.url, backups.path + "/missing.dump"], 1), count: 2)
            for round in 1...2 {
                let outputs = try await withThrowingTaskGroup(of: (Int, GodwitProcess.Output).self) { group in
                    for (index, command) in commands.enumerated() {
                        group.addTask { (index, try await GodwitProcess.run(command.arguments)) }
                    }
                    var outputs: [Int: GodwitProcess.Output] = [:]
                    for try await (index, output) in group { outputs[index] = output }
                    return outputs
                }
                for (index, command) in commands.enumerated() {
                    let output = try #require(outputs[index])
                    let what = "round \(round): godwit \(command.arguments.prefix(2).joined(separator: " "))"
                    #expect(output.status == command.status, "\(what) exited \(output.status): \(output.stderr)")
                    #expect(!output.stderr.contains("Assertion"), "\(what): \(output.stderr)")
                    #expect(!output.stderr.contains("Fatal error"), "\(what): \(output.stderr)")
                }
            }
        }
    }
}
