import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `worker --migrate` sets up its migrations as `migrate run` does (the shared
/// `MigrationFolderOptions.migrator`): the config's and the folder's warnings, each once, and a
/// migration that fails stops the worker in one line before it takes any job.
@Suite("worker --migrate")
struct WorkerMigrateTests {
    @Test func warnsAsMigrateRunDoesAndStopsOnAFailedMigration() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let config = try dir.write("c.toml", "[migrat]\ntable-name = \"other\"\n")
        try dir.write("migrations/1_ok.sql", "CREATE TABLE ok (id int);")
        try dir.write("migrations/2_bad.sql", "ALTER TABLE missing_table ADD COLUMN x int;")
        try dir.write("migrations/3_gone.down.sql", "SELECT 1;")
        try await withTestDatabase { db in
            let source = "\(dir.path)/migrations"
            let arguments = ["--migrate", "--drain", "--log-level", "error", "--config", config, "--source", source]
            let worker = try await GodwitCommand.run(["worker", "-D", db.url] + arguments)
            let run = try await GodwitCommand.run([
                "migrate", "run", "-D", db.url, "--config", config, "--source", source,
            ])
            #expect(worker.status == 1)
            #expect(run.status == 1)
            let warnings = { (stderr: String) in stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") } }
            #expect(warnings(worker.stderr).count == 2, "\(worker.stderr)")
            #expect(warnings(worker.stderr) == warnings(run.stderr), "worker: \(worker.stderr)\nrun: \(run.stderr)")
            #expect(
                warnings(worker.stderr).first?.hasPrefix("warning: \(config):1: unknown section `migrat`") == true,
                "\(worker.stderr)")
            #expect(
                warnings(worker.stderr).last?.hasPrefix("warning: \(source)/3_gone.down.sql has no up file") == true,
                "\(worker.stderr)")
            let errors = worker.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(errors.count == 1)
            #expect(
                errors.first?.hasPrefix("error: migration 2 failed at \(source)/2_bad.sql:1:") == true,
                "\(worker.stderr)")
            // Migration 1 is applied, once; the worker never installed the queue.
            let conn = try await db.connect()
            let applied = try await conn.query("SELECT version FROM _sqlx_migrations ORDER BY version").rows.map {
                try $0.int64("version")
            }
            let queue = try await conn.query("SELECT to_regnamespace('godwit') IS NOT NULL AS present").first?.bool(
                "present")
            await conn.close()
            #expect(applied == [1])
            #expect(queue == false)
        }
    }
}
