import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("migrate job backups")
struct MigrateJobBackupTests {
    @Test func theRestoreCommandOfAFailedMigrateJobNamesTheBackupByItsAbsolutePath() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_ok.sql", "CREATE TABLE ok (id int); INSERT INTO ok VALUES (1);")
        try dir.write("migrations/2_bad.sql", "ALTER TABLE missing_table ADD COLUMN x int;")
        try await withQueue { db, conn, _ in
            let enqueued = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "--backup", "-D", db.url], directory: dir.path)
            #expect(enqueued.status == 0, "\(enqueued.stderr)")
            // The worker runs in the folder, with the default, relative --backup-dir backups.
            let worker = try await drainWorker(db.url, directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr.suffix(2000))")

            let job = try #require(
                try await conn.query("SELECT state::text AS s, result::text AS r FROM godwit.jobs").first)
            #expect(try job.string("s") == "failed")
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(try job.string("r").utf8)) as? [String: Any])
            let backup = try #require(result["backup"] as? [String: Any])
            let file = try #require(backup["file"] as? String)
            let backupsFolder = URL(fileURLWithPath: dir.path).appendingPathComponent("backups")
                .resolvingSymlinksInPath().path
            #expect(file.hasPrefix("/"))
            #expect(
                URL(fileURLWithPath: file).deletingLastPathComponent().resolvingSymlinksInPath().path == backupsFolder)
            #expect(FileManager.default.fileExists(atPath: file))
            #expect(result["restore_with"] as? String == "godwit backup restore \(file) --yes")
            #expect(
                try await conn.query("SELECT file FROM godwit.backups").rows.map { try $0.string("file") } == [file])

            // The command works from any folder (here, the tests' own), and takes the database back
            // to before the migrations: migration 1's table goes.
            #expect(
                try await conn.query("SELECT to_regclass('ok') IS NOT NULL AS present").first?.bool("present") == true)
            let restored = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(try await conn.query("SELECT to_regclass('ok') IS NULL AS gone").first?.bool("gone") == true)
        }
    }
}
