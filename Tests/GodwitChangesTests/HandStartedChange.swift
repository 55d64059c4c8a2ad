import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A rename of `media.title` to `caption` set up as `godwit change start` leaves it, by hand:
/// the new column, a sync trigger, a NOT VALID NOT NULL check, the backfill (a batched job
/// enqueued from a file), the finish job (kind `change`, due never), and the change's record in
/// phase `backfilling` with its `statements`. The worker's side is what the tests exercise;
/// the trigger here is the least that keeps `caption` filled (the real one is start's).
///
/// `copy_title(title)` is the add expression: `secondsPerRow` makes it sleep, so that the
/// backfill and the verification, which both evaluate it for every row, take long enough for
/// a test to act in the middle of them.
struct HandStartedChange {
    static let name = "media_caption"
    static let indexName = "media_caption_idx"
    static let checkName = "media_caption_nn"

    var backfillJob: Int64
    var finishJob: Int64

    struct Options {
        var rows = 200
        var batchSize = 50
        var secondsPerRow = 0.0
        /// Keys whose `caption` is set wrong before the backfill, with the trigger off: the
        /// backfill leaves them (neither side changes) and verification must count them.
        var wrong: [Int] = []
    }

    static func start(_ options: Options = Options(), on conn: Connection) async throws -> HandStartedChange {
        try await conn.execute(
            """
            CREATE TABLE media (id bigint PRIMARY KEY, title text NOT NULL);
            INSERT INTO media SELECT g, 'title ' || g FROM generate_series(1, \(options.rows)) g;
            CREATE FUNCTION copy_title(t text) RETURNS text LANGUAGE sql VOLATILE
                AS $$ SELECT t FROM pg_sleep(\(options.secondsPerRow)) $$;
            ALTER TABLE media ADD COLUMN caption text;
            CREATE FUNCTION media_sync() RETURNS trigger LANGUAGE plpgsql
                SET search_path = pg_catalog, public, pg_temp AS $$
            BEGIN
                IF NEW.caption IS NULL THEN NEW.caption := copy_title(NEW.title); END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER media_sync BEFORE INSERT OR UPDATE ON media FOR EACH ROW EXECUTE FUNCTION media_sync();
            ALTER TABLE media ADD CONSTRAINT \(checkName) CHECK (caption IS NOT NULL) NOT VALID;
            ANALYZE media;
            """)
        if !options.wrong.isEmpty {
            try await conn.execute(
                """
                SET session_replication_role = replica;
                UPDATE media SET caption = 'wrong' WHERE id IN (\(options.wrong.map(String.init).joined(separator: ", ")));
                RESET session_replication_role;
                """)
        }
        let backfill = try BatchedJobDefinition.parse(
            """
            -- godwit:batched
            -- name: change \(name) backfill
            -- table: media
            -- key: id
            -- batch-size: \(options.batchSize)
            -- min-batch-size: \(options.batchSize)
            -- max-batch-size: \(options.batchSize)
            UPDATE media SET title = title WHERE id BETWEEN $1 AND $2
            """, file: "changes/\(name).sql")
        let backfillJob = try await backfill.enqueue(file: "changes/\(name).sql", schema: .withChanges(), on: conn)
        let finishJob = try await conn.query(
            """
            INSERT INTO godwit.jobs (kind, name, payload, run_at)
            VALUES ('change', $1, jsonb_build_object('change', $2::text), 'infinity') RETURNING id
            """, ["change \(name)", name]
        ).first!.int64("id")
        let statements: [String: Any] = [
            "table": #""public"."media""#,
            "key": #""id""#,
            "disagrees":
                "NOT (caption IS NOT DISTINCT FROM (copy_title(title)) OR title IS NOT DISTINCT FROM (caption))",
            "indexes": [
                [
                    "name": indexName,
                    "create": #"CREATE INDEX CONCURRENTLY "\#(indexName)" ON "public"."media" ("caption")"#,
                ]
            ],
            "uniques": [[String: String]](),
            "validate": [#"ALTER TABLE "public"."media" VALIDATE CONSTRAINT "\#(checkName)""#],
            "dropped": ["title"],
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: statements), as: UTF8.self)
        try await conn.query(
            """
            INSERT INTO godwit.change_records (name, table_name, table_oid, key_column, phase, file, source,
                definition, statements, backfill_job_id, finish_job_id)
            VALUES ($1, '"public"."media"', 'public.media'::regclass, 'id', 'backfilling', $2, '', '{}', $3::jsonb, $4, $5)
            """, [name, "changes/\(name).sql", json, backfillJob, finishJob])
        return HandStartedChange(backfillJob: backfillJob, finishJob: finishJob)
    }
}

/// Runs `body` with a fresh database that has the schema a worker installs (changes included).
func withChangesDatabase(_ body: (TestDatabase, Connection) async throws -> Void) async throws {
    try await withTestDatabase { db in
        let conn = try await db.connect()
        try await QueueSchema.withChanges().install(on: conn)
        do {
            try await body(db, conn)
        } catch {
            await conn.close()
            throw error
        }
        await conn.close()
    }
}

/// The change's row, as text by column.
func changeRecord(_ conn: Connection, _ name: String = HandStartedChange.name) async throws -> PostgresRow? {
    try await conn.query(
        """
        SELECT phase, verified_rows, disagreeing_rows, verify_cursor, error,
               verified_at IS NOT NULL AS verified, indexes_built_at IS NOT NULL AS indexes_built,
               validated_at IS NOT NULL AS validated, ready_at IS NOT NULL AS ready
        FROM godwit.change_records WHERE name = $1
        """, [name]
    ).first
}

func changePhase(_ conn: Connection, _ name: String = HandStartedChange.name) async throws -> String {
    try await changeRecord(conn, name)?.string("phase") ?? "missing"
}

/// What a ready change must show: every row's two sides agree, the index is valid, the NOT NULL
/// check validated, and no INVALID index is left on the table; `verified` rows (all `rows`
/// unless some came after the verification) were each counted once.
func expectFinished(_ conn: Connection, rows: Int, verified: Int? = nil) async throws {
    let row = try #require(
        try await conn.query(
            """
            SELECT count(*) AS total, count(*) FILTER (WHERE caption IS DISTINCT FROM title) AS wrong,
                   (SELECT count(*) FROM pg_index WHERE indrelid = 'media'::regclass AND NOT indisvalid) AS invalid,
                   (SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                    WHERE c.relname = $1) AS index_valid,
                   (SELECT convalidated FROM pg_constraint WHERE conname = $2) AS check_valid
            FROM media
            """, [HandStartedChange.indexName, HandStartedChange.checkName]
        ).first)
    #expect(try row.int("total") == rows)
    #expect(try row.int("wrong") == 0)
    #expect(try row.int("invalid") == 0)
    #expect(row["index_valid"] == "t")
    #expect(row["check_valid"] == "t")
    let record = try #require(try await changeRecord(conn))
    #expect(try record.string("phase") == "ready")
    #expect(try record.int("verified_rows") == verified ?? rows, "every row counted once: \(record.values)")
    #expect(try record.int("disagreeing_rows") == 0)
    #expect(record["error"] == nil)
    #expect(
        try record.bool("verified") && record.bool("indexes_built") && record.bool("validated") && record.bool("ready"))
}

/// Starts `godwit worker` in this process with test timings (a 10 s lease: in-process, its
/// heartbeats share the test process's threads), for a worker the test watches and stops.
func changeWorker(_ url: String, _ extra: [String] = []) -> RunningCommand {
    GodwitCommand.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--lease-timeout", "10", "--retry-delay", "0.05",
            "--log-level", "info",
        ]
            + extra)
}

/// Starts the `godwit worker` process, for a worker that is killed: a 2 s lease, so that
/// another worker rescues its job soon.
func changeWorkerProcess(_ url: String, _ extra: [String] = []) throws -> RunningProcess {
    try GodwitProcess.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--lease-timeout", "2", "--retry-delay", "0.05", "--log-level",
            "info",
        ]
            + extra)
}
