import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Checking a batched job's definition parses its statement and never runs it, from the CLI
/// (`godwit job enqueue FILE`) and from SQL (`godwit.enqueue_batched`).
@Suite("Validation never runs what it validates", .serialized)
struct ValidationTests {
    static let schema = """
        CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, label text);
        INSERT INTO items (id) SELECT generate_series(1, 50);
        CREATE TABLE webhooks (url text);
        INSERT INTO webhooks VALUES ('https://example.com/hook');
        """

    static let header = "-- godwit:batched\n-- table: items\n-- key: id\n"

    /// Asserts that nothing was dropped, created or enqueued.
    static func expectUntouched(_ conn: Connection, _ comment: Comment? = nil) async throws {
        #expect(try await conn.query("SELECT count(*) AS n FROM webhooks").first?.int("n") == 1, comment)
        #expect(!(try await relationExists("sneaky", conn)), comment)
        #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0, comment)
        #expect(try await conn.query("SELECT count(*) AS n FROM items WHERE n <> 0").first?.int("n") == 0, comment)
    }

    /// (file name, file text, the error after `error: FILE:`)
    static let refusedFiles: [(String, String, String)] = [
        (
            "next_line",
            header + "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2;\nDROP TABLE webhooks;\n",
            "5: a batched job holds exactly one statement; a second one starts here"
        ),
        (
            "same_line",
            header + "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2; DROP TABLE webhooks;\n",
            "4: a batched job holds exactly one statement; a second one starts here"
        ),
        (
            "in_a_string",
            header + "UPDATE items SET label = 'a;b' WHERE id BETWEEN $1 AND $2;\n",
            "4: the statement may not contain \";\" (write chr(59) for a semicolon inside a string)"
        ),
        (
            "out_of_a_string",
            header + "UPDATE items SET label = 'x'';DROP TABLE webhooks;--'\nWHERE id BETWEEN $1 AND $2;\n",
            "4: the statement may not contain \";\" (write chr(59) for a semicolon inside a string)"
        ),
        (
            "in_a_comment",
            header + "UPDATE items SET n = n + 1\n-- ; DROP TABLE webhooks\nWHERE id BETWEEN $1 AND $2;\n",
            "5: the statement may not contain \";\" (write chr(59) for a semicolon inside a string)"
        ),
        (
            "in_dollar_quotes",
            header + "UPDATE items SET label = $q$;DROP TABLE webhooks;$q$ WHERE id BETWEEN $1 AND $2;\n",
            "4: the statement may not contain \";\" (write chr(59) for a semicolon inside a string)"
        ),
        (
            // Directives, a blank line, then a statement whose third line is wrong: line 8.
            "syntax_on_line_3",
            "-- godwit:batched\n-- name: late error\n-- table: items\n-- key: id\n\n"
                + "UPDATE items\nSET n = n + 1\nWHERE id BETWEEN $1 AND $2 ANDD n >= 0;\n",
            "8: syntax error at or near \"ANDD\" (SQLSTATE 42601)"
        ),
    ]

    @Test(arguments: refusedFiles)
    func theCLIRefusesWhatIsNotOneStatementAndRunsNoneOfIt(name: String, text: String, expected: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(Self.schema)
            let file = try dir.write("jobs/\(name).sql", text)
            let output = try await GodwitCommand.run(["job", "enqueue", file, "-D", db.url])
            #expect(output.status == 1)
            #expect(output.stderr == "error: \(file):\(expected)\n")
            #expect(output.stdout.isEmpty)
            try await Self.expectUntouched(conn, "\(name)")
        }
    }

    @Test func enqueueBatchedRefusesASecondStatementHoweverItIsHidden() async throws {
        try await withQueue { _, conn, _ in
            try await conn.execute(Self.schema)
            let update = "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2"
            let refused: [(statement: String, message: String)] = [
                ("\(update); CREATE TABLE sneaky (x int)", "must be one statement with no \";\""),
                ("\(update) --; CREATE TABLE sneaky (x int)", "must be one statement with no \";\""),
                ("\(update) /*; CREATE TABLE sneaky (x int) */", "must be one statement with no \";\""),
                (
                    "\(update) AND $q$;$q$ IS NOT NULL; CREATE TABLE sneaky (x int)",
                    "must be one statement with no \";\""
                ),
                (
                    "\(update) AND label <> E'\\\\'; CREATE TABLE sneaky (x int); SELECT '",
                    "must be one statement with no \";\""
                ),
                (
                    "\(update) AND label <> $q$ $q$; CREATE TABLE sneaky (x int); SELECT $q$ $q$",
                    "must be one statement with no \";\""
                ),
                // Without a ";" there is no second statement to hide: an open comment is a
                // syntax error of the one statement.
                ("\(update) /* CREATE TABLE sneaky (x int)", "unterminated /* comment"),
            ]
            for item in refused {
                let error = await #expect(throws: PostgresError.self, "\(item.statement)") {
                    try await conn.query(
                        "SELECT godwit.enqueue_batched('x', 'items', 'id', $1) AS id", [item.statement])
                }
                #expect(error?.message.contains(item.message) == true, "\(item.statement): \(error?.message ?? "")")
                try await Self.expectUntouched(conn, "\(item.statement)")
            }
            // What is accepted is parsed, never run: a data-modifying WITH deletes nothing, and
            // a trailing comment stays a comment.
            let accepted = [
                "WITH gone AS (DELETE FROM webhooks RETURNING 1) \(update)",
                "\(update) -- CREATE TABLE sneaky (x int)",
            ]
            for statement in accepted {
                try await conn.query("SELECT godwit.enqueue_batched('x', 'items', 'id', $1)", [statement])
            }
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 2)
            #expect(try await conn.query("SELECT count(*) AS n FROM webhooks").first?.int("n") == 1)
            #expect(!(try await relationExists("sneaky", conn)))
            #expect(try await conn.query("SELECT count(*) AS n FROM items WHERE n <> 0").first?.int("n") == 0)
        }
    }
}
