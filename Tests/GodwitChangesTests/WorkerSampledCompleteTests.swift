import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// The evidence comes from the worker: `godwit worker` samples the readers of a change in
/// flight by itself (every 5 s), sees an application's read of the old column before anyone
/// runs complete, logs it, and complete refuses on it naming the application.
/// (ChangeLifecycleTests takes a change on through complete.)
@Suite("The worker's reader samples", .serialized)
struct WorkerSampledCompleteTests {
    @Test func theWorkerSamplesTheReadersAndCompleteRefusesOnThem() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            try await QueueSchema.withChanges().install(on: conn)
            try await conn.execute(ReadyChange.tableSQL)
            try await conn.execute("INSERT INTO public.media SELECT g, 'title ' || g FROM generate_series(1, 300) g")
            _ = try await ChangeManager(lockPolicy: ReadyChange.quickLocks).start(
                text: ReadyChange.file, file: "changes/media_caption.sql", on: conn)
            let worker = changeWorker(database.url)
            func reader() async throws -> PostgresRow? { try await ReadyChange.reader(on: conn) }

            let ready = try await eventually(timeout: .seconds(180)) {
                let sampled = try await reader()?["sampled_at"] != nil
                return try await ReadyChange.phase(on: conn) == "ready" && sampled
            }
            #expect(ready, "\(worker.currentStderr.suffix(3000))")

            let app = try await ReadyChange.application(database, name: "app-v1")
            try await app.query("SELECT title FROM public.media WHERE id = $1", [42])
            let seen = try await eventually(timeout: .seconds(120)) {
                let row = try await reader()
                return row?["names"] == "app-v1" && row?["last_seen_at"] != nil
            }
            #expect(seen, "the worker's samples never saw app-v1's read: \(worker.currentStderr.suffix(3000))")
            await app.close()

            let output = await worker.stop()
            #expect(
                output.stderr.contains("change media_caption: column title read by app-v1"),
                "the worker logs the read: \(output.stderr.suffix(3000))")

            let refused = try await GodwitCommand.run(
                ["change", "complete", ReadyChange.name, "--quiet-for", "1h"],
                environment: ["DATABASE_URL": database.url])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("column title was read"), "\(refused.stderr)")
            #expect(refused.stderr.contains("by app-v1"), "\(refused.stderr)")
            #expect(try await ReadyChange.hasTitle(on: conn))
        }
    }
}
