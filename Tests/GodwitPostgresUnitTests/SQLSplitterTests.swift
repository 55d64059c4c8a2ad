import GodwitPostgres
import Testing

/// The statement texts of `script`, for tests that only care where the cuts fall.
private func texts(_ script: String) -> [String] {
    SQLSplitter.split(script).map(\.text)
}

@Suite("SQLSplitter")
struct SQLSplitterTests {
    // MARK: Basics

    @Test(
        "Scripts without statements yield nothing",
        arguments: [
            "",
            "   \n\t \r\n",
            "-- no-transaction\n",
            "-- no-transaction",
            "/* only a comment */",
            "/* a /* nested */ comment */ -- and a line comment\n",
            ";",
            " ; ;; \n;",
            "-- no-transaction\n;\n/* x */;",
        ])
    func emptyScripts(script: String) {
        #expect(SQLSplitter.split(script) == [])
    }

    @Test func splitsOnSemicolonsAndDropsThem() {
        #expect(texts("SELECT 1; SELECT 2;") == ["SELECT 1", "SELECT 2"])
    }

    @Test func finalStatementWithoutSemicolonIsKept() {
        #expect(texts("SELECT 1;\nSELECT 2") == ["SELECT 1", "SELECT 2"])
        #expect(texts("SELECT 2 -- no semicolon") == ["SELECT 2 -- no semicolon"])
    }

    @Test func emptyStatementsBetweenSemicolonsAreDropped() {
        #expect(texts(";;SELECT 1;;; ;\n;SELECT 2;;") == ["SELECT 1", "SELECT 2"])
    }

    @Test func leadingCommentsAreSkippedAndInnerCommentsKept() {
        let script = """
            -- no-transaction
            /* leading */ -- also leading
            SELECT /* inner; */ 1 -- trailing; still this statement
            ;
            -- trailing comment of the file
            """
        let statements = SQLSplitter.split(script)
        #expect(
            statements == [
                SQLStatement(
                    text: "SELECT /* inner; */ 1 -- trailing; still this statement",
                    startLine: 3, startColumn: 1, startOffset: 48
                )
            ])
    }

    @Test func severalCreateIndexConcurrently() {
        let script = """
            -- no-transaction
            CREATE INDEX CONCURRENTLY users_email_idx ON users (email);

            CREATE INDEX CONCURRENTLY orders_user_idx
                ON orders (user_id) WHERE deleted_at IS NULL;
              CREATE UNIQUE INDEX CONCURRENTLY "Weird;Name" ON t ((lower(name)));
            """
        let statements = SQLSplitter.split(script)
        #expect(
            statements.map(\.text) == [
                "CREATE INDEX CONCURRENTLY users_email_idx ON users (email)",
                "CREATE INDEX CONCURRENTLY orders_user_idx\n    ON orders (user_id) WHERE deleted_at IS NULL",
                #"CREATE UNIQUE INDEX CONCURRENTLY "Weird;Name" ON t ((lower(name)))"#,
            ])
        #expect(statements.map(\.startLine) == [2, 4, 6])
        #expect(statements.map(\.startColumn) == [1, 1, 3])
        #expect(statements.map(\.startOffset) == [18, 79, 173])
    }

    // MARK: Semicolons that do not end a statement

    /// Each script holds one statement with a `;` that must not split, then `; SELECT 2`.
    @Test(
        "Semicolons inside strings, identifiers and comments",
        arguments: [
            "SELECT 'a;b'",
            "SELECT 'it''s; fine'",
            "SELECT ''';'''",
            #"SELECT E'it\'s; escaped'"#,
            #"SELECT e'\\', ';'"#,
            #"SELECT E'tab\t;\\\''"#,
            "SELECT E'a'\n  '\\'; continued'",
            "SELECT E'a' \n-- comment in the gap\n'\\'; continued'",
            "SELECT U&'d\\0061t;a' UESCAPE '\\'",
            "SELECT u&'x;y', N'n;', B'1;0', X'ab;'",
            #"SELECT "semi;colon""#,
            #"SELECT "a"";b" FROM "t;""#,
            #"SELECT U&"d;x""#,
            "SELECT $$a;b$$",
            "SELECT $$$$, $$;$$",
            "SELECT $fn$ $$ ; $$ $fn$",
            "SELECT $a$ $b$ ; $b$ $a$",
            "SELECT $x$ $xy$; $X$; $x $x$",
            "SELECT $_1$;$_1$",
            "SELECT $ä$;$ä$",
            "SELECT 1$$;$$",
            "SELECT 1 -- comment; here\n + 1",
            "SELECT 1 -- comment; here\r + 1",
            "SELECT 1 --; \r\n + 1",
            "SELECT /* a; */ 1",
            "SELECT /* a /* b; */ c; */ 1",
            "SELECT /*/ ; */ 1",
            "SELECT /* **/ 1 /***/",
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
            "SELECT (1;2)",
        ])
    func protectedSemicolons(first: String) {
        #expect(texts(first + "; SELECT 2;") == [first, "SELECT 2"])
    }

    @Test func standardStringsTreatBackslashLiterally() {
        #expect(texts(#"SELECT 'C:\'; SELECT 2"#) == [#"SELECT 'C:\'"#, "SELECT 2"])
    }

    @Test func plainStringContinuationDoesNotEscape() {
        #expect(texts("SELECT 'a'\n'\\'; SELECT 2") == ["SELECT 'a'\n'\\'", "SELECT 2"])
    }

    @Test(
        "Dollar signs that do not open a dollar quote",
        arguments: [
            "SELECT $1, $2::text",
            "SELECT a$b$c FROM t",
            "SELECT a$$ FROM t",
            "SELECT \"q\"$1",
            "SELECT $abc",
            "SELECT $",
            "SELECT $1$",
            "SELECT $12abc",
        ])
    func dollarSignsThatAreNotQuotes(first: String) {
        #expect(texts(first + "; SELECT 2;") == [first, "SELECT 2"])
    }

    @Test func dollarQuoteNextToParameters() {
        #expect(
            texts("SELECT $1||$t$;$t$||$2; SELECT $$ $1; $$; SELECT 3") == [
                "SELECT $1||$t$;$t$||$2", "SELECT $$ $1; $$", "SELECT 3",
            ])
    }

    @Test func dollarTagsAreCaseSensitive() {
        #expect(texts("SELECT $Tag$ ; $tag$ ; $Tag$; SELECT 2") == ["SELECT $Tag$ ; $tag$ ; $Tag$", "SELECT 2"])
    }

    @Test func plpgsqlBodyInDollarQuotes() {
        let function = """
            CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
              NEW.updated_at := now();
              IF NEW.note = '$body' THEN RETURN NULL; END IF;
              RETURN NEW;
            END;
            $body$
            """
        #expect(texts(function + ";\nSELECT 2;") == [function, "SELECT 2"])
    }

    // MARK: BEGIN ATOMIC

    @Test func beginAtomicBodyWithCase() {
        let function = """
            CREATE FUNCTION sign_text(x int) RETURNS text LANGUAGE sql
            BEGIN ATOMIC
              SELECT CASE WHEN x > 0 THEN 'pos;' WHEN x < 0 THEN 'neg' ELSE 'zero' END;
              SELECT CASE x WHEN 1 THEN CASE WHEN true THEN 'one' END END;
              SELECT (CASE WHEN x IS NULL THEN 'null' END);
            END
            """
        #expect(texts(function + ";\nSELECT 2;") == [function, "SELECT 2"])
    }

    @Test(
        "BEGIN ATOMIC in routine definitions",
        arguments: [
            "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end",
            "Create Function f() Returns int Language sql Begin /* c */ Atomic Select 1; Select 2; End",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN -- comment\nATOMIC\nSELECT 1;\nEND",
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC END",
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a; SELECT 'END;'; END",
            "CREATE FUNCTION \"backend\"() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS backend; END",
        ])
    func beginAtomic(function: String) {
        #expect(texts(function + "; SELECT 2;") == [function, "SELECT 2"])
    }

    @Test func transactionControlIsNotAnAtomicBlock() {
        #expect(texts("BEGIN; CREATE TABLE t (); COMMIT;") == ["BEGIN", "CREATE TABLE t ()", "COMMIT"])
        #expect(texts("BEGIN TRANSACTION; SELECT 1; END;") == ["BEGIN TRANSACTION", "SELECT 1", "END"])
        #expect(texts("begin work; select 1; commit work") == ["begin work", "select 1", "commit work"])
        #expect(texts("START TRANSACTION; SELECT 1; ROLLBACK;") == ["START TRANSACTION", "SELECT 1", "ROLLBACK"])
    }

    @Test func beginAndAtomicAsIdentifiersOutsideRoutines() {
        #expect(
            texts("SELECT begin atomic FROM (SELECT 1 AS begin) s; SELECT 2") == [
                "SELECT begin atomic FROM (SELECT 1 AS begin) s", "SELECT 2",
            ])
        #expect(texts("CREATE TABLE atomic (begin int); SELECT 2") == ["CREATE TABLE atomic (begin int)", "SELECT 2"])
    }

    @Test func unbalancedParenthesesAreHandled() {
        // A stray `)` must not make later `(`s unbalanced.
        #expect(texts("SELECT 1); SELECT (2); SELECT 3") == ["SELECT 1)", "SELECT (2)", "SELECT 3"])
        // An unclosed `(` keeps the rest together, as psql does; the server reports the error.
        #expect(texts("SELECT (1; SELECT 2") == ["SELECT (1; SELECT 2"])
    }

    // MARK: Malformed input

    @Test(
        "Unterminated constructs run to the end of the script",
        arguments: [
            "SELECT 'oops; SELECT 3;",
            "SELECT E'oops\\'; SELECT 3;",
            "SELECT E'oops\\",
            "SELECT \"oops; SELECT 3;",
            "SELECT $$oops; SELECT 3;",
            "SELECT $tag$oops; $tag SELECT 3;",
            "SELECT /* oops; SELECT 3;",
            "SELECT /* a /* b */ oops; SELECT 3; */",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 3;",
            "SELECT 1 --",
            "SELECT 1 /",
            "SELECT 'a'\n",
        ])
    func unterminated(rest: String) {
        let trimmed = rest.hasSuffix("\n") ? String(rest.dropLast()) : rest
        #expect(texts("SELECT 1;\n" + rest) == ["SELECT 1", trimmed])
    }

    // MARK: Positions

    @Test func crlfLineEndings() {
        let script =
            "-- no-transaction\r\nCREATE INDEX CONCURRENTLY a ON t (a);\r\n\r\n  CREATE INDEX CONCURRENTLY b\r\n  ON t (b);\r\n"
        let statements = SQLSplitter.split(script)
        #expect(
            statements == [
                SQLStatement(
                    text: "CREATE INDEX CONCURRENTLY a ON t (a)", startLine: 2, startColumn: 1, startOffset: 19),
                SQLStatement(
                    text: "CREATE INDEX CONCURRENTLY b\r\n  ON t (b)", startLine: 4, startColumn: 3, startOffset: 62),
            ])
    }

    @Test func loneCarriageReturnEndsALine() {
        #expect(
            SQLSplitter.split("SELECT 1;\rSELECT 2") == [
                SQLStatement(text: "SELECT 1", startLine: 1, startColumn: 1, startOffset: 0),
                SQLStatement(text: "SELECT 2", startLine: 2, startColumn: 1, startOffset: 10),
            ])
    }

    @Test func multibyteCharactersBeforeAStatement() {
        // Line 1 is 20 bytes; "e\u{301}" is two scalars but one Character; 🦤 is 4 bytes.
        let script = "-- ünïcödé 🦤\nSELECT 'e\u{301}🦤'; /* ✓ */ SELECT 2;"
        #expect(
            SQLSplitter.split(script) == [
                SQLStatement(text: "SELECT 'e\u{301}🦤'", startLine: 2, startColumn: 1, startOffset: 20),
                SQLStatement(text: "SELECT 2", startLine: 2, startColumn: 23, startOffset: 48),
            ])
    }

    @Test func nonASCIIIdentifiersStartStatements() {
        #expect(
            SQLSplitter.split("SELECT 1; ñame;") == [
                SQLStatement(text: "SELECT 1", startLine: 1, startColumn: 1, startOffset: 0),
                SQLStatement(text: "ñame", startLine: 1, startColumn: 11, startOffset: 10),
            ])
    }

    @Test(
        "Statement positions map to file locations",
        arguments: [
            // (script, index of the statement, position in its text, expected line, expected column)
            ("-- header\nCREATE TABLE t (\n  id int,\n  ñame téxt\n);", 0, 35, 4, 8),
            ("-- header\r\nCREATE TABLE t (\r\n  id int,\r\n  ñame téxt\r\n);", 0, 37, 4, 8),
            ("-- header\nCREATE TABLE t (\n  id int,\n  ñame téxt\n);", 0, 1, 2, 1),
            ("-- header\nCREATE TABLE t (\n  id int,\n  ñame téxt\n);", 0, 40, 5, 1),
            ("-- header\nCREATE TABLE t (\n  id int,\n  ñame téxt\n);", 0, 41, 5, 2),
            ("-- header\nCREATE TABLE t (\n  id int,\n  ñame téxt\n);", 0, 500, 5, 2),
            ("SELECT 1; SELECT x FROM\n  t", 1, 1, 1, 11),
            ("SELECT 1; SELECT x FROM\n  t", 1, 8, 1, 18),
            ("SELECT 1; SELECT x FROM\n  t", 1, 17, 2, 3),
            ("SELECT 1; SELECT x FROM\n  t", 1, 0, 1, 11),
            ("SELECT 1; SELECT x FROM\n  t", 1, -3, 1, 11),
            ("SELECT '🦤'; /* é */ SELECT 'é', x", 1, 13, 1, 33),
        ])
    func statementLocations(script: String, index: Int, position: Int, line: Int, column: Int) throws {
        let statements = SQLSplitter.split(script)
        try #require(statements.indices.contains(index))
        let location = statements[index].location(ofCharacterPosition: position)
        #expect(location.line == line)
        #expect(location.column == column)
    }

    @Test(
        "Whole-script positions",
        arguments: [
            ("abc", 1, 1, 1),
            ("abc", 3, 1, 3),
            ("abc", 4, 1, 4),
            ("abc", 99, 1, 4),
            ("abc", 0, 1, 1),
            ("", 1, 1, 1),
            ("a\nb", 2, 1, 2),
            ("a\nb", 3, 2, 1),
            ("a\n", 3, 2, 1),
            ("a\r\nb", 2, 1, 2),
            ("a\r\nb", 3, 1, 3),
            ("a\r\nb", 4, 2, 1),
            ("a\rb", 3, 2, 1),
            ("\r", 2, 2, 1),
            ("\n\n\nx", 4, 4, 1),
            ("🦤\nxe\u{301}😀y", 6, 2, 4),
        ])
    func wholeScriptLocations(text: String, position: Int, line: Int, column: Int) {
        let location = GodwitPostgres.SourceLocation.lineAndColumn(in: text, characterPosition: position)
        #expect(location.line == line)
        #expect(location.column == column)
    }

    @Test func statementAndWholeScriptLocationsAgree() throws {
        let script = "SET x = 1;\r\n-- é\r\nSELECT\r\n  'ü' ||\n  1/0;"
        let statement = try #require(SQLSplitter.split(script).last)
        let scalarsBefore = String(decoding: script.utf8.prefix(statement.startOffset), as: UTF8.self)
            .unicodeScalars.count
        for position in 1...(statement.text.unicodeScalars.count + 1) {
            let viaStatement = statement.location(ofCharacterPosition: position)
            let viaScript = GodwitPostgres.SourceLocation.lineAndColumn(
                in: script, characterPosition: scalarsBefore + position
            )
            #expect(viaStatement == viaScript, "position \(position)")
        }
    }

    // MARK: Scale

    @Test func largeScriptIsSplitCompletely() {
        let statement = "INSERT INTO t VALUES (1, 'x;y', $$z;$$) -- c;\n"
        let script = String(repeating: statement + ";\n", count: 20_000)
        let statements = SQLSplitter.split(script)
        #expect(statements.count == 20_000)
        #expect(statements.last?.startLine == 2 * 20_000 - 1)
        #expect(statements.allSatisfy { $0.text == "INSERT INTO t VALUES (1, 'x;y', $$z;$$) -- c;" })
    }

    @Test func manyDollarSignsInsideADollarQuote() {
        // Near-miss closing tags must not make the search quadratic or end the quote early.
        let body = String(repeating: "$tag $ta$ $tagg$ ;", count: 50_000)
        let statements = SQLSplitter.split("SELECT $tag$" + body + "$tag$; SELECT 2")
        #expect(statements.count == 2)
        #expect(statements.last?.text == "SELECT 2")
    }
}
