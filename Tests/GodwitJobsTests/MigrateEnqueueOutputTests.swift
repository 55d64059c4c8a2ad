import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `migrate run --enqueue` prints the job's id alone on stdout, as `job enqueue` does, so that
/// a script can hand it to `godwit job watch`.
@Suite("migrate run --enqueue's output", .serialized)
struct MigrateEnqueueOutputTests {
    @Test func theIdOnStdoutIsWhatJobWatchTakes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_items.sql", "CREATE TABLE items (id int PRIMARY KEY);")
        try await withQueue { db, conn, _ in
            let enqueue = try await GodwitCommand.run(
                ["migrate", "run", "--enqueue", "-D", db.url], directory: dir.path)
            #expect(enqueue.status == 0, "\(enqueue.stderr)")
            let printed = enqueue.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let job = try #require(try await conn.query("SELECT id FROM godwit.jobs WHERE kind = 'migrate'").first)
            let id = try job.int64("id")
            #expect(printed == "\(id)", "stdout: \(enqueue.stdout)")
            // The sentence a person reads is on stderr.
            #expect(enqueue.stderr.contains("godwit job watch \(id)"), "\(enqueue.stderr)")

            let worker = try await drainWorker(db.url, directory: dir.path)
            #expect(worker.status == 0, "\(worker.stderr)")
            // As a script does: id=$(godwit migrate run --enqueue); godwit job watch $id
            let watch = try await GodwitCommand.run(["job", "watch", printed, "-D", db.url])
            #expect(watch.status == 0, "\(watch.stderr)")
            #expect(try await jobState(id, conn) == "succeeded")
        }
    }
}
