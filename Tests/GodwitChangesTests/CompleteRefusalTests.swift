import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `godwit change complete` refuses, naming the missing evidence, and applies nothing; a
/// `--without-reader-check` waiver skips the reader evidence only, and is recorded.
@Suite("Complete's refusals")
struct CompleteRefusalTests {
    /// One piece of evidence taken away from a ready change, and the words that name it.
    struct Missing: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var sql: String
        var expected: String
        var quietFor: Duration = .zero
    }

    static let missing: [Missing] = [
        Missing(
            testDescription: "not ready", sql: "UPDATE godwit.change_records SET phase = 'verifying'",
            expected: "the change is verifying, not ready"),
        Missing(
            testDescription: "backfill not succeeded",
            sql: """
                WITH j AS (INSERT INTO godwit.jobs (kind, name, state) VALUES ('batched', 'media_caption backfill', 'running')
                           RETURNING id)
                UPDATE godwit.change_records SET backfill_job_id = (SELECT id FROM j)
                """,
            expected: "is running, not succeeded"),
        Missing(
            testDescription: "verification not run", sql: "UPDATE godwit.change_records SET verified_at = NULL",
            expected: "the verification has not run"),
        Missing(
            testDescription: "rows disagree", sql: "UPDATE godwit.change_records SET disagreeing_rows = 3",
            expected: "the verification read 3 rows whose two sides disagree"),
        Missing(
            testDescription: "index not built", sql: "DROP INDEX public.media_caption_idx",
            expected: "index media_caption_idx is not built"),
        Missing(
            testDescription: "index invalid",
            sql: "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.media_caption_idx'::regclass",
            expected: "index media_caption_idx is invalid"),
        Missing(
            testDescription: "constraint not validated",
            sql: """
                ALTER TABLE public.media DROP CONSTRAINT godwit_nn_caption,
                    ADD CONSTRAINT godwit_nn_caption CHECK (caption IS NOT NULL) NOT VALID
                """,
            expected: "constraint godwit_nn_caption is not validated"),
        Missing(
            testDescription: "pg_stat_statements missing", sql: "DROP EXTENSION pg_stat_statements",
            expected: "pg_stat_statements is not installed in database"),
        Missing(
            testDescription: "quiet window too short", sql: "SELECT 1", expected: "less than --quiet-for 60 min",
            quietFor: .seconds(3600)),
    ]

    @Test(arguments: missing)
    func refusesNamingTheMissingEvidence(_ missing: Missing) async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await conn.execute(missing.sql)
            let phase = try await ReadyChange.phase(on: conn)
            let error = await completionError {
                _ = try await ReadyChange.completion(quietFor: missing.quietFor).run(on: conn)
            }
            #expect(error?.code == .blocked)
            #expect(error?.blockers.count == 1, "\(error?.blockers ?? [])")
            #expect(error?.description.contains(missing.expected) == true, "\(error?.description ?? "")")
            #expect(error?.description.hasPrefix("change media_caption: complete refused, nothing was applied") == true)
            // Nothing applied.
            #expect(try await ReadyChange.hasTitle(on: conn))
            #expect(try await ReadyChange.phase(on: conn) == phase)
        }
    }

    /// Every reason at once, each named: one run says all that is missing.
    @Test func namesEveryReasonAtOnce() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await conn.execute(
                """
                UPDATE godwit.change_records SET phase = 'verifying', verified_at = NULL;
                DROP INDEX public.media_caption_idx;
                DROP EXTENSION pg_stat_statements;
                """)
            let error = await completionError { _ = try await ReadyChange.completion().run(on: conn) }
            #expect(error?.blockers.count == 4, "\(error?.blockers ?? [])")
        }
    }

    /// A statement naming the column within --quiet-for blocks, naming the application.
    @Test func aRecentReadBlocksNamingTheApplication() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await ReaderSampler().sample(on: conn)
            try await conn.execute("UPDATE godwit.change_readers SET window_started_at = now() - interval '1 hour'")
            let app = try await ReadyChange.application(database, name: "billing-v1")
            try await app.query("SELECT title FROM public.media WHERE id = $1", [5])
            let error = await completionError {
                _ = try await ReadyChange.completion(quietFor: .seconds(15 * 60)).run(on: conn)
            }
            await app.close()
            let read = error?.blockers.first { $0.hasPrefix("column title was read") }
            #expect(read?.hasSuffix("ago by billing-v1") == true, "\(error?.blockers ?? [])")
            #expect(try await ReadyChange.hasTitle(on: conn))
        }
    }

    /// What the view and status show before complete's own sample: not sampled yet, samples
    /// stopped.
    @Test func theViewNamesMissingAndStaleSamples() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            func blockers() async throws -> [String] {
                try await conn.query(
                    "SELECT unnest(godwit.change_blockers($1, interval '0')) AS b", [ReadyChange.name]
                ).rows.map { try $0.string("b") }
            }
            #expect(try await blockers().first?.contains("have not been sampled yet") == true)
            try await ReaderSampler().sample(on: conn)
            // Sampled: nothing blocks with --quiet-for 0 (unless the machine stalled this test
            // for 30 s since the sample, which the stale line below says).
            let sampled = try await blockers()
            #expect(sampled.allSatisfy { $0.contains("were last sampled") }, "\(sampled)")
            try await conn.execute("UPDATE godwit.change_readers SET sampled_at = now() - interval '10 minutes'")
            let stale = try await blockers()
            #expect(stale.first?.contains("were last sampled 10 min ago: is a worker running?") == true, "\(stale)")
        }
    }

    @Test func theWaiverSkipsTheReaderEvidenceAndIsRecorded() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn, statistics: false)
            let reason = "no pg_stat_statements on this managed server; v1 retired in deploy 4411"
            _ = try await ReadyChange.completion(quietFor: .seconds(3600), waiver: reason).run(on: conn)
            #expect(try await ReadyChange.phase(on: conn) == "completed")
            #expect(try await !ReadyChange.hasTitle(on: conn))
            let recorded = try await conn.query(
                "SELECT reader_check_waiver FROM godwit.change_records WHERE name = $1", [ReadyChange.name]
            ).first?["reader_check_waiver"]
            #expect(recorded == reason)
        }
    }

    @Test func theWaiverDoesNotSkipTheRest() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn, statistics: false)
            try await conn.execute("UPDATE godwit.change_records SET disagreeing_rows = 2")
            let error = await completionError {
                _ = try await ReadyChange.completion(waiver: "v1 is gone").run(on: conn)
            }
            #expect(error?.blockers == ["the verification read 2 rows whose two sides disagree"])
            let recorded = try await conn.query(
                "SELECT reader_check_waiver FROM godwit.change_records WHERE name = $1", [ReadyChange.name]
            ).first?["reader_check_waiver"]
            #expect(recorded == nil, "a refused complete records nothing, its waiver neither")
        }
    }

    /// The command prints the refusal as one line on stderr, and exits 1.
    @Test func theCommandRefusesInOneLine() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            defer { Task { await conn.close() } }
            try await ReadyChange.create(on: conn)
            try await conn.execute("UPDATE godwit.change_records SET disagreeing_rows = 3")
            let output = try await GodwitCommand.run(
                ["change", "complete", ReadyChange.name, "--quiet-for", "1h"],
                environment: ["DATABASE_URL": database.url])
            #expect(output.status == 1)
            #expect(output.stdout.isEmpty)
            let lines = output.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(output.stderr)")
            #expect(
                lines.first?.hasPrefix("error: change media_caption: complete refused, nothing was applied: ") == true)
            #expect(output.stderr.contains("3 rows whose two sides disagree"))
            #expect(output.stderr.contains("less than --quiet-for 60 min"))
            #expect(try await ReadyChange.hasTitle(on: conn))
        }
    }
}
