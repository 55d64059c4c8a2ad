import Foundation
import GodwitMigrations
import Testing

/// The lint rules on statement text alone (no database): the tokenizer never takes a word in
/// a comment, string or function body for a keyword, and each static rule fires on its case.
@Suite("migrate lint: static rules")
struct LintRuleTests {
    func lint(_ sql: String, name: String = "9_x.sql") async throws -> LintReport {
        let migration = Migration(
            version: 9, description: "x", kind: .simple, contents: Array(sql.utf8), path: "m/\(name)")
        return try await MigrationLinter(source: MigrationSource(migrations: [], directory: "m")).lintStatically([
            migration
        ])
    }

    func rules(_ sql: String) async throws -> [String] {
        try await lint(sql).findings.map(\.rule)
    }

    @Test(arguments: [
        ("CREATE UNIQUE INDEX i ON public.media USING btree (a);", "non-concurrent-index"),
        ("REINDEX (VERBOSE) INDEX media_pkey;", "non-concurrent-reindex"),
        ("ALTER TABLE media ADD COLUMN t timestamptz DEFAULT clock_timestamp();", "volatile-default"),
        ("ALTER TABLE media ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;", "serial-column"),
        ("ALTER TABLE media ADD COLUMN owner bigint NOT NULL REFERENCES users;", "not-null-without-default"),
        ("ALTER TABLE media ADD code text PRIMARY KEY;", "not-null-without-default"),
        ("WITH gone AS (DELETE FROM media RETURNING id) SELECT count(*) FROM gone;", "whole-table-delete"),
        ("WITH RECURSIVE r (n) AS (SELECT 1) UPDATE media SET a = 1;", "whole-table-update"),
        ("ALTER TABLE media ALTER COLUMN n SET DATA TYPE numeric(10, 2);", "column-type-rewrite"),
        ("ALTER TABLE media ALTER COLUMN t TYPE text USING lower(t);", "column-type-rewrite"),
        ("ALTER TABLE media ADD FOREIGN KEY (t) REFERENCES tenants;", "constraint-without-not-valid"),
        ("ALTER TABLE ONLY media ADD PRIMARY KEY (id);", "unique-without-index"),
        ("ALTER TABLE media ALTER n SET NOT NULL;", "set-not-null"),
        // A NOT VALID check proves nothing to PostgreSQL until it is validated.
        (
            "ALTER TABLE media ADD CONSTRAINT n CHECK (n IS NOT NULL) NOT VALID;\nALTER TABLE media ALTER n SET NOT NULL;",
            "set-not-null"
        ),
        (
            "BEGIN;\nALTER TABLE media ADD COLUMN x int;\nCOMMIT;\nUPDATE media SET x = 1 WHERE id = 1;",
            "file-ends-transaction"
        ),
        ("ALTER TABLE media ADD COLUMN x int;\nROLLBACK;", "file-ends-transaction"),
        ("VACUUM (FULL, ANALYZE) media;", "vacuum-full"),
        ("CLUSTER VERBOSE media;", "cluster"),
        ("UPDATE ONLY media AS m SET a = (SELECT 1 WHERE true);", "whole-table-update"),
        ("DELETE FROM \"Media\";", "whole-table-delete"),
        ("LOCK TABLE media;\nINSERT INTO media (a) SELECT 1;", "work-under-exclusive-lock"),
        ("REINDEX TABLE CONCURRENTLY media;", "needs-no-transaction"),
        ("REINDEX SCHEMA public;", "needs-no-transaction"),
        ("ALTER TABLE media DROP legacy;", "drop-column"),
        ("ALTER TABLE media RENAME a TO b;", "rename-column"),
        ("ALTER TABLE IF EXISTS media RENAME TO pictures;", "rename-table"),
        ("DROP TABLE IF EXISTS a, media CASCADE;", "drop-table"),
        ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x';", "copy-program"),
        ("COPY media FROM PROGRAM 'curl -s https://example.invalid/m.csv' WITH (FORMAT csv);", "copy-program"),
        ("DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''id'''; END $$;", "copy-program"),
        ("COPY media TO '/var/lib/postgresql/media.csv';", "server-file"),
        ("SELECT lo_import('/etc/passwd');", "server-file"),
        ("SELECT pg_catalog.lo_export(42, '/tmp/out');", "server-file"),
        ("SELECT pg_read_file('/etc/hostname');", "server-file"),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS oid LANGUAGE sql AS $f$ SELECT lo_export(1, '/tmp/x') $f$;",
            "server-file"
        ),
        ("ALTER SYSTEM SET work_mem = '64MB';", "alter-system"),
        ("ALTER SYSTEM SET work_mem = '64MB';", "needs-no-transaction"),
        ("SELECT pg_reload_conf();", "alter-system"),
        ("SELECT dblink_exec('dbname=other', 'DROP TABLE t');", "remote-connection"),
        ("SELECT * FROM dblink('dbname=other', 'SELECT 1') AS t (x int);", "remote-connection"),
        ("CREATE EXTENSION IF NOT EXISTS dblink;", "remote-connection"),
        ("CREATE EXTENSION \"postgres_fdw\" SCHEMA ext;", "remote-connection"),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app';", "signal-backend"),
        ("SELECT pg_cancel_backend(123);", "signal-backend"),
    ])
    func eachStaticRuleFires(sql: String, rule: String) async throws {
        #expect(try await rules(sql).contains(rule), "\(sql)")
    }

    @Test(arguments: [
        "UPDATE media SET a = 'no WHERE here' -- WHERE in a comment\n  WHERE id = 1;",
        "UPDATE media SET a = 1 /* nested /* WHERE */ */ WHERE id = 1;",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$ BEGIN UPDATE media SET a = 1; DELETE FROM media; END $body$;",
        "SELECT 'CREATE INDEX i ON media (a)', E'\\' VACUUM FULL media';",
        "ALTER TABLE media ADD COLUMN a text DEFAULT 'random()';",
        "ALTER TABLE media ADD COLUMN a timestamptz DEFAULT now(), ADD COLUMN b int DEFAULT 0;",
        "ALTER TABLE media ADD COLUMN a int NOT NULL DEFAULT 0, ADD COLUMN b text NULL;",
        "WITH moved AS (UPDATE media SET a = 1 WHERE id = 1 RETURNING id) SELECT * FROM moved;",
        "WITH t AS (SELECT id FROM media FOR UPDATE) SELECT * FROM t;",
        "ALTER TABLE media ALTER COLUMN a TYPE varchar(200), ALTER COLUMN b TYPE text;",
        "ALTER TABLE media ADD CONSTRAINT c CHECK (a > 0) NOT VALID, VALIDATE CONSTRAINT d;",
        "ALTER TABLE media ADD CONSTRAINT k UNIQUE USING INDEX k_idx;",
        "ALTER TABLE media DROP CONSTRAINT c, RENAME CONSTRAINT d TO e;",
        "CREATE TABLE t (id int);\nCREATE INDEX ON t (id);\nALTER TABLE t RENAME COLUMN id TO key;\nDROP TABLE t;",
        "ALTER TABLE media ADD CONSTRAINT n CHECK ((n IS NOT NULL)) NOT VALID;\nALTER TABLE media VALIDATE CONSTRAINT n;\nALTER TABLE media ALTER COLUMN n SET NOT NULL;",
        // A column added by these migrations, dropped again.
        "ALTER TABLE media ADD COLUMN tmp text;\nALTER TABLE media DROP COLUMN tmp;",
        // The file's own BEGIN and COMMIT around all of it.
        "BEGIN;\nCREATE TABLE t (id int);\nCREATE INDEX ON t (id);\nCOMMIT;",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON media (a);\nDROP INDEX CONCURRENTLY j;\nVACUUM media;",
        "ALTER TABLE media VALIDATE CONSTRAINT c;\nUPDATE media SET a = 1 WHERE id = 1;",
        "ALTER TABLE media ADD CONSTRAINT f FOREIGN KEY (t) REFERENCES tenants NOT VALID;\nUPDATE media SET a = 1 WHERE id = 1;",
        // Only words, in strings that are data, or a COPY that stays with the client.
        "COPY media (id, title) FROM STDIN;",
        "COPY (SELECT 'TO PROGRAM ''x''') TO STDOUT;",
        "SELECT 'lo_export(1, ''/tmp/x'')', 'ALTER SYSTEM SET a = 1', 'COPY t TO PROGRAM ''y''';",
        "COMMENT ON TABLE media IS 'filled by dblink_exec() and pg_terminate_backend() elsewhere';",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;",
        "SELECT program, copy FROM media;",
    ])
    func safeStatementsPass(sql: String) async throws {
        #expect(try await rules(sql) == [], "\(sql)")
    }

    @Test func aFindingNamesFileLineFirstLineLockAndRecipe() async throws {
        let report = try await lint("SELECT 1;\n\nALTER TABLE media\n  ALTER COLUMN n TYPE bigint;\n")
        #expect(report.mode == .static)
        let finding = try #require(report.findings.first)
        #expect(finding.rule == "column-type-rewrite")
        #expect(finding.file == "m/9_x.sql")
        #expect(finding.line == 3)
        #expect(finding.statement == "ALTER TABLE media")
        #expect(finding.table == "media")
        #expect(finding.lock == "ACCESS EXCLUSIVE")
        #expect(finding.blocks == "reads and writes")
        #expect(finding.rewrite)
        #expect(finding.estimatedRows == nil && finding.bytes == nil)
        #expect(finding.recipe == LintRule.columnTypeRewrite.recipe)
    }

    @Test func aStatementThatActsOutsideTheDatabaseSaysWhatAndWhyOncePerRule() async throws {
        let report = try await lint(
            "SELECT 1;\nSELECT dblink_connect('c', 'dbname=x'), dblink_exec('c', 'DELETE FROM t');\nCOPY (SELECT 1) TO PROGRAM 'id';\n"
        )
        #expect(report.findings.map(\.rule) == ["remote-connection", "copy-program"])
        let remote = try #require(report.findings.first)
        #expect(remote.line == 2)
        #expect(remote.lock == nil && !remote.rewrite)
        #expect(
            remote.message
                == "dblink_connect opens a connection from the database server to another database, where what it does commits by itself; nothing rolls that back, and migrate lint does not run it"
        )
        #expect(remote.recipe == LintRule.remoteConnection.recipe)
        let program = try #require(report.findings.last)
        #expect(program.line == 3)
        #expect(
            program.message.hasPrefix("COPY ... TO PROGRAM runs a command on the database server's operating system"))
        #expect(program.recipe.contains("COPY ... FROM STDIN / TO STDOUT"))
    }

    @Test func allowCommentsApplyToTheStatementDirectlyBelow() async throws {
        let report = try await lint(
            """
            -- godwit:allow drop-column nothing reads legacy since release 41
            -- godwit:allow rename-column renaming is fine in this internal table
            ALTER TABLE media DROP COLUMN legacy;

            -- godwit:allow drop-column a blank line separates this one from the statement

            ALTER TABLE media DROP COLUMN other;
            """)
        #expect(report.allowed.map(\.rule) == ["drop-column"])
        #expect(report.allowed.first?.reason == "nothing reads legacy since release 41")
        #expect(report.findings.filter { $0.rule == "drop-column" }.map(\.line) == [7])
        // The rename allow accepts nothing (no rename), nor does the one cut off by a blank line.
        #expect(report.unusedAllows.map(\.line) == [2, 5])
        #expect(report.unusedAllows.map(\.rule) == ["rename-column", "drop-column"])
    }

    @Test func sizesReadAsPgSizePrettyDoes() {
        var finding = LintFinding(rule: .cluster, file: "f.sql", line: 1, statement: "CLUSTER t", message: "m")
        finding.estimatedRows = 1000
        for (bytes, text) in [
            (812, "812 bytes"), (139_264, "136 kB"), (1_258_291, "1.2 MB"), (3_650_722_202, "3.4 GB"),
        ]
            as [(Int64, String)]
        {
            finding.bytes = bytes
            #expect(finding.text.contains("; ~1000 rows; \(text)\n"), "\(finding.text)")
        }
    }

    @Test func lockModesSayWhatTheyBlock() {
        #expect(LockMode(pgLocksMode: "ShareUpdateExclusiveLock") == .shareUpdateExclusive)
        #expect(LockMode(pgLocksMode: "AccessExclusiveLock") == .accessExclusive)
        #expect(LockMode.shareUpdateExclusive.blocks == "other DDL and VACUUM only")
        #expect(LockMode.share.blocks == "writes" && LockMode.shareRowExclusive.blocks == "writes")
        #expect(LockMode.rowExclusive < LockMode.share)
        #expect(Set(LintRule.allCases.map(\.id)).count == LintRule.allCases.count)
    }
}
