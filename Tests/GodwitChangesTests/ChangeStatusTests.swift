import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `ChangeStatus`: the `changes` view's rows, one change's details with the state of what it
/// builds read from the catalog, and the reader evidence, for changes recorded by hand (as
/// `change start` would record them).
@Suite("Change status")
struct ChangeStatusTests {
    static let file = """
        -- godwit:change
        -- table: media
        -- add-column: caption text = title
        -- drop-column: title = caption
        -- not-null: caption
        -- index: caption
        -- unique: slug
        -- check: caption_short length(caption) < 500
        -- foreign-key: owner_id REFERENCES owners (id)
        """

    /// A database with the changes' part and a `media` table with the columns the file names.
    static func prepared(_ conn: Connection) async throws {
        try await QueueSchema.withChanges().install(on: conn)
        try await conn.execute(
            """
            CREATE TABLE owners (id bigint PRIMARY KEY);
            CREATE TABLE media (id bigint PRIMARY KEY, title text, caption text, slug text, owner_id bigint);
            """)
    }

    /// Records a change as `change start` would, in `phase`.
    static func record(
        _ conn: Connection, name: String = "rename_title", phase: String = "backfilling", source: String = file,
        disagreeing: Int64? = nil
    ) async throws {
        try await conn.query(
            """
            INSERT INTO godwit.change_records (name, table_name, table_oid, key_column, phase, file, source, definition,
                statements, disagreeing_rows)
            VALUES ($1, '"public"."media"', 'public.media'::regclass, 'id', $2, 'changes/' || $1 || '.sql', $3, '{}', '{}', $4)
            """, [name, phase, source, disagreeing])
    }

    @Test func listsEveryChangeWithTheIssuesKeys() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.prepared(conn)
            let status = ChangeStatus(schema: QueueSchema(name: "godwit"))
            #expect(try await status.list(on: conn).isEmpty)
            try await Self.record(conn)
            try await Self.record(conn, name: "old_one", phase: "completed")
            try await Self.record(conn, name: "ready_one", phase: "ready", disagreeing: 0)
            let changes = try await status.list(on: conn)
            #expect(changes.map(\.name).sorted() == ["old_one", "ready_one", "rename_title"])
            // In flight first.
            #expect(changes.last?.name == "old_one")
            let change = try #require(changes.first { $0.name == "rename_title" })
            #expect(change.table == "\"public\".\"media\"")
            #expect(change.phase == "backfilling")
            #expect(change.rowsDone == 0)
            #expect(change.disagreeingRows == nil)
            #expect(!change.ready)
            #expect(!change.blockedBy.isEmpty, "a backfilling change is blocked: \(change.blockedBy)")
            #expect(changes.first { $0.name == "old_one" }?.blockedBy == ["the change is completed"])

            // Every key in JSON, null included.
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(change)) as? [String: Any]
            for key in [
                "name", "table", "phase", "rows_done", "rows_total", "disagreeing_rows", "ready", "blocked_by",
            ] {
                #expect(json?.keys.contains(key) == true, "JSON lacks \(key)")
            }
            #expect(json?["disagreeing_rows"] is NSNull)

            var counts = try await status.countsByPhase(on: conn)
            #expect(counts.count == ChangePhase.allCases.count)
            #expect(counts[.backfilling] == 1 && counts[.completed] == 1 && counts[.ready] == 1)
            #expect(counts[.planned] == 0 && counts[.aborted] == 0)
            counts = try await ChangeStatus(schema: QueueSchema(name: "elsewhere")).countsByPhase(on: conn)
            #expect(counts.values.allSatisfy { $0 == 0 } && counts.count == ChangePhase.allCases.count)
        }
    }

    @Test func detailsReadWhatTheChangeBuildsFromTheCatalog() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.prepared(conn)
            try await Self.record(conn)
            let status = ChangeStatus(schema: QueueSchema(name: "godwit"))
            let names = ChangeNames(change: "rename_title", table: "media")

            var details = try #require(try await status.details(of: "rename_title", on: conn))
            #expect(details.droppedColumns == ["title"])
            #expect(details.source == Self.file)
            func state(_ kind: String) -> String? { details.objects.first { $0.kind == kind }?.state }
            #expect(state("index") == "not built")
            #expect(state("unique") == "not built")
            #expect(state("check") == "missing")
            #expect(state("foreign-key") == "missing")
            #expect(state("not-null") == "missing")
            #expect(details.objects.allSatisfy { !$0.done })

            // What start and the worker add, step by step.
            try await conn.execute(
                """
                ALTER TABLE media ADD CONSTRAINT \(quoteIdentifier(names.notNullCheck("caption"))) CHECK (caption IS NOT NULL) NOT VALID;
                ALTER TABLE media ADD CONSTRAINT caption_short CHECK (length(caption) < 500) NOT VALID;
                ALTER TABLE media ADD CONSTRAINT \(names.foreignKey("owner_id")) FOREIGN KEY (owner_id) REFERENCES owners (id) NOT VALID;
                CREATE INDEX \(names.index(["caption"])) ON media (caption);
                CREATE UNIQUE INDEX \(names.unique(["slug"])) ON media (slug);
                """)
            details = try #require(try await status.details(of: "rename_title", on: conn))
            #expect(state("index") == "valid")
            #expect(state("unique") == "built, not attached")
            #expect(state("check") == "not valid")
            #expect(state("foreign-key") == "not valid")
            #expect(state("not-null") == "not valid")

            try await conn.execute(
                """
                ALTER TABLE media VALIDATE CONSTRAINT \(quoteIdentifier(names.notNullCheck("caption")));
                ALTER TABLE media VALIDATE CONSTRAINT caption_short;
                ALTER TABLE media VALIDATE CONSTRAINT \(names.foreignKey("owner_id"));
                ALTER TABLE media ADD CONSTRAINT \(names.unique(["slug"])) UNIQUE USING INDEX \(names.unique(["slug"]));
                """)
            details = try #require(try await status.details(of: "rename_title", on: conn))
            #expect(state("unique") == "attached")
            #expect(state("check") == "validated")
            #expect(state("foreign-key") == "validated")
            #expect(state("not-null") == "validated")
            #expect(details.objects.allSatisfy { $0.done }, "\(details.objects)")

            // Complete sets NOT NULL and drops the check.
            try await conn.execute(
                """
                ALTER TABLE media ALTER caption SET NOT NULL;
                ALTER TABLE media DROP CONSTRAINT \(quoteIdentifier(names.notNullCheck("caption")));
                """)
            details = try #require(try await status.details(of: "rename_title", on: conn))
            #expect(state("not-null") == "NOT NULL")

            #expect(try await status.details(of: "nothing_by_that_name", on: conn) == nil)
        }
    }

    @Test func detailsShowTheReaderEvidencePerDroppedColumn() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await Self.prepared(conn)
            try await Self.record(conn)
            let status = ChangeStatus(schema: QueueSchema(name: "godwit"))
            var details = try #require(try await status.details(of: "rename_title", on: conn))
            // Listed before any sample, with no evidence, and sampling not known yet.
            #expect(details.readers == [ReaderEvidence(column: "title")])
            #expect(details.readerSampling == nil)

            try await conn.execute(
                """
                INSERT INTO godwit.change_readers (change_name, column_name, last_seen_at, window_started_at, sampled_at,
                    application_names)
                VALUES ('rename_title', 'title', '2026-12-07 04:00:00+00', '2026-12-07 03:00:00+00',
                    '2026-12-07 04:00:10+00', ARRAY['api v1', 'report-job']);
                INSERT INTO godwit.change_sampling (available, unavailable_reason, sampled_at)
                VALUES (false, 'pg_stat_statements is not installed', now());
                """)
            details = try #require(try await status.details(of: "rename_title", on: conn))
            let reader = try #require(details.readers.first)
            #expect(details.readers.count == 1)
            #expect(reader.column == "title")
            #expect(reader.lastSeenAt?.hasPrefix("2026-12-07T04:00:00") == true, "\(reader)")
            #expect(reader.applicationNames == ["api v1", "report-job"])
            #expect(details.readerSampling == false)
            #expect(details.readerSamplingUnavailable == "pg_stat_statements is not installed")

            // The JSON of the details carries the summary's keys at the top, and the evidence.
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(details)) as? [String: Any]
            #expect(json?["name"] as? String == "rename_title")
            #expect(json?["blocked_by"] is [String])
            let readers = json?["readers"] as? [[String: Any]]
            #expect(readers?.first?["application_names"] as? [String] == ["api v1", "report-job"])
        }
    }

    /// Whoever may read the schema (grant_read's grantees) reads the view, and through it the
    /// status, without any right to the tables behind it.
    @Test func aRoleWithoutRightsToTheTablesReadsTheStatus() async throws {
        try await withRoles(["godwit_status_reader"]) { roles in
            try await withTestDatabase { database in
                let conn = try await database.connect()
                try await Self.prepared(conn)
                try await Self.record(conn)
                try await conn.execute("GRANT USAGE ON SCHEMA godwit TO \(roles[0].quoted)")
                let reader = try await roles[0].connect(database)
                await #expect(throws: PostgresError.self) {
                    try await reader.query("SELECT * FROM godwit.change_records")
                }
                let details = try #require(
                    try await ChangeStatus(schema: QueueSchema(name: "godwit")).details(of: "rename_title", on: reader))
                #expect(details.summary.phase == "backfilling")
                #expect(details.objects.count == 5)
                await reader.close()
            }
        }
    }
}
