import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Synchronization
import Testing

/// Complete's one transaction waits for its locks under lock_timeout, retrying, so that a
/// long transaction on the table (here one holding ACCESS SHARE) delays complete, not the
/// application queued behind complete's ACCESS EXCLUSIVE request.
@Suite("Complete under a held lock")
struct CompleteUnderLockTests {
    @Test func retriesWithoutStallingTheApplicationThenCompletes() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            // Started by `change start` itself: the application writes through the sync trigger.
            try await QueueSchema.withChanges().install(on: conn)
            try await conn.execute(ReadyChange.tableSQL)
            try await ReadyChange.start(on: conn)

            let holder = try await ReadyChange.application(database, name: "report-v1")
            try await holder.execute("BEGIN; LOCK TABLE public.media IN ACCESS SHARE MODE")

            let retries = Mutex<[String]>([])
            let completing = try await database.connect()
            let completion = Task {
                try await ReadyChange.completion().run(on: completing) { line in
                    retries.withLock { $0.append(line) }
                }
            }
            #expect(await eventually { retries.withLock { !$0.isEmpty } }, "complete never retried")

            // The application writes while complete retries: were its writes queued behind
            // complete's lock request until the holder ends, they would time out here, since
            // the holder ends only after them.
            let app = try await ReadyChange.application(database, name: "app-v2")
            try await app.execute("SET lock_timeout = '60s'")
            for id in 1...5 {
                try await app.query("UPDATE public.media SET caption = $1 WHERE id = $2", ["caption \(id)", id])
                try await app.query(
                    "INSERT INTO public.media (id, title, caption) VALUES ($1, $2, $2)", [1000 + id, "new \(id)"])
            }
            // The retries name who held the lock (a watching session sees it, within a few tries).
            #expect(
                await eventually { retries.withLock { $0.contains { $0.contains("report-v1") } } },
                "no retry named the holder: \(retries.withLock { $0 })")
            #expect(try await ReadyChange.phase(on: conn) == "ready", "complete went ahead under the held lock")
            #expect(try await ReadyChange.hasTitle(on: conn))

            try await holder.execute("COMMIT")
            let outcome = try await completion.value
            #expect(outcome.name == ReadyChange.name)
            #expect(try await ReadyChange.phase(on: conn) == "completed")
            #expect(try await !ReadyChange.hasTitle(on: conn))
            let lines = retries.withLock { $0 }
            #expect(lines.allSatisfy { $0.contains("could not lock") }, "\(lines)")
            // What the application wrote meanwhile is there, and NOT NULL holds.
            let written = try await conn.query(
                "SELECT count(*) AS n FROM public.media WHERE id > 1000 AND caption IS NOT NULL"
            ).first!.int("n")
            #expect(written == 5)
            await holder.close()
            await app.close()
            await completing.close()
        }
    }
}
