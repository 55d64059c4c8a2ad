import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `godwit job enqueue FILE --resume-from ID`: a corrected statement continues from a failed
/// job's checkpoint.
@Suite("Resuming a batched job from another's checkpoint", .serialized)
struct ResumeFromTests {
    /// A batched job file on `table` by `key`, 100 keys a batch, with `set` as its SET list.
    func jobFile(
        _ dir: TemporaryDirectory, _ name: String, table: String = "items", key: String = "id",
        set: String = "counter = counter + 1", extra: [String] = []
    ) throws -> String {
        try dir.write(
            "jobs/\(name).sql",
            ([
                "-- godwit:batched", "-- table: \(table)", "-- key: \(key)", "-- batch-size: 100",
                "-- min-batch-size: 100",
                "-- max-batch-size: 100",
            ] + extra.map { "-- \($0)" } + ["UPDATE \(table) SET \(set) WHERE \(key) BETWEEN $1 AND $2;"])
            .joined(separator: "\n"))
    }

    func run(_ arguments: [String]) async throws -> GodwitProcess.Output {
        try await GodwitCommand.run(["job", "enqueue"] + arguments)
    }

    func jobCount(_ conn: Connection) async throws -> Int {
        try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first!.int("n")
    }

    /// The buggy statement divides by zero at key 777; the fix continues after the last key the
    /// buggy one committed (700), and every row is updated exactly once.
    @Test func theFixContinuesAfterTheCheckpointAndNoKeyRunsTwiceOrNever() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT g FROM generate_series(1, 2000) g;
                ANALYZE items;
                """)
            let buggy = try await enqueue(
                try jobFile(dir, "buggy", set: "counter = counter + 1 + 0 * (1 / (id - 777))"), db.url)
            #expect(try await drainWorker(db.url).status == 0)
            #expect(try await jobState(buggy, conn) == "failed")
            #expect(try await counters(conn) == [1: 700, 0: 1300])
            #expect(
                try await conn.query("SELECT cursor FROM godwit.job_progress WHERE job_id = $1", [buggy]).first?[
                    "cursor"]
                    == "700")

            let fixedFile = try jobFile(dir, "fixed")
            let output = try await run([fixedFile, "--resume-from", "\(buggy)", "-D", db.url])
            #expect(output.status == 0, "\(output.stderr)")
            let fixed = try #require(Int64(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            let payload = try #require(
                try await conn.query("SELECT payload->>'resumes' AS r FROM godwit.jobs WHERE id = $1", [fixed]).first)
            #expect(payload["r"] == "\(buggy)")
            #expect(try await drainWorker(db.url).status == 0)
            #expect(try await jobState(fixed, conn) == "succeeded")
            #expect(try await counters(conn) == [1: 2000])
            let first = try #require(
                try await conn.query(
                    "SELECT first_key FROM godwit.batches WHERE job_id = $1 ORDER BY seq LIMIT 1", [fixed]
                )
                .first)
            #expect(first["first_key"] == "701")
            #expect(
                try await conn.query("SELECT rows_done FROM godwit.progress WHERE id = $1", [fixed]).first?.int(
                    "rows_done")
                    == 2000)

            // The old job is the new one's now: retrying it would update 701.. twice.
            let retry = try await GodwitCommand.run(["job", "retry", "\(buggy)", "-D", db.url])
            #expect(retry.status == 1)
            #expect(retry.stderr.contains("was resumed by job \(fixed)"), "\(retry.stderr)")
            // And nobody resumes from it twice.
            let again = try await run([fixedFile, "--resume-from", "\(buggy)", "-D", db.url])
            #expect(again.status == 1)
            #expect(again.stderr.contains("already resumed by job \(fixed)"), "\(again.stderr)")
        }
    }

    @Test func aJobThatCannotBeResumedFromIsRefusedInOneLineAndNothingIsEnqueued() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, code bigint UNIQUE NOT NULL, counter int NOT NULL DEFAULT 0);
                CREATE TABLE others (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id, code) SELECT g, g FROM generate_series(1, 1000) g;
                INSERT INTO others (id) SELECT g FROM generate_series(1, 1000) g;
                ANALYZE items, others;
                """)
            let file = try jobFile(dir, "fix")
            let queued = try await enqueue(file, db.url)
            let sql = try #require(
                try await conn.query("INSERT INTO godwit.jobs (kind, name) VALUES ('sql', 'x') RETURNING id").first?
                    .int64("id"))
            let parallel = try await enqueue(
                try dir.write(
                    "jobs/par.sql",
                    "-- godwit:batched\n-- table: items\n-- key: id\n-- parallel: 2\nUPDATE items SET counter = 1 WHERE id BETWEEN $1 AND $2"
                ),
                db.url)
            let cancelled = try await enqueue(file, db.url)
            for id in [parallel, cancelled] { try await conn.query("SELECT godwit.cancel($1)", [id]) }
            let cases: [(arguments: [String], says: String)] = [
                ([file, "--resume-from", "\(queued)"], "job \(queued) is queued; only a failed or cancelled job"),
                ([file, "--resume-from", "\(sql)"], "job \(sql) is a sql job, not a batched one"),
                ([file, "--resume-from", "\(parallel)"], "job \(parallel) is a parallel job"),
                ([file, "--resume-from", "999999"], "--resume-from 999999: no such job"),
                (
                    [try jobFile(dir, "other", table: "others"), "--resume-from", "\(cancelled)"],
                    "job \(cancelled) updates table public.items, this file table public.others"
                ),
                (
                    [try jobFile(dir, "bycode", key: "code"), "--resume-from", "\(cancelled)"],
                    "job \(cancelled) walks key id, this file key code"
                ),
                (
                    [
                        try dir.write(
                            "jobs/p2.sql",
                            "-- godwit:batched\n-- table: items\n-- key: id\n-- parallel: 2\nUPDATE items SET counter = 1 WHERE id BETWEEN $1 AND $2"
                        ),
                        "--resume-from", "\(cancelled)",
                    ],
                    "a parallel job (`parallel: 2`) cannot resume"
                ),
            ]
            let before = try await jobCount(conn)
            for (arguments, says) in cases {
                let output = try await run(arguments + ["-D", db.url])
                #expect(output.status == 1, "\(arguments)")
                #expect(output.stderr.hasPrefix("error: \(arguments[0]):"), "\(output.stderr)")
                #expect(output.stderr.contains(says), "\(output.stderr)")
                #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
            }
            #expect(try await jobCount(conn) == before)
            // A cancelled job on the same table and key is fine, even with no checkpoint: the
            // new job starts from the first key.
            let output = try await run([file, "--resume-from", "\(cancelled)", "-D", db.url])
            #expect(output.status == 0, "\(output.stderr)")
        }
    }
}
