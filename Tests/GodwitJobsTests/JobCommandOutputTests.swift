import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// What the `godwit job` commands and the worker print of what the database holds: whoever
/// may enqueue a job chooses its name, its payload and (through its statement) its error.
@Suite("job commands print the database's text safely")
struct JobCommandOutputTests {
    /// A name that would erase the line and set the clipboard (OSC 52), with a C1 control
    /// sequence introducer, DEL, a right-to-left override and a line break for a forged log line.
    static let name =
        "evil\u{1B}[2K\rname\u{1B}]52;c;ZXZpbA==\u{07} \u{9B}2J\u{7F} \u{202E}txt.exe\n2026-01-01T00:00:00 info forged"

    /// The characters of `text` that drive a terminal, but line breaks and tabs.
    func controls(in text: String) -> [String] {
        text.unicodeScalars.filter { scalar in
            scalar != "\n" && scalar != "\t"
                && (scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{202E}")
        }.map { "U+" + String($0.value, radix: 16, uppercase: true) }
    }

    /// A failed `sql` job with `name`, whose error (raised by its statement) holds escapes too.
    func withFailedJob(_ body: (TestDatabase, Int64) async throws -> Void) async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            let id = try #require(
                try await conn.query(
                    """
                    INSERT INTO godwit.jobs (kind, name, payload, max_attempts)
                    VALUES ('sql', $1, jsonb_build_object('sql', $2::text), 1) RETURNING id
                    """,
                    [Self.name, #"DO $$ BEGIN RAISE EXCEPTION E'boom\x1b[31m\u009b2J red'; END $$"#]
                ).first?.int64("id"))
            await conn.close()
            let worker = try await GodwitCommand.run(["worker", "--drain", "--log-level", "info", "-D", db.url])
            #expect(worker.status == 0, "\(worker.stderr)")
            // The worker logs the job's name and its error, one log line each.
            #expect(controls(in: worker.stderr) == [], "\(worker.stderr)")
            #expect(
                worker.stderr.contains(#"name=evil\u001B[2K\u000Dname\u001B]52;c;ZXZpbA==\u0007"#), "\(worker.stderr)")
            #expect(worker.stderr.contains(#"error=boom\u001B[31m\u009B2J red"#), "\(worker.stderr)")
            #expect(!worker.stderr.contains("\n2026-01-01T00:00:00 info forged"), "\(worker.stderr)")
            try await body(db, id)
        }
    }

    @Test func jobListShowAndWatchEscapeWhatTheDatabaseHolds() async throws {
        try await withFailedJob { db, id in
            let list = try await GodwitCommand.run(["job", "list", "-D", db.url])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(controls(in: list.stdout) == [], "\(list.stdout)")
            #expect(list.stdout.contains(#"evil\u001B[2K\u000Dname"#), "\(list.stdout)")
            #expect(list.stdout.contains(#"boom\u001B[31m\u009B2J red"#), "\(list.stdout)")

            // JSON keeps its meaning: the same name comes back from it.
            struct Listed: Decodable {
                var id: Int64
                var name: String
                var lastError: String?
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let json = try await GodwitCommand.run(["job", "list", "--format", "json", "-D", db.url])
            #expect(controls(in: json.stdout) == [], "\(json.stdout)")
            let listed = try decoder.decode([Listed].self, from: Data(json.stdout.utf8))
            #expect(listed.map(\.name) == [Self.name])
            let show = try await GodwitCommand.run(["job", "show", "\(id)", "-D", db.url])
            #expect(show.status == 0, "\(show.stderr)")
            #expect(controls(in: show.stdout) == [], "\(show.stdout)")
            #expect(try decoder.decode(Listed.self, from: Data(show.stdout.utf8)).name == Self.name)

            // Piped, watch prints the name on one line, and the error.
            let watch = try await GodwitCommand.run(["job", "watch", "\(id)", "-D", db.url])
            #expect(watch.status == 1, "\(watch.stderr)")
            #expect(controls(in: watch.stdout) == [], "\(watch.stdout)")
            #expect(watch.stdout.split(separator: "\n").count == 2, "\(watch.stdout)")
            #expect(watch.stdout.hasPrefix(#"evil\u001B[2K\u000Dname"#), "\(watch.stdout)")
            #expect(watch.stdout.contains(#"\u000A2026-01-01T00:00:00 info forged: failed"#), "\(watch.stdout)")
            #expect(watch.stdout.contains(#"error: boom\u001B[31m\u009B2J red"#), "\(watch.stdout)")
        }
    }

    /// The governor's reason is the worker's text, but it quotes what the enqueuer chose (a
    /// table's name): `job show` gives it beside the batch size, `job watch` after the batch
    /// size, both escaped for the terminal, and JSON keeps its meaning.
    @Test func jobShowAndWatchPrintTheGovernorsReasonEscaped() async throws {
        let reason = "others write public.\u{1B}]52;c;ZXZpbA==\u{07}media\u{9B}2J: 4,800 rows \u{202E}under 3%\nforged"
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            try await conn.execute("CREATE TABLE media (id bigint PRIMARY KEY)")
            let id = try #require(
                try await conn.query(
                    "SELECT godwit.enqueue_batched('backfill media', 'media', 'id', 'UPDATE media SET id = id WHERE id BETWEEN $1 AND $2') AS id"
                ).first?.int64("id"))
            try await conn.query(
                "UPDATE godwit.job_progress SET batch_size = 4800, size_reason = $2 WHERE job_id = $1", [id, reason])
            // Running, with a heartbeat ahead so that no slow run sees it go stale.
            try await conn.query(
                """
                UPDATE godwit.jobs SET state = 'running', started_at = now(), heartbeat_at = now() + interval '1 hour'
                WHERE id = $1
                """, [id])

            let show = try await GodwitCommand.run(["job", "show", "\(id)", "-D", db.url])
            #expect(show.status == 0, "\(show.stderr)")
            #expect(controls(in: show.stdout) == [], "\(show.stdout)")
            struct Shown: Decodable {
                var batchSize: Int?
                var sizeReason: String?
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let shown = try decoder.decode(Shown.self, from: Data(show.stdout.utf8))
            #expect(shown.batchSize == 4800)
            #expect(shown.sizeReason == reason, "JSON keeps the reason's meaning")

            // Piped, watch prints a line at once: the reason right after the batch size, on the
            // line's one line. Then the job ends, and so does watch.
            let watch = GodwitCommand.start(["job", "watch", "\(id)", "--interval", "0.2", "-D", db.url])
            let printed = await eventually { watch.currentStdout.contains("batch 4800 (") }
            try await conn.query("UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [id])
            await conn.close()
            let watched = printed ? await watch.wait() : await watch.stop()
            #expect(printed, "\(watched.stdout) \(watched.stderr)")
            #expect(watched.status == 0, "\(watched.stderr)")
            #expect(controls(in: watched.stdout) == [], "\(watched.stdout)")
            let first = watched.stdout.split(separator: "\n").first.map(String.init) ?? ""
            #expect(
                first.contains(
                    #"batch 4800 (others write public.\u001B]52;c;ZXZpbA==\u0007media\u009B2J: 4,800 rows \u202Eunder 3%\u000Aforged)"#
                ),
                "\(watched.stdout)")
        }
    }

    /// A payload nested deeper than JSONDecoder goes (512) is valid jsonb; it must not make
    /// every `job list` and the job's `job show` fail.
    ///
    /// A payload JSONDecoder cannot read (nested past its depth limit of 512) is shown as its text.
    @Test func aPayloadNestedTooDeepDoesNotBreakListOrShow() async throws {
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await QueueSchema.withJobs().install(on: conn)
            try await conn.execute("INSERT INTO godwit.jobs (kind, name) VALUES ('noop', 'plain')")
            let deep = try #require(
                try await conn.query(
                    """
                    INSERT INTO godwit.jobs (kind, name, payload)
                    VALUES ('noop', 'deep', (repeat('[', 600) || repeat(']', 600))::jsonb) RETURNING id
                    """
                ).first?.int64("id"))
            await conn.close()
            let list = try await GodwitCommand.run(["job", "list", "-D", db.url])
            let show = try await GodwitCommand.run(["job", "show", "\(deep)", "-D", db.url])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains("deep") && list.stdout.contains("plain"), "\(list.stdout)")
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains(String(repeating: "[", count: 600)), "\(show.stdout.prefix(300))")
        }
    }
}
