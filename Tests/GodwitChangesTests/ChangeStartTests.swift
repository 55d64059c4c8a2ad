import Foundation
import GodwitChanges
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// `change start`: one transaction that adds the columns, the trigger and the NOT VALID
/// constraints, records the change and enqueues its backfill and finish jobs; two changes in
/// flight on one table; and start under a lock the application holds.
@Suite("Change start")
struct ChangeStartTests {
    @Test func startRecordsTheChangeAndEnqueuesTheBackfillAndAHeldFinishJob() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await ChangeTests.withChangeFile(
                "rename_title",
                """
                -- table: media
                -- add-column: caption text = title
                -- drop-column: title = caption
                -- not-null: caption
                -- index: caption
                -- batch-size: 25
                """
            ) { file in
                let output = try await GodwitCommand.run(["change", "start", file, "-D", database.url])
                #expect(output.status == 0, "\(output.stderr)")
                #expect(output.stdout == "rename_title\n")

                let record = try await conn.query(
                    """
                    SELECT c.phase, c.table_name, c.key_column, c.file, b.kind AS backfill_kind,
                           b.payload->>'batch_size' AS batch_size, f.kind AS finish_kind, f.payload::text AS payload,
                           f.run_at = 'infinity' AS held, f.state::text AS finish_state,
                           c.statements ?& ARRAY['table', 'key', 'disagrees', 'indexes', 'uniques', 'validate',
                                                'complete', 'abort', 'migration', 'dropped'] AS keys
                    FROM godwit.change_records c
                    JOIN godwit.jobs b ON b.id = c.backfill_job_id JOIN godwit.jobs f ON f.id = c.finish_job_id
                    WHERE c.name = 'rename_title'
                    """
                ).first!
                #expect(try record.string("phase") == "backfilling")
                #expect(try record.string("table_name") == "\"public\".\"media\"")
                #expect(try record.string("key_column") == "id")
                #expect(try record.string("file") == file)
                #expect(try record.string("backfill_kind") == "batched")
                #expect(try record.string("batch_size") == "25")
                #expect(try record.string("finish_kind") == "change")
                #expect(try record.string("payload") == #"{"change": "rename_title"}"#)
                #expect(try record.bool("held"))
                #expect(try record.string("finish_state") == "queued")
                #expect(try record.bool("keys"))

                // The column, the trigger and the NOT VALID check are there; the index is the worker's.
                let catalog = try await conn.query(
                    """
                    SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'caption') AS columns,
                           (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'media'::regclass AND NOT tgisinternal) AS triggers,
                           (SELECT count(*) FROM pg_constraint WHERE conrelid = 'media'::regclass AND contype = 'c'
                                AND NOT convalidated) AS unvalidated,
                           (SELECT count(*) FROM pg_indexes WHERE tablename = 'media' AND indexname = 'media_caption_idx') AS indexes
                    """
                ).first!
                #expect(try catalog.int("columns") == 1)
                #expect(try catalog.int("triggers") == 1)
                #expect(try catalog.int("unvalidated") == 1)
                #expect(try catalog.int("indexes") == 0)

                // A second start of the same file is refused, naming the file.
                let again = try await GodwitCommand.run(["change", "start", file, "-D", database.url])
                #expect(again.status == 1)
                #expect(
                    again.stderr.hasPrefix("error: \(file):1: a change named rename_title already exists"),
                    "\(again.stderr)")
                await conn.close()
            }
        }
    }

    @Test func aChangeWithNothingToSyncIsVerifyingAtOnceWithARunnableFinishJob() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let started = try await ChangeTests.start(
                "drop_legacy", "-- table: media\n-- drop-column: legacy\n-- check: media_views_nonneg views >= 0\n",
                on: conn)
            #expect(started.phase == .verifying)
            #expect(started.backfillJob == nil)
            let finish = try await conn.query(
                "SELECT run_at <= now() AS due, kind FROM godwit.jobs WHERE id = $1", [started.finishJob]
            ).first!
            #expect(try finish.bool("due"))
            #expect(try finish.string("kind") == "change")
            let triggers = try await conn.query(
                "SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = 'media'::regclass AND NOT tgisinternal"
            ).first!.int("n")
            #expect(triggers == 0)
            let statements = try await ChangeTests.statements("drop_legacy", on: conn)
            #expect(statements.dropped == ["legacy"])
            #expect(statements.disagrees == "false")
            #expect(statements.complete == [#"ALTER TABLE "public"."media" DROP COLUMN "legacy""#])
            // Both versions keep writing at once: the old one still writes legacy, the new one not.
            try await writeConcurrently(
                database,
                old: AppVersion(columns: ["legacy", "title"]) { column, n in "\(column) \(n)" },
                new: AppVersion(columns: ["title", "views"]) { column, n in column == "views" ? "\(n)" : "new \(n)" })
            let legacy = try await conn.query(
                "SELECT count(*) FILTER (WHERE legacy LIKE 'legacy %') AS old, count(*) FILTER (WHERE title LIKE 'new %') AS new FROM media"
            ).first!
            #expect(try legacy.int("old") > 0 && legacy.int("new") > 0)
            let error = await ChangeTests.serverError {
                try await conn.query("INSERT INTO media (title, views) VALUES ('bad', -1)")
            }
            #expect(error?.sqlState == SQLState("23514"))
            #expect(error?.message.contains("media_views_nonneg") == true)
            await conn.close()
        }
    }

    @Test func aStartThatFailsInItsDDLLeavesNothing() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let before = try await ChangeTests.schemaDump(of: database)
            // A text column cannot reference a bigint key: PostgreSQL refuses the constraint,
            // after the column and the trigger were added in the same transaction.
            let error = await #expect(throws: ChangeError.self) {
                _ = try await ChangeTests.start(
                    "owner_name",
                    """
                    -- table: media
                    -- add-column: owner_name text = owner_id::text
                    -- foreign-key: owner_name REFERENCES owners (id)
                    """, on: conn)
            }
            #expect(
                error?.description.hasPrefix("changes/owner_name.sql:2: start failed, nothing was applied: ") == true)
            #expect(try await ChangeTests.schemaDump(of: database) == before)
            let rows = try await conn.query(
                "SELECT (SELECT count(*) FROM godwit.change_records) + (SELECT count(*) FROM godwit.jobs) AS n"
            ).first!.int("n")
            #expect(rows == 0)
            await conn.close()
        }
    }

    @Test func startGivesUpAfterItsRetriesNamingTheLockAndLeavesNothing() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            try await QueueSchema.withChanges().install(on: conn)
            let holder = try await database.connect()
            try await holder.execute("BEGIN; SELECT count(*) FROM media;")
            let manager = ChangeManager(
                lockPolicy: LockTimeoutPolicy(
                    lockTimeout: .milliseconds(100), retries: 1,
                    backoff: Backoff(base: .milliseconds(10), max: .milliseconds(20))))
            let error = await #expect(throws: ChangeError.self) {
                _ = try await manager.start(
                    text: "-- godwit:change\n" + ChangeSyncTriggerTests.rename, file: "changes/rename_title.sql",
                    on: conn)
            }
            #expect(error?.code == .lockTimeout)
            let text = error?.description ?? ""
            #expect(
                text.hasPrefix("changes/rename_title.sql:2: start of change rename_title could not lock "), "\(text)")
            #expect(text.contains("after 2 tries"), "\(text)")
            #expect(text.hasSuffix("; nothing was applied"), "\(text)")
            try await holder.execute("COMMIT")
            let left = try await conn.query(
                """
                SELECT (SELECT count(*) FROM godwit.change_records) + (SELECT count(*) FROM godwit.jobs)
                     + (SELECT count(*) FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'caption') AS n
                """
            ).first!.int("n")
            #expect(left == 0)
            await holder.close()
            await conn.close()
        }
    }

    @Test func quotedTableAndColumnNamesAreQuotedEverywhere() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await conn.execute(
                """
                CREATE TABLE "Media Items" ("Id" bigint PRIMARY KEY, "Title" text);
                INSERT INTO "Media Items" SELECT g, 'title ' || g FROM generate_series(1, 30) g;
                """)
            let before = try await ChangeTests.schemaDump(of: database)
            let started = try await ChangeTests.start(
                "Quoted Change",
                """
                -- table: "Media Items"
                -- add-column: "Caption" text = "Title"
                -- drop-column: "Title" = "Caption"
                -- index: "Caption"
                -- not-null: "Caption"
                """, on: conn)
            try await conn.query(#"INSERT INTO "Media Items" ("Id", "Title") VALUES (100, 'old')"#)
            try await conn.query(#"INSERT INTO "Media Items" ("Id", "Caption") VALUES (101, 'new')"#)
            let statement = try await conn.query(
                "SELECT payload->>'statement' AS s FROM godwit.jobs WHERE id = $1", [started.backfillJob]
            ).first!.string("s")
            try await conn.query(statement, [0, 1000])
            let apart = try await conn.query(
                #"SELECT count(*) AS n FROM "Media Items" WHERE "Title" IS DISTINCT FROM "Caption""#
            ).first!.int("n")
            #expect(apart == 0)
            let statements = try await ChangeTests.statements("Quoted Change", on: conn)
            for index in statements.indexes { try await conn.execute(index.create) }
            for validate in statements.validate { try await conn.execute(validate) }
            try await ChangeTests.manager().abort(name: "Quoted Change", on: conn)
            #expect(try await ChangeTests.schemaDump(of: database) == before)
            await conn.close()
        }
    }

    @Test func twoChangesOnDisjointColumnsOfOneTableBothWork() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("rename_title", ChangeSyncTriggerTests.rename, on: conn)
            _ = try await ChangeTests.start("size_kb", ChangeSyncTriggerTests.typeChange, on: conn)
            try await writeConcurrently(
                database,
                old: AppVersion(columns: ["title", "size_bytes"]) { column, n in
                    column == "title" ? "old \(n)" : "\(n * 1000 + 3)"
                },
                new: AppVersion(columns: ["caption", "size_kb"]) { column, n in
                    column == "caption" ? "new \(n)" : "\(n)"
                })
            try await ChangeTests.backfill("rename_title", on: conn)
            try await ChangeTests.backfill("size_kb", on: conn)
            #expect(try await ChangeTests.disagreeing("rename_title", on: conn) == 0)
            #expect(try await ChangeTests.disagreeing("size_kb", on: conn) == 0)
            let nulls = try await conn.query(
                "SELECT count(*) AS n FROM media WHERE caption IS NULL OR size_kb IS NULL"
            ).first!.int("n")
            #expect(nulls == 0)
            await conn.close()
        }
    }

    @Test func aChangeOverlappingOneInFlightIsRefusedWithItsLine() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("rename_title", ChangeSyncTriggerTests.rename, on: conn)
            for (body, line) in [
                ("-- table: media\n-- index: views\n-- index: title\n", 4),
                ("-- table: media\n-- add-column: title_length integer = length(title)\n", 3),
                ("-- table: media\n-- not-null: caption\n", 3),
            ] {
                let error = await #expect(throws: ChangeError.self) {
                    _ = try await ChangeTests.start("overlap", body, on: conn)
                }
                #expect(error?.code == .refused)
                #expect(
                    error?.description.hasPrefix("changes/overlap.sql:\(line): column ") == true,
                    "\(String(describing: error))")
                #expect(error?.description.contains("change rename_title, still in flight") == true)
            }
            // Nothing of the refused starts stayed.
            let records = try await conn.query("SELECT count(*) AS n FROM godwit.change_records").first!.int("n")
            #expect(records == 1)
            // Once the first is aborted, the same columns are free.
            try await ChangeTests.manager().abort(name: "rename_title", on: conn)
            _ = try await ChangeTests.start("index_title", "-- table: media\n-- index: title\n", on: conn)
            await conn.close()
        }
    }

    @Test func startUnderAHeldLockRetriesWhileTheApplicationKeepsWriting() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            // The schema first, so that start's only wait is the lock below.
            try await QueueSchema.withChanges().install(on: conn)
            // A reader's open transaction holds ACCESS SHARE on media.
            let holder = try await database.connect()
            try await holder.execute("BEGIN; SELECT count(*) FROM media;")
            let app = try await database.connect()
            let writes = Counter()
            let stop = Counter()
            let appTask = Task {
                while stop.count == 0 {
                    try await app.query("INSERT INTO media (title) VALUES ('during start')")
                    writes.add()
                }
            }
            let retries = Counter()
            let startTask = Task {
                try await ChangeTests.manager().start(
                    text: "-- godwit:change\n" + ChangeSyncTriggerTests.rename, file: "changes/rename_title.sql",
                    on: conn, retrying: { _ in retries.add() })
            }
            // Start is retrying, and between its tries the application's writes go through.
            #expect(await eventually(timeout: .seconds(300)) { retries.count >= 2 })
            let seen = writes.count
            #expect(await eventually(timeout: .seconds(300)) { writes.count >= seen + 20 && retries.count >= 3 })
            let phaseWhileHeld = try await holder.query(
                "SELECT count(*) AS n FROM godwit.change_records"
            ).first!.int("n")
            #expect(phaseWhileHeld == 0, "nothing of start is visible while it waits")
            try await holder.execute("COMMIT")
            let outcome = await startTask.result
            stop.add()
            try await appTask.value
            let started = try outcome.get()
            #expect(started.phase == .backfilling)
            // The application's rows written during start are synced like any other.
            try await ChangeTests.backfill("rename_title", on: conn)
            #expect(try await ChangeTests.disagreeing("rename_title", on: conn) == 0)
            await app.close()
            await holder.close()
            await conn.close()
        }
    }
}
