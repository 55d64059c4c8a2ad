import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// Records every phase move of every change in `public.phase_log`, so a test can tell a move
/// made twice from one made once.
func logPhaseMoves(_ conn: Connection) async throws {
    try await conn.execute(
        """
        CREATE TABLE public.phase_log (n bigserial PRIMARY KEY, name text, old text, new text);
        CREATE FUNCTION public.log_phase() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO public.phase_log (name, old, new) VALUES (NEW.name, OLD.phase, NEW.phase);
            RETURN NEW;
        END $$;
        CREATE TRIGGER log_phase AFTER UPDATE OF phase ON godwit.change_records FOR EACH ROW
            WHEN (OLD.phase IS DISTINCT FROM NEW.phase) EXECUTE FUNCTION public.log_phase();
        """)
}

func phaseMoves(_ conn: Connection) async throws -> [String] {
    try await conn.query("SELECT old || '->' || new AS m FROM public.phase_log ORDER BY n").rows.map {
        try $0.string("m")
    }
}

func jobRow(_ id: Int64, _ conn: Connection) async throws -> PostgresRow {
    try #require(
        try await conn.query(
            "SELECT state::text AS state, attempts, last_error FROM godwit.jobs WHERE id = $1", [id]
        ).first)
}

/// A change's finish job run by `godwit worker`: the supervisor releases it once the backfill
/// succeeded, and it verifies, builds the index, validates the NOT NULL check, and sets ready.
@Suite("A change's finish job on the worker", .serialized)
struct ChangeFinishTests {
    @Test func aChangeGoesFromBackfillingThroughVerifyingToReadyWithEveryRowRight() async throws {
        try await withChangesDatabase { db, conn in
            try await logPhaseMoves(conn)
            let change = try await RenameChange.start(.init(rows: 500, batchSize: 40), on: conn)
            let worker = changeWorker(db.url)
            let ready = try await eventually(timeout: .seconds(120)) { try await changePhase(conn) == "ready" }
            let output = await worker.stop()
            #expect(ready, "\(output.stderr.suffix(3000))")
            try await expectFinished(conn, rows: 500)
            #expect(try await phaseMoves(conn) == ["backfilling->verifying", "verifying->ready"])
            let finish = try await jobRow(change.finishJob, conn)
            #expect(try finish.string("state") == "succeeded")
            #expect(try finish.int("attempts") == 1)
            #expect(try await jobRow(change.backfillJob, conn).string("state") == "succeeded")
        }
    }

    /// Rows whose two sides disagree (written with the trigger off) are counted, the job fails
    /// naming the change, the count and the first keys, and the change stays verifying, with
    /// nothing built. Fixed and retried, the job verifies the whole table again and finishes.
    @Test func disagreeingRowsAreCountedAndKeepTheChangeFromReady() async throws {
        try await withChangesDatabase { db, conn in
            let change = try await RenameChange.start(
                .init(rows: 200, batchSize: 30, wrong: [3, 77, 150]), on: conn)
            let worker = changeWorker(db.url)
            let failed = try await eventually(timeout: .seconds(120)) {
                try await jobRow(change.finishJob, conn).string("state") == "failed"
            }
            #expect(failed, "\(worker.currentStderr.suffix(3000))")
            let record = try #require(try await changeRecord(conn))
            #expect(try record.string("phase") == "verifying")
            #expect(try record.int("disagreeing_rows") == 3)
            #expect(try record.int("verified_rows") == 200)
            #expect(try !record.bool("verified") && !record.bool("indexes_built") && !record.bool("validated"))
            let error = try record.string("error")
            #expect(error.contains(RenameChange.name) && error.contains("3 of 200 rows disagree"), "\(error)")
            #expect(error.contains("first keys: 3, 77, 150"), "\(error)")
            #expect(try await jobRow(change.finishJob, conn)["last_error"] == error)
            let indexes = try await conn.query(
                "SELECT count(*) AS n FROM pg_class WHERE relname = $1", [RenameChange.indexName]
            ).first?.int("n")
            #expect(indexes == 0, "nothing is built before every row agrees")

            try await conn.execute("UPDATE media SET caption = title WHERE id IN (3, 77, 150)")
            try await conn.query("SELECT godwit.retry($1)", [change.finishJob])
            let ready = try await eventually(timeout: .seconds(120)) { try await changePhase(conn) == "ready" }
            let output = await worker.stop()
            #expect(ready, "\(output.stderr.suffix(3000))")
            try await expectFinished(conn, rows: 200)
        }
    }

    /// A change with nothing to sync (constraints alone) has no backfill: its finish job is due
    /// at start, and builds the unique index, attaches it, validates the check, and sets ready.
    @Test func aChangeWithNothingToBackfillIsFinishedAtOnce() async throws {
        try await withChangesDatabase { db, conn in
            try await conn.execute(
                """
                CREATE TABLE media (id bigint PRIMARY KEY, title text NOT NULL);
                INSERT INTO media SELECT g, 'title ' || g FROM generate_series(1, 100) g;
                """)
            let started = try await ChangeManager().start(
                text: """
                    -- godwit:change
                    -- name: media_constraints
                    -- table: media
                    -- unique: title
                    -- check: title_short length(title) < 100
                    """, file: "changes/media_constraints.sql", on: conn)
            #expect(started.backfillJob == nil)
            #expect(started.phase == .verifying)
            let worker = changeWorker(db.url)
            let ready = try await eventually(timeout: .seconds(120)) {
                try await changePhase(conn, "media_constraints") == "ready"
            }
            let output = await worker.stop()
            #expect(ready, "\(output.stderr.suffix(3000))")
            let names = ChangeNames(change: "media_constraints", table: "media")
            let constraints = try await conn.query(
                """
                SELECT conname, contype::text AS type, convalidated FROM pg_constraint
                WHERE conrelid = 'media'::regclass AND contype IN ('u', 'c') ORDER BY conname
                """
            ).rows.map { "\(try $0.string("conname")) \(try $0.string("type")) \(try $0.string("convalidated"))" }
            #expect(constraints == ["\(names.unique(["title"])) u t", "title_short c t"])
            let record = try #require(try await changeRecord(conn, "media_constraints"))
            #expect(try record.int("verified_rows") == 100 && record.int("disagreeing_rows") == 0)
            #expect(try await jobRow(started.finishJob, conn).int("attempts") == 1)
        }
    }

    /// Two workers, each with its supervisor looking every 5 s and claiming jobs: the change
    /// moves once into each phase and the finish job runs once.
    @Test func twoWorkersAtOnceMoveEachPhaseOnceAndRunTheFinishJobOnce() async throws {
        try await withChangesDatabase { db, conn in
            try await logPhaseMoves(conn)
            let change = try await RenameChange.start(.init(rows: 300, batchSize: 25), on: conn)
            // Processes, so that the two race as two workers would; a 10 s lease, so that load on
            // the machine cannot make one rescue the other's job.
            let workers = try (0..<2).map { _ in try changeWorkerProcess(db.url, ["--lease-timeout", "10"]) }
            let ready = try await eventually(timeout: .seconds(120)) { try await changePhase(conn) == "ready" }
            var logs = ""
            for worker in workers {
                worker.signal(SIGTERM)
                logs += try await worker.wait().stderr.suffix(2000)
            }
            #expect(ready, "\(logs)")
            try await expectFinished(conn, rows: 300)
            #expect(try await phaseMoves(conn) == ["backfilling->verifying", "verifying->ready"], "\(logs)")
            #expect(try await jobRow(change.finishJob, conn).int("attempts") == 1, "\(logs)")
        }
    }
}
