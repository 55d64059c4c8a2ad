import Foundation
import GodwitChanges
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A rename of `media.title` to `caption`, started with `godwit change start`'s own code
/// (`ChangeManager.start`): the new column, the sync trigger, the NOT VALID NOT NULL check, the
/// backfill (a batched job) and the finish job (kind `change`, due never until the backfill has
/// succeeded), and the change's record in phase `backfilling` with its `statements`.
///
/// `copy_title(title)` is the add expression: `secondsPerRow` makes it sleep, so that the
/// backfill and the verification, which both evaluate it for every row, take long enough for
/// a test to act in the middle of them.
struct RenameChange {
    static let name = "media_caption"
    static let names = ChangeNames(change: name, table: "media")
    static let indexName = names.index(["caption"])
    static let checkName = names.notNullCheck("caption")

    var backfillJob: Int64
    var finishJob: Int64

    struct Options {
        var rows = 200
        /// The backfill's batch size, fixed, which is also the verification's chunk.
        var batchSize = 50
        var secondsPerRow = 0.0
        /// Keys whose `caption` is set wrong after start, with the trigger off: the backfill
        /// leaves them (neither side changes) and verification must count them.
        var wrong: [Int] = []
    }

    static func start(_ options: Options = Options(), on conn: Connection) async throws -> RenameChange {
        try await conn.execute(
            """
            CREATE TABLE media (id bigint PRIMARY KEY, title text NOT NULL);
            INSERT INTO media SELECT g, 'title ' || g FROM generate_series(1, \(options.rows)) g;
            CREATE FUNCTION copy_title(t text) RETURNS text LANGUAGE sql VOLATILE
                AS $$ SELECT t FROM pg_sleep(\(options.secondsPerRow)) $$;
            ANALYZE media;
            """)
        let started = try await ChangeManager().start(
            text: """
                -- godwit:change
                -- table: media
                -- add-column: caption text = copy_title(title)
                -- drop-column: title = caption
                -- not-null: caption
                -- index: caption
                -- batch-size: \(options.batchSize)
                -- min-batch-size: \(options.batchSize)
                -- max-batch-size: \(options.batchSize)
                """, file: "changes/\(name).sql", on: conn)
        #expect(started.name == name)
        #expect(started.phase == .backfilling)
        if !options.wrong.isEmpty {
            try await conn.execute(
                """
                SET session_replication_role = replica;
                UPDATE media SET caption = 'wrong' WHERE id IN (\(options.wrong.map(String.init).joined(separator: ", ")));
                RESET session_replication_role;
                """)
        }
        return RenameChange(backfillJob: try #require(started.backfillJob), finishJob: started.finishJob)
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
func changeRecord(_ conn: Connection, _ name: String = RenameChange.name) async throws -> PostgresRow? {
    try await conn.query(
        """
        SELECT phase, verified_rows, disagreeing_rows, verify_cursor, error,
               verified_at IS NOT NULL AS verified, indexes_built_at IS NOT NULL AS indexes_built,
               validated_at IS NOT NULL AS validated, ready_at IS NOT NULL AS ready
        FROM godwit.change_records WHERE name = $1
        """, [name]
    ).first
}

func changePhase(_ conn: Connection, _ name: String = RenameChange.name) async throws -> String {
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
            """, [RenameChange.indexName, RenameChange.checkName]
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

/// Starts `godwit worker` in this process with test timings and the default lease (30 s: in-process,
/// its heartbeats wait for the test process's cooperative pool; see `drainWorker`), for a
/// worker the test watches and stops.
func changeWorker(_ url: String, _ extra: [String] = []) -> RunningCommand {
    GodwitCommand.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--retry-delay", "0.05", "--log-level", "info",
        ]
            + testWorkerConnectTimeout + extra)
}

/// Starts the `godwit worker` process, for a worker that is killed: a 2 s lease, so that
/// another worker rescues its job soon.
func changeWorkerProcess(_ url: String, _ extra: [String] = []) throws -> RunningProcess {
    try GodwitProcess.start(
        [
            "worker", "-D", url, "--poll-interval", "1", "--lease-timeout", "2", "--retry-delay", "0.05", "--log-level",
            "info",
        ]
            + testWorkerConnectTimeout + extra)
}
