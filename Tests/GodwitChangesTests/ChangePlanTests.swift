import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `change plan`: the live schema refuses what cannot work, naming the file and line, and the
/// plan prints every phase while executing nothing.
@Suite("Change plan")
struct ChangePlanTests {
    /// The one line `plan` refuses `body` with.
    static func refusal(_ body: String, on conn: Connection) async -> String {
        do {
            _ = try await ChangeTests.manager().plan(
                text: "-- godwit:change\n" + body, file: "changes/c.sql", on: conn)
            return "planned"
        } catch {
            return "\(error)"
        }
    }

    @Test func refusalsNameTheFileAndLine() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await QueueSchema.withChanges().install(on: conn)
            try await conn.execute(
                """
                CREATE TABLE keyless (a text, b text);
                CREATE TABLE generated (id bigint PRIMARY KEY, w integer, doubled integer GENERATED ALWAYS AS (w * 2) STORED);
                """)
            _ = try await ChangeTests.start("rename_title", ChangeSyncTriggerTests.rename, on: conn)
            let cases: [(String, String)] = [
                (
                    "-- table: nowhere\n-- drop-column: x\n",
                    #"changes/c.sql:2: table "public"."nowhere" does not exist"#
                ),
                ("-- table: media\n-- drop-column: nosuch\n", "changes/c.sql:3: column nosuch does not exist in"),
                (
                    "-- table: media\n-- index: views\n-- not-null: nosuch\n",
                    "changes/c.sql:4: column nosuch does not exist"
                ),
                (
                    "-- table: media\n-- add-column: n nosuchtype = views\n",
                    "changes/c.sql:3: type `nosuchtype` of n does not parse"
                ),
                (
                    "-- table: media\n-- add-column: n integer = nosuch + 1\n",
                    "changes/c.sql:3: the expression of n does not type-check"
                ),
                (
                    "-- table: media\n-- add-column: n integer = now()\n",
                    "changes/c.sql:3: the expression of n does not type-check"
                ),
                (
                    "-- table: media\n-- add-column: n integer = views\n-- drop-column: views = now()\n",
                    "changes/c.sql:4: the expression of views does not type-check"
                ),
                (
                    "-- table: media\n-- add-column: n integer = views) FROM media; SELECT (1\n",
                    "changes/c.sql:3: the expression of n"
                ),
                ("-- table: media\n-- add-column: views integer = 1\n", "changes/c.sql:3: column views already exists"),
                (
                    "-- table: keyless\n-- add-column: c text = a\n",
                    #"changes/c.sql:2: table "public"."keyless" has no usable key"#
                ),
                (
                    "-- table: generated\n-- add-column: tripled integer = doubled\n",
                    "changes/c.sql:3: column doubled is generated"
                ),
                (
                    "-- table: media\n-- foreign-key: owner_id REFERENCES nowhere (id)\n",
                    #"changes/c.sql:3: table "public"."nowhere" does not exist"#
                ),
                (
                    "-- table: media\n-- foreign-key: owner_id REFERENCES owners (nosuch)\n",
                    "changes/c.sql:3: column nosuch does not exist in"
                ),
                (
                    "-- table: media\n-- index: caption\n",
                    "changes/c.sql:3: column caption is touched by change rename_title"
                ),
                (
                    "-- table: media\n-- not-null: views\n",
                    "changes/c.sql:3: column views of \"public\".\"media\" is already NOT NULL"
                ),
                ("-- table: media\n-- check: c views >\n", "changes/c.sql:3: check c does not type-check"),
            ]
            for (body, expected) in cases {
                let line = await Self.refusal(body, on: conn)
                #expect(line.hasPrefix(expected), "\(body)")
            }
            let records = try await conn.query("SELECT count(*) AS n FROM godwit.change_records").first!.int("n")
            #expect(records == 1)
            await conn.close()
        }
    }

    @Test func planPrintsEveryPhaseAndExecutesNothing() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await QueueSchema.withChanges().install(on: conn)
            try await conn.query("ANALYZE media")
            try await ChangeTests.withChangeFile(
                "rename_title",
                """
                -- table: media
                -- add-column: caption text = title
                -- drop-column: title = caption
                -- not-null: caption
                -- unique: slug
                -- foreign-key: owner_id REFERENCES owners (id)
                """
            ) { file in

                await conn.close()
                let observer = try await database.connect()
                let before = try await Self.settledState(observer, state: { try await Self.read(observer) })
                let output = try await GodwitCommand.run(["change", "plan", file, "-D", database.url])
                #expect(output.status == 0, "\(output.stderr)")
                for expected in [
                    #"ALTER TABLE "public"."media" ADD COLUMN "caption" text;"#,
                    "CREATE FUNCTION \"public\".\"godwit_sync_rename_title_",
                    "BEFORE INSERT OR UPDATE ON \"public\".\"media\" FOR EACH ROW",
                    "CHECK (\"caption\" IS NOT NULL) NOT VALID;",
                    "FOREIGN KEY (\"owner_id\") REFERENCES \"public\".\"owners\" (\"id\") NOT VALID;",
                    "FOR EACH ROW WHEN (pg_catalog.current_setting('godwit.change', true) IS DISTINCT FROM 'rename_title')",
                    #"UPDATE "public"."media" AS "media" SET "caption" = COALESCE("caption", (title)::text) WHERE "id" BETWEEN $1 AND $2 AND (("caption" IS NULL AND (title)::text IS NOT NULL)) AND (SELECT pg_catalog.set_config('godwit.change', 'rename_title', true)) IS NOT NULL;"#,
                    "CREATE UNIQUE INDEX CONCURRENTLY \"media_slug_key\"",
                    "-- complete: one transaction",
                    "ALTER TABLE \"public\".\"media\" DROP COLUMN \"title\";",
                    "-- abort: one transaction",
                ] {
                    #expect(output.stdout.contains(expected), "missing: \(expected)\n\(output.stdout)")
                }
                let after = try await Self.settledState(observer, state: { try await Self.read(observer) })
                #expect(before == after)
                await observer.close()
            }
        }
    }

    @Test func planParsesAnExpressionWithoutEvaluatingIt() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await conn.execute("CREATE SEQUENCE probe")
            let plan = try await ChangeTests.manager().plan(
                text: "-- godwit:change\n-- table: media\n-- add-column: n bigint = nextval('probe') + views\n",
                file: "changes/n.sql", on: conn)
            #expect(plan.contains("nextval('probe')"))
            let called = try await conn.query("SELECT is_called FROM probe").first!.bool("is_called")
            #expect(!called, "the expression ran")
            await conn.close()
        }
    }

    @Test func planBehindAnExclusiveLockGivesUpAfterTheLockTimeout() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let holder = try await database.connect()
            try await holder.execute("BEGIN; LOCK TABLE media IN ACCESS EXCLUSIVE MODE;")
            let error = await #expect(throws: ChangeError.self) {
                _ = try await ChangeTests.manager().plan(
                    text: "-- godwit:change\n" + ChangeSyncTriggerTests.rename, file: "changes/c.sql", on: conn)
            }
            #expect(error?.code == .lockTimeout)
            #expect(error?.description.hasPrefix("changes/c.sql:2: plan could not read media within ") == true)
            try await holder.execute("COMMIT")
            // Released, the same plan goes through on the same session.
            _ = try await ChangeTests.manager().plan(
                text: "-- godwit:change\n" + ChangeSyncTriggerTests.rename, file: "changes/c.sql", on: conn)
            await holder.close()
            await conn.close()
        }
    }

    /// What plan must leave as it was: media's rows and columns, the records, the jobs, and
    /// media's scan and write counters.
    static func read(_ conn: Connection) async throws -> String {
        try await conn.query("SELECT pg_stat_clear_snapshot()")
        return try await conn.query(
            """
            SELECT (SELECT md5(string_agg(m::text, ',' ORDER BY id)) FROM media m) || ' '
                || (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                    WHERE attrelid = 'media'::regclass AND attnum > 0) || ' '
                || (SELECT count(*) FROM godwit.change_records) || ' '
                || (SELECT count(*) FROM godwit.jobs) || ' '
                || (SELECT count(*) FROM pg_constraint WHERE conrelid = 'media'::regclass) || ' '
                || (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'media'::regclass) || ' '
                || (SELECT n_tup_ins || '/' || n_tup_upd || '/' || n_tup_del
                    FROM pg_stat_user_tables WHERE relname = 'media') AS s
            """
        ).first!.string("s")
    }

    /// The state once no other session of the database remains (so every session's counters
    /// have been flushed) and two reads agree.
    static func settledState(_ conn: Connection, state: () async throws -> String) async throws -> String {
        _ = await eventually(timeout: .seconds(30)) {
            let others = try? await conn.query(
                """
                SELECT count(*) AS n FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """
            ).first?.int("n")
            return others == 0
        }
        var last = try await state()
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(100))
            let now = try await state()
            if now == last { return now }
            last = now
        }
        return last
    }
}
