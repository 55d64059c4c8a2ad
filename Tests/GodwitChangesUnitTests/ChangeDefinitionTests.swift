import Testing

@testable import GodwitChanges

@Suite("Change files")
struct ChangeDefinitionTests {
    static func parse(_ body: String, file: String = "changes/caption.sql") throws -> ChangeDefinition {
        try ChangeDefinition.parse("-- godwit:change\n" + body, file: file)
    }

    /// The failure's one line, `file:line: message`.
    static func failure(_ body: String) -> String {
        do {
            _ = try parse(body)
            return "parsed"
        } catch {
            return "\(error)"
        }
    }

    @Test func theIssuesRenameReadsEveryDirective() throws {
        let change = try Self.parse(
            """
            -- table: media
            -- add-column: caption text = title
            -- drop-column: title = caption
            -- not-null: caption
            -- index: caption
            -- batch-size: 2000
            """)
        #expect(change.name == "caption")
        #expect(change.table == "media" && change.tableLine == 2)
        #expect(change.addedColumns == [.init(name: "caption", type: "text", expression: "title", line: 3)])
        #expect(change.droppedColumns == [.init(name: "title", expression: "caption", line: 4)])
        #expect(change.notNull == [.init(names: ["caption"], line: 5)])
        #expect(change.indexes == [.init(names: ["caption"], line: 6)])
        #expect(change.backfill == ["batch-size": .init(value: "2000", line: 7)])
    }

    @Test func typesAndExpressionsKeepTheirSpacesQuotesAndOperators() throws {
        let change = try Self.parse(
            """
            -- name: sizes
            -- table: app.media
            -- add-column: size_kb numeric(12, 2) = size_bytes / 1024.0
            -- add-column: "Seen At" timestamp with time zone = coalesce(updated_at, '1970-01-01 = epoch')
            -- add-column: big boolean = size_bytes >= 1000000
            -- drop-column: size_bytes = (size_kb * 1024)::bigint
            -- drop-column: legacy
            -- check: size_kb_positive size_kb >= 0
            -- foreign-key: owner_id REFERENCES app.users (id)
            -- unique: "Seen At", size_kb
            """)
        #expect(change.name == "sizes" && change.table == "app.media")
        #expect(
            change.addedColumns.map { [$0.name, $0.type, $0.expression] } == [
                ["size_kb", "numeric(12, 2)", "size_bytes / 1024.0"],
                ["Seen At", "timestamp with time zone", "coalesce(updated_at, '1970-01-01 = epoch')"],
                ["big", "boolean", "size_bytes >= 1000000"],
            ])
        #expect(change.droppedColumns.map(\.name) == ["size_bytes", "legacy"])
        #expect(change.droppedColumns.map(\.expression) == ["(size_kb * 1024)::bigint", nil])
        #expect(change.checks == [.init(name: "size_kb_positive", expression: "size_kb >= 0", line: 9)])
        #expect(
            change.foreignKeys == [
                .init(column: "owner_id", referencedTable: "app.users", referencedColumn: "id", line: 10)
            ])
        #expect(change.uniques == [.init(names: ["Seen At", "size_kb"], line: 11)])
    }

    @Test func unquotedNamesFoldToLowerCaseAsPostgreSQLReadsThem() throws {
        let change = try Self.parse("-- table: Media\n-- add-column: Caption TEXT = Title\n-- not-null: CAPTION")
        #expect(change.addedColumns.first?.name == "caption")
        #expect(change.addedColumns.first?.type == "TEXT")
        #expect(change.notNull.first?.names == ["caption"])
    }

    @Test(arguments: [
        ("-- add-column: caption text = title", "changes/caption.sql:1: missing directive `-- table: NAME`"),
        (
            "-- table: media",
            "changes/caption.sql:1: the file changes nothing: give at least one of add-column, check, drop-column, foreign-key, index, not-null, unique"
        ),
        (
            "-- table: media\n-- add-column: caption text",
            "changes/caption.sql:3: `add-column` is `NAME TYPE = EXPRESSION` (the expression over the old columns)"
        ),
        (
            "-- table: media\n-- add-column: caption = title",
            "changes/caption.sql:3: `add-column` is `NAME TYPE = EXPRESSION` (the expression over the old columns)"
        ),
        (
            "-- table: media\n-- add-column: caption text =",
            "changes/caption.sql:3: `add-column` is `NAME TYPE = EXPRESSION` (the expression over the old columns)"
        ),
        (
            "-- table: media\n-- drop-column: title caption",
            "changes/caption.sql:3: `drop-column` is `NAME` or `NAME = EXPRESSION` (the expression over the new columns)"
        ),
        ("-- table: media\n-- not-null: a, b", "changes/caption.sql:3: `not-null` names one column"),
        (
            "-- table: media\n-- index: a,, b",
            "changes/caption.sql:3: `index` is a column name or a comma-separated list"
        ),
        ("-- table: media\n-- check: positive", "changes/caption.sql:3: `check` is `NAME EXPRESSION`"),
        (
            "-- table: media\n-- foreign-key: owner_id users (id)",
            "changes/caption.sql:3: `foreign-key` is `COLUMN REFERENCES TABLE (COLUMN)`"
        ),
        (
            "-- table: media\n-- renam: a",
            "changes/caption.sql:3: unknown directive `renam` (known: add-column, batch-size, check, drop-column, foreign-key, health-query, index, lock-timeout, max-attempts, max-batch-size, max-lock-wait-ms, min-batch-size, name, not-null, parallel, pause-ms, priority, statement-timeout, table, target-batch-ms, unique)"
        ),
        ("-- table: media\n-- table: other\n-- index: a", "changes/caption.sql:3: directive `table` given twice"),
        (
            "-- table: media\n-- key: id\n-- index: a",
            "changes/caption.sql:3: unknown directive `key` (known: add-column, batch-size, check, drop-column, foreign-key, health-query, index, lock-timeout, max-attempts, max-batch-size, max-lock-wait-ms, min-batch-size, name, not-null, parallel, pause-ms, priority, statement-timeout, table, target-batch-ms, unique)"
        ),
        (
            "-- table: media\n-- index: a\nUPDATE media SET a = 1",
            "changes/caption.sql:4: a change file holds `-- name: value` directives only, not SQL"
        ),
        (
            "-- table: media\n-- add-column: c text = t\n-- add-column: C int = 1",
            "changes/caption.sql:4: column c is added twice (first on line 3)"
        ),
        (
            "-- table: media\n-- add-column: c text = t\n-- drop-column: c",
            "changes/caption.sql:4: column c is added on line 3 and dropped here"
        ),
        (
            "-- table: media\n-- drop-column: t\n-- not-null: t",
            "changes/caption.sql:4: column t is dropped by this change (line 3): constrain a column that stays"
        ),
        ("-- table: media\n-- index:", "changes/caption.sql:3: directive `index` has no value"),
    ])
    func badInputIsOneLineNamingFileAndLine(body: String, expected: String) {
        #expect(Self.failure(body) == expected)
    }

    @Test(arguments: ["-- table: media\n-- index: a\n", "-- godwit:batched\n-- table: media\n-- index: a\n"])
    func aFileWithoutTheMarkerIsRefusedOnItsFirstLine(text: String) {
        #expect(throws: ChangeDefinitionError.self) { try ChangeDefinition.parse(text, file: "c.sql") }
        let message = (try? ChangeDefinition.parse(text, file: "c.sql")).map { "parsed \($0.name)" }
        #expect(message == nil)
        do {
            _ = try ChangeDefinition.parse(text, file: "c.sql")
        } catch {
            #expect("\(error)" == "c.sql:1: a change file starts with the line `-- godwit:change`")
        }
    }
}
