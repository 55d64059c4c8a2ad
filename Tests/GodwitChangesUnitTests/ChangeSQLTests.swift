import Testing

@testable import GodwitChanges

/// The SQL a resolved change generates, read as text: start's DDL, the trigger function's
/// shape, and the `statements` keys the worker, complete and abort run.
@Suite("Change SQL")
struct ChangeSQLTests {
    /// The issue's rename, resolved as `ChangePlan` would against `public.media (id, title)`.
    static func plan(_ body: String, oldSide: [String], drops: [ChangePlan.SyncedDrop] = []) throws -> ChangePlan {
        let definition = try ChangeDefinition.parse("-- godwit:change\n" + body, file: "changes/rename_title.sql")
        return ChangePlan(
            definition: definition, file: "changes/rename_title.sql", schemaName: "public", tableName: "media",
            tableOID: 1, key: "id",
            columns: [
                .init(name: "id", type: "bigint", notNull: true, generated: false),
                .init(name: "title", type: "text", notNull: false, generated: false),
            ], syncedDrops: drops, oldSide: oldSide, writes: [], reads: [], foreignKeys: [])
    }

    static let rename = """
        -- table: media
        -- add-column: caption text = title
        -- drop-column: title = caption
        -- not-null: caption
        -- index: caption
        -- unique: caption
        """

    @Test func theRenamesStatementsAreTheContractsKeys() throws {
        let plan = try Self.plan(
            Self.rename, oldSide: ["title"], drops: [.init(name: "title", type: "text", expression: "caption")])
        let sql = ChangeSQL(plan)
        let check = ChangeNames(change: "rename_title", table: "media").notNullCheck("caption")
        #expect(
            sql.start.first == #"ALTER TABLE "public"."media" ADD COLUMN "caption" text"#)
        #expect(
            sql.start.last
                == #"ALTER TABLE "public"."media" ADD CONSTRAINT "\#(check)" CHECK ("caption" IS NOT NULL) NOT VALID"#)
        #expect(
            sql.backfill
                == #"UPDATE "public"."media" AS "media" SET "caption" = COALESCE("caption", (title)::text) WHERE "id" BETWEEN $1 AND $2 AND (("caption" IS NULL AND (title)::text IS NOT NULL)) AND (SELECT pg_catalog.set_config('godwit.change', 'rename_title', true)) IS NOT NULL"#
        )
        #expect(
            sql.start[2].contains(
                "FOR EACH ROW WHEN (pg_catalog.current_setting('godwit.change', true) IS DISTINCT FROM 'rename_title') EXECUTE FUNCTION"
            ))
        let statements = sql.statements
        #expect(statements.table == #""public"."media""#)
        #expect(statements.key == #""id""#)
        #expect(
            statements.disagrees
                == #"NOT (("caption" IS NOT DISTINCT FROM ((title)::text)) OR ("title" IS NOT DISTINCT FROM ((caption)::text)))"#
        )
        #expect(
            statements.indexes.map(\.create) == [
                #"CREATE INDEX CONCURRENTLY "media_caption_idx" ON "public"."media" ("caption")"#
            ])
        #expect(
            statements.uniques.map(\.attach) == [
                #"ALTER TABLE "public"."media" ADD CONSTRAINT "media_caption_key" UNIQUE USING INDEX "media_caption_key""#
            ])
        #expect(statements.validate == [#"ALTER TABLE "public"."media" VALIDATE CONSTRAINT "\#(check)""#])
        let trigger = ChangeNames(change: "rename_title", table: "media").trigger
        #expect(
            statements.complete == [
                #"DROP TRIGGER "\#(trigger)" ON "public"."media""#, #"DROP FUNCTION "public"."\#(trigger)"()"#,
                #"ALTER TABLE "public"."media" ALTER COLUMN "caption" SET NOT NULL"#,
                #"ALTER TABLE "public"."media" DROP CONSTRAINT "\#(check)""#,
                #"ALTER TABLE "public"."media" DROP COLUMN "title""#,
            ])
        #expect(statements.abort.allSatisfy { $0.contains("IF EXISTS") })
        #expect(statements.abort.last == #"ALTER TABLE "public"."media" DROP COLUMN IF EXISTS "caption""#)
        #expect(statements.dropped == ["title"])
        #expect(statements.migration.contains(#"UPDATE "public"."media" AS "media" SET "caption" = (title)::text;"#))
        #expect(statements.migration.hasSuffix("ALTER TABLE \"public\".\"media\" DROP COLUMN \"title\";\n"))
    }

    @Test func theTriggerFunctionPinsItsPathAndNamesTheChangeInItsRefusal() throws {
        let plan = try Self.plan(
            Self.rename, oldSide: ["title"], drops: [.init(name: "title", type: "text", expression: "caption")])
        let function = ChangeSQL(plan).functionDefinition
        #expect(function.contains("LANGUAGE plpgsql SET search_path = pg_catalog, \"public\", pg_temp"))
        #expect(function.contains("#variable_conflict use_column"))
        #expect(!function.contains("SECURITY DEFINER"))
        #expect(function.contains("SELECT (title)::text INTO godwit_new_1 FROM (SELECT NEW.*) AS \"media\";"))
        #expect(function.contains("SELECT (caption)::text INTO godwit_old_1 FROM (SELECT NEW.*) AS \"media\";"))
        #expect(function.contains("'change rename_title: this write sets both sides"))
        #expect(function.contains("USING ERRCODE = '23514'"))
        // No session state decides the direction.
        #expect(!function.lowercased().contains("current_setting"))
        #expect(!function.lowercased().contains("search_path')"))
    }

    /// Two new columns: each filled only where it is NULL and its expression is not, and the
    /// row written only when one of them needs it; the change's name quoted in the setting.
    @Test func theBackfillFillsEachNewColumnWhereItIsMissing() throws {
        let plan = try Self.plan(
            """
            -- name: it's
            -- table: media
            -- add-column: first_name text = split_part(title, ' ', 1)
            -- add-column: last_name text = split_part(title, ' ', 2)
            """, oldSide: ["title"])
        let sql = ChangeSQL(plan)
        #expect(
            sql.backfill
                == #"UPDATE "public"."media" AS "media" SET "first_name" = COALESCE("first_name", (split_part(title, ' ', 1))::text), "last_name" = COALESCE("last_name", (split_part(title, ' ', 2))::text) WHERE "id" BETWEEN $1 AND $2 AND (("first_name" IS NULL AND (split_part(title, ' ', 1))::text IS NOT NULL) OR ("last_name" IS NULL AND (split_part(title, ' ', 2))::text IS NOT NULL)) AND (SELECT pg_catalog.set_config('godwit.change', 'it''s', true)) IS NOT NULL"#
        )
        #expect(!sql.writesThroughTrigger)
        #expect(sql.statements.backfill == sql.backfill)
    }

    /// A batched job's statement holds no `;`: an expression with one in a string leaves the
    /// filling to the trigger, through the no-op write, which the trigger does not skip.
    @Test func anExpressionWithASemicolonIsBackfilledThroughTheTrigger() throws {
        let plan = try Self.plan(
            "-- table: media\n-- add-column: first text = split_part(title, ';', 1)\n", oldSide: ["title"])
        let sql = ChangeSQL(plan)
        #expect(sql.writesThroughTrigger)
        #expect(sql.backfill == #"UPDATE "public"."media" SET "title" = "title" WHERE "id" BETWEEN $1 AND $2"#)
        #expect(!sql.backfill.contains("set_config"))
    }

    @Test func aChangeThatSyncsNothingHasNoTriggerAndNeverDisagrees() throws {
        let plan = try Self.plan("-- table: media\n-- drop-column: title\n", oldSide: [])
        let sql = ChangeSQL(plan)
        #expect(sql.start.isEmpty)
        #expect(sql.statements.disagrees == "false")
        #expect(sql.statements.complete == [#"ALTER TABLE "public"."media" DROP COLUMN "title""#])
        #expect(sql.statements.abort.isEmpty)
    }

    @Test func textArraysAreReadAsPostgreSQLPrintsThem() {
        #expect(PostgresArray.texts("{}") == [])
        #expect(PostgresArray.texts("{a,b}") == ["a", "b"])
        #expect(PostgresArray.texts(#"{"a b","c,d","e\"f",""}"#) == ["a b", "c,d", "e\"f", ""])
    }
}
