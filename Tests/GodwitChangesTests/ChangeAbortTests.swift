import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `change abort`: the jobs cancelled and everything start added gone, in one transaction,
/// leaving the application's schema byte-equal to what it was before start.
@Suite("Change abort")
struct ChangeAbortTests {
    static let everything = """
        -- table: media
        -- add-column: caption text = title
        -- add-column: owner_ref bigint = owner_id
        -- drop-column: title = caption
        -- drop-column: owner_id = owner_ref
        -- not-null: caption
        -- check: media_views_nonneg views >= 0
        -- foreign-key: owner_ref REFERENCES owners (id)
        -- unique: slug
        -- index: caption
        """

    @Test func abortLeavesTheSchemaByteEqualAndCancelsTheJobs() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let before = try await ChangeTests.schemaDump(of: database)
            let started = try await ChangeTests.start("everything", Self.everything, on: conn)
            // The worker's part, as far as it goes before an abort: backfill, indexes built.
            try await ChangeTests.backfill("everything", on: conn)
            let statements = try await ChangeTests.statements("everything", on: conn)
            for index in statements.indexes { try await conn.execute(index.create) }
            for unique in statements.uniques {
                try await conn.execute(unique.create)
                try await conn.execute(unique.attach)
            }
            for validate in statements.validate { try await conn.execute(validate) }
            #expect(try await ChangeTests.schemaDump(of: database) != before)

            let output = try await GodwitCommand.run(["change", "abort", "everything", "-D", database.url])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(try await ChangeTests.schemaDump(of: database) == before)
            let record = try await conn.query(
                """
                SELECT c.phase, c.aborted_at IS NOT NULL AS stamped, b.state::text AS backfill, f.state::text AS finish
                FROM godwit.change_records c
                JOIN godwit.jobs b ON b.id = c.backfill_job_id JOIN godwit.jobs f ON f.id = c.finish_job_id
                WHERE c.name = 'everything'
                """
            ).first!
            #expect(try record.string("phase") == "aborted")
            #expect(try record.bool("stamped"))
            #expect(try record.string("backfill") == "cancelled")
            #expect(try record.string("finish") == "cancelled")
            #expect(started.backfillJob != nil)
            // The old application never noticed: it writes as before.
            try await conn.query("INSERT INTO media (title, owner_id) VALUES ('after abort', 3)")
            await conn.close()
        }
    }

    @Test func abortRightAfterStartLeavesTheSchemaByteEqual() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            let before = try await ChangeTests.schemaDump(of: database)
            _ = try await ChangeTests.start("split_name", ChangeSyncTriggerTests.split, on: conn)
            try await ChangeTests.manager().abort(name: "split_name", on: conn)
            #expect(try await ChangeTests.schemaDump(of: database) == before)
            await conn.close()
        }
    }

    @Test func abortRefusesAnUnknownChangeAndASecondAbort() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await ChangeTests.createMedia(on: conn)
            _ = try await ChangeTests.start("rename_title", ChangeSyncTriggerTests.rename, on: conn)
            let unknown = try await GodwitCommand.run(["change", "abort", "nosuch", "-D", database.url])
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "error: there is no change named nosuch\n")
            try await ChangeTests.manager().abort(name: "rename_title", on: conn)
            let again = try await GodwitCommand.run(["change", "abort", "rename_title", "-D", database.url])
            #expect(again.status == 1)
            #expect(again.stderr == "error: change rename_title is already aborted\n")
            await conn.close()
        }
    }
}
