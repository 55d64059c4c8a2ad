import Foundation
import GodwitChanges
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A rename of `media.title` to `caption`, set up by hand as `change start` and the worker
/// leave it once ready: caption added, filled, its NOT NULL check validated, its index built,
/// and the change recorded with its `statements` (the shared contract's keys). The reader
/// evidence and complete are tested against it without a worker.
enum ReadyChange {
    static let name = "media_caption"
    static let table = #""public"."media""#
    static let notNullCheck = "godwit_nn_caption"
    static let index = "media_caption_idx"

    /// The folded migration: the change's end state as one plain migration.
    static let migration = """
        ALTER TABLE media ADD COLUMN caption text;
        UPDATE media SET caption = title;
        ALTER TABLE media ALTER COLUMN caption SET NOT NULL;
        CREATE INDEX media_caption_idx ON media (caption);
        ALTER TABLE media DROP COLUMN title;

        """

    /// The change's `statements`, as start would store them.
    static var statements: String {
        let object: [String: Any] = [
            "table": table,
            "key": #""id""#,
            "disagrees": #"NOT ("caption" IS NOT DISTINCT FROM ("title") OR "title" IS NOT DISTINCT FROM ("caption"))"#,
            "indexes": [
                [
                    "name": index,
                    "create": #"CREATE INDEX CONCURRENTLY "media_caption_idx" ON "public"."media" ("caption")"#,
                ]
            ],
            "uniques": [] as [Any],
            "validate": [#"ALTER TABLE "public"."media" VALIDATE CONSTRAINT "godwit_nn_caption""#],
            "complete": [
                #"ALTER TABLE "public"."media" ALTER COLUMN "caption" SET NOT NULL"#,
                #"ALTER TABLE "public"."media" DROP CONSTRAINT "godwit_nn_caption""#,
                #"ALTER TABLE "public"."media" DROP COLUMN "title""#,
            ],
            "abort": [#"ALTER TABLE "public"."media" DROP COLUMN IF EXISTS "caption""#],
            "migration": migration,
            "dropped": ["title"],
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// `media (id, title NOT NULL)` with 100 rows, as the application's first migration makes it.
    static let tableSQL = """
        CREATE TABLE media (id bigint PRIMARY KEY, title text NOT NULL);
        """

    /// Sets up the change ready on `conn`: Godwit's schema, pg_stat_statements (unless
    /// `statistics` is false), the table (unless a migration made it), and what start and the
    /// worker would have done.
    static func create(on conn: Connection, statistics: Bool = true, createTable: Bool = true) async throws {
        try await QueueSchema.withChanges().install(on: conn)
        if statistics { try await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements") }
        if createTable { try await conn.execute(tableSQL) }
        try await conn.execute(
            """
            INSERT INTO public.media SELECT g, 'title ' || g FROM generate_series(1, 100) g;
            ALTER TABLE public.media ADD COLUMN caption text;
            ALTER TABLE public.media ADD CONSTRAINT godwit_nn_caption CHECK (caption IS NOT NULL) NOT VALID;
            UPDATE public.media SET caption = title;
            ALTER TABLE public.media VALIDATE CONSTRAINT godwit_nn_caption;
            CREATE INDEX media_caption_idx ON public.media (caption);
            """)
        try await conn.query(
            """
            INSERT INTO godwit.change_records (name, table_name, table_oid, key_column, phase, file, source,
                definition, statements, rows_total, verified_rows, disagreeing_rows, verified_at,
                indexes_built_at, validated_at, ready_at)
            VALUES ($1, $2, 'public.media'::regclass, 'id', 'ready', 'changes/media_caption.sql', '-- godwit:change',
                '{}', $3::jsonb, 100, 100, 0, now(), now(), now(), now())
            """, [name, table, statements])
    }

    /// The same rename as a change file, for `change start` itself.
    static let file = """
        -- godwit:change
        -- table: media
        -- add-column: caption text = title
        -- drop-column: title = caption
        -- not-null: caption
        -- index: caption

        """

    /// Takes the change to ready through `change start` itself (ChangeManager) over `media`
    /// made by a migration, then does what its backfill job and the worker's finish job do:
    /// the backfill's statement over the key ranges, the index builds, the validations, a
    /// verification that reads zero, the backfill job marked succeeded and the phase ready.
    static func start(on conn: Connection) async throws {
        try await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        try await conn.execute("INSERT INTO public.media SELECT g, 'title ' || g FROM generate_series(1, 100) g")
        let started = try await ChangeManager(lockPolicy: quickLocks).start(
            text: file, file: "changes/media_caption.sql", on: conn)
        let backfill = try #require(started.backfillJob)
        let statement = try await conn.query(
            "SELECT payload->>'statement' AS s FROM godwit.jobs WHERE id = $1", [backfill]
        ).first!.string("s")
        try await conn.query(statement, [1, 100])
        let statements = try await conn.query(
            "SELECT statements::text AS s FROM godwit.change_records WHERE name = $1", [name]
        ).first!.string("s")
        let stored = try JSONDecoder().decode(ChangeStatements.self, from: Data(statements.utf8))
        for index in stored.indexes { try await conn.execute(index.create) }
        for validate in stored.validate { try await conn.execute(validate) }
        let disagreeing = try await conn.query(
            "SELECT count(*) AS n FROM \(stored.table) WHERE \(stored.disagrees)"
        ).first!.int64("n")
        #expect(disagreeing == 0)
        try await conn.query(
            """
            UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1;
            """, [backfill])
        try await conn.query(
            """
            UPDATE godwit.change_records SET phase = 'ready', rows_total = 100, verified_rows = 100,
                disagreeing_rows = $2, verified_at = now(), indexes_built_at = now(), validated_at = now(),
                ready_at = now()
            WHERE name = $1
            """, [name, disagreeing])
    }

    /// The completion the tests run: the change, quick lock retries.
    static func completion(
        quietFor: Duration = .zero, waiver: String? = nil, folder: ChangeCompletion.MigrationFolder? = nil
    ) -> ChangeCompletion {
        ChangeCompletion(
            name: name, quietFor: quietFor, waiver: waiver, lockPolicy: quickLocks, migrationFolder: folder)
    }

    /// A short lock timeout and quick retries, so that a test meeting a lock moves on soon.
    static let quickLocks = LockTimeoutPolicy(
        lockTimeout: .milliseconds(300), retries: 1000,
        backoff: Backoff(base: .milliseconds(20), max: .milliseconds(200)))

    /// The change's phase.
    static func phase(on conn: Connection) async throws -> String {
        try await conn.query("SELECT phase FROM godwit.change_records WHERE name = $1", [name]).first!.string("phase")
    }

    /// Whether media still has its title column.
    static func hasTitle(on conn: Connection) async throws -> Bool {
        try await conn.query(
            """
            SELECT count(*) AS n FROM pg_attribute
            WHERE attrelid = 'public.media'::regclass AND attname = 'title' AND NOT attisdropped
            """
        ).first!.int("n") == 1
    }

    /// The reader row of `title`.
    static func reader(on conn: Connection) async throws -> PostgresRow? {
        try await conn.query(
            """
            SELECT last_seen_at::text AS last_seen_at, window_started_at::text AS window_started_at,
                   window_reason, sampled_at::text AS sampled_at, array_to_string(application_names, ',') AS names,
                   now() - window_started_at > interval '30 minutes' AS old_window
            FROM godwit.change_readers WHERE change_name = $1 AND column_name = 'title'
            """, [name]
        ).first
    }

    /// The app schema (`public`) as `pg_dump --schema-only` prints it, less its `\restrict`
    /// lines (a random key each run).
    static func schemaDump(of database: TestDatabase) async throws -> String {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: database.url)
        let dump = try await ClientProgram.run(
            "pg_dump", ["--schema-only", "--schema=public", "--dbname=\(conninfo)"], environment: environment)
        guard dump.succeeded else { throw TestSetupError(message: "pg_dump failed: \(dump.stderr)") }
        return dump.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    /// A session of the application: its own connection with an application_name.
    static func application(_ database: TestDatabase, name: String) async throws -> Connection {
        try await Connection.connect(database.url, applicationName: name)
    }
}

/// `body`'s error as a `CompletionError`, or a recorded issue when it throws none or another.
func completionError(_ body: () async throws -> Void) async -> CompletionError? {
    do {
        try await body()
        Issue.record("complete did not refuse")
        return nil
    } catch let error as CompletionError {
        return error
    } catch {
        Issue.record("not a CompletionError: \(error)")
        return nil
    }
}
