import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `godwit migrate lint` as a person runs it, against a real seeded database: one folder of
/// many migrations linted in one call (one scratch database), asserted file by file.
@Suite("godwit migrate lint (the executable)")
struct LintCommandTests {
    /// Applied before linting, then seeded with rows: these tables are the "existing" ones.
    static let base = """
        CREATE TABLE tenants (id bigint PRIMARY KEY);
        CREATE TABLE media (
            id bigint PRIMARY KEY, tenant_id bigint, kind text, name varchar(50), label varchar(20),
            title text, width int, uid uuid, legacy text
        );
        CREATE TABLE old_stuff (id int);
        """

    /// Pending migrations that must each raise exactly the rules given (trace mode).
    static let dangerous: [(file: String, sql: String, rules: Set<String>)] = [
        ("02_index.sql", "CREATE INDEX media_kind ON media (kind);", ["non-concurrent-index"]),
        ("03_reindex.sql", "REINDEX TABLE media;", ["non-concurrent-reindex"]),
        ("04_volatile.sql", "ALTER TABLE media ADD COLUMN token uuid DEFAULT gen_random_uuid();", ["volatile-default"]),
        ("05_serial.sql", "ALTER TABLE media ADD COLUMN seq bigserial;", ["serial-column"]),
        ("06_type.sql", "ALTER TABLE media ALTER COLUMN tenant_id TYPE integer;", ["column-type-rewrite"]),
        (
            "07_generated.sql",
            "ALTER TABLE media ADD COLUMN kind_upper text GENERATED ALWAYS AS (upper(kind)) STORED;",
            ["table-rewrite"]
        ),
        (
            "08_fk.sql",
            "ALTER TABLE media ADD CONSTRAINT media_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id);",
            ["constraint-without-not-valid"]
        ),
        (
            "09_check.sql", "ALTER TABLE media ADD CONSTRAINT media_kind_ck CHECK (kind <> '');",
            ["constraint-without-not-valid"]
        ),
        ("10_unique.sql", "ALTER TABLE media ADD CONSTRAINT media_name_key UNIQUE (name);", ["unique-without-index"]),
        ("11_not_null.sql", "ALTER TABLE media ALTER COLUMN title SET NOT NULL;", ["set-not-null"]),
        ("12_vacuum_full.sql", "-- no-transaction\nVACUUM FULL media;", ["vacuum-full"]),
        ("13_cluster.sql", "CLUSTER media USING media_pkey;", ["cluster"]),
        ("14_update.sql", "UPDATE media SET title = upper(title);", ["whole-table-update"]),
        ("15_delete.sql", "DELETE FROM old_stuff;", ["whole-table-delete"]),
        (
            "16_under_lock.sql", "ALTER TABLE media ADD COLUMN note text;\nUPDATE media SET note = 'n' WHERE id < 10;",
            ["work-under-exclusive-lock"]
        ),
        (
            "17_concurrently_in_tx.sql", "CREATE INDEX CONCURRENTLY media_title ON media (title);",
            ["needs-no-transaction"]
        ),
        ("18_drop_column.sql", "ALTER TABLE media DROP COLUMN legacy;", ["drop-column"]),
        ("19_rename_column.sql", "ALTER TABLE media RENAME COLUMN label TO caption_label;", ["rename-column"]),
        ("20_rename_table.sql", "ALTER TABLE old_stuff RENAME TO older_stuff;", ["rename-table"]),
        ("21_drop_table.sql", "DROP TABLE older_stuff;", ["drop-table"]),
        ("22_random_default.sql", "ALTER TABLE media ADD COLUMN r float8 DEFAULT random();", ["volatile-default"]),
        (
            "23_identity.sql", "ALTER TABLE media ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;",
            ["serial-column"]
        ),
        // The rewrite is the type change's, not the constant default's.
        (
            "25_two_actions.sql", "ALTER TABLE media ADD COLUMN flag int DEFAULT 0, ALTER COLUMN width TYPE bigint;",
            ["column-type-rewrite"]
        ),
        // A default the static rules cannot judge: the trace sees the rewrite.
        (
            "26_function_default.sql",
            """
            CREATE FUNCTION lint_next_code() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT md5(random()::text) $$;
            ALTER TABLE media ADD COLUMN code text DEFAULT lint_next_code();
            """,
            ["volatile-default"]
        ),
        // Passes on the scratch database's empty table; fails on the target's rows.
        ("27_required.sql", "ALTER TABLE media ADD COLUMN owner_id bigint NOT NULL;", ["not-null-without-default"]),
        // Not known to the static rules: PostgreSQL refuses it in a transaction (SQLSTATE 25001).
        ("24_create_database.sql", "CREATE DATABASE godwit_lint_never_created;", ["needs-no-transaction"]),
        // Acting outside the database: found by their text, and the trace does not run the file
        // (LintSandboxTests checks that it never does).
        ("50_copy_program.sql", "COPY media (id) TO PROGRAM 'cat > /dev/null';", ["copy-program"]),
        (
            "51_server_file.sql", "SELECT lo_export(lo_from_bytea(0, 'x'), '/nonexistent/godwit-lint');",
            ["server-file"]
        ),
        ("52_alter_system.sql", "ALTER SYSTEM SET work_mem = '8MB';", ["alter-system", "needs-no-transaction"]),
        (
            "53_dblink.sql", "SELECT dblink_exec('dbname=postgres', 'CREATE TABLE godwit_lint_never (id int)');",
            ["remote-connection"]
        ),
        (
            "54_terminate.sql",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid();",
            ["signal-backend"]
        ),
        // The file's own COMMIT ends the migration's transaction before its last statement.
        (
            "55_own_commit.sql",
            "BEGIN;\nALTER TABLE media ADD COLUMN committed_early text;\nCOMMIT;\nUPDATE media SET committed_early = 'x' WHERE id < 10;",
            ["file-ends-transaction"]
        ),
    ]

    /// Pending migrations that must raise nothing.
    static let safe: [(file: String, sql: String)] = [
        (
            "30_new_table.sql",
            """
            CREATE TABLE albums (id bigint PRIMARY KEY, media_id bigint REFERENCES media (id), name text, note varchar(10));
            CREATE INDEX albums_name ON albums (name);
            ALTER TABLE albums ADD CONSTRAINT albums_name_key UNIQUE (name);
            ALTER TABLE albums ADD CONSTRAINT albums_name_ck CHECK (name <> '');
            ALTER TABLE albums ALTER COLUMN name SET NOT NULL;
            ALTER TABLE albums ALTER COLUMN note TYPE integer USING note::integer;
            UPDATE albums SET name = 'x';
            ALTER TABLE albums RENAME COLUMN note TO remark;
            """
        ),
        ("31_not_valid.sql", "ALTER TABLE media ADD CONSTRAINT media_width_nn CHECK (width IS NOT NULL) NOT VALID;"),
        ("32_validate.sql", "ALTER TABLE media VALIDATE CONSTRAINT media_width_nn;"),
        ("33_set_not_null_after_check.sql", "ALTER TABLE media ALTER COLUMN width SET NOT NULL;"),
        (
            "34_constant_default.sql",
            "ALTER TABLE media ADD COLUMN status text NOT NULL DEFAULT 'new';\nALTER TABLE media ADD COLUMN seen timestamptz DEFAULT now();"
        ),
        ("35_nullable.sql", "ALTER TABLE media ADD COLUMN caption text;"),
        (
            "36_widen.sql",
            "ALTER TABLE media ALTER COLUMN name TYPE varchar(200);\nALTER TABLE media ALTER COLUMN caption_label TYPE text;"
        ),
        (
            "37_comments_functions.sql",
            "COMMENT ON TABLE media IS 'uploads';\nCREATE FUNCTION touch_media() RETURNS int LANGUAGE plpgsql AS $$ BEGIN UPDATE media SET title = title; RETURN 1; END $$;"
        ),
        ("38_drop_index_concurrently.sql", "-- no-transaction\nDROP INDEX CONCURRENTLY media_kind;"),
        (
            "39_create_index_concurrently.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY media_caption ON media (caption);"
        ),
        ("40_unique_index.sql", "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY media_uid_idx ON media (uid);"),
        (
            "41_unique_using_index.sql",
            "ALTER TABLE media ADD CONSTRAINT media_uid_key UNIQUE USING INDEX media_uid_idx;"
        ),
        // Cluster-wide: the lint's own role may not run it (a note, no finding), and no role
        // outlives the lint.
        ("44_role.sql", "CREATE ROLE godwit_lint_probe NOLOGIN;"),
        // Wrapped whole in its own transaction, as zero-to-production's migrations are.
        (
            "45_own_transaction.sql",
            "BEGIN;\nCREATE TABLE own_tx (id int);\nCREATE INDEX own_tx_id ON own_tx (id);\nCOMMIT;"
        ),
        (
            "42_new_then_dropped.sql",
            "CREATE TABLE scratchpad (id int);\nCREATE INDEX ON scratchpad (id);\nDROP TABLE scratchpad;"
        ),
    ]

    /// What the static rules (no database) miss of the dangerous files: what only the trace can
    /// see (a rewrite by a generated column or a user function's default, a statement
    /// PostgreSQL refuses in a transaction).
    static let staticOnlyMisses: Set<String> = [
        "07_generated.sql", "24_create_database.sql", "26_function_default.sql",
    ]

    static let allowedFile = (
        "43_allowed.sql",
        "-- a comment first\n-- godwit:allow non-concurrent-index media is tiny and this runs at night\nCREATE INDEX media_title_idx ON media (title);\n"
    )

    func writeFolder(_ dir: TemporaryDirectory) throws {
        try dir.write("migrations/01_base.sql", Self.base)
        for file in Self.dangerous { try dir.write("migrations/\(file.file)", file.sql + "\n") }
        for file in Self.safe { try dir.write("migrations/\(file.file)", file.sql + "\n") }
        try dir.write("migrations/\(Self.allowedFile.0)", Self.allowedFile.1)
    }

    static func json(_ output: GodwitProcess.Output) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(output.stdout)")
    }

    static func rulesByFile(_ entries: [[String: Any]]) -> [String: Set<String>] {
        var rules: [String: Set<String>] = [:]
        for entry in entries {
            let file = ((entry["file"] as? String ?? "") as NSString).lastPathComponent
            rules[file, default: []].insert(entry["rule"] as? String ?? "")
        }
        return rules
    }

    func schemaDump(_ url: String) async throws -> String {
        let (conninfo, environment) = try GodwitBackupsShim.arguments(url)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: GodwitBackupsShim.pgDump)
        process.arguments = ["--schema-only", "--no-owner", "--dbname=\(conninfo)"]
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        // Newer pg_dump prints a random \restrict key; it is not part of the schema.
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    @Test func theTraceCatchesEveryRulePassesTheSafeCasesAndLeavesTheTargetUntouched() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try writeFolder(dir)
        try await withTestDatabase { db in
            // Apply the base only, by hand-writing the ledger would be cheating: migrate run it.
            let only = try TemporaryDirectory()
            defer { only.delete() }
            try only.write("01_base.sql", Self.base)
            let applied = try await GodwitCommand.run(["migrate", "run", "--source", only.path, "-D", db.url])
            #expect(applied.status == 0, "\(applied.stderr)")
            let conn = try await db.connect()
            try await conn.execute(
                """
                INSERT INTO tenants VALUES (1);
                INSERT INTO media (id, tenant_id, kind, name, label, title, width, uid, legacy)
                SELECT g, 1, 'image', 'n' || g, 'l', 't' || g, g, gen_random_uuid(), 'x' FROM generate_series(1, 500) g;
                INSERT INTO old_stuff SELECT generate_series(1, 10);
                ANALYZE;
                """)
            let ledgerBefore = try await conn.query(
                "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version"
            ).rows
                .map(\.values)
            let schemaBefore = try await schemaDump(db.url)

            let start = ContinuousClock.now
            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url, "--write-jobs", dir.path + "/jobs"],
                directory: dir.path)
            let lint = run.output
            let elapsed = ContinuousClock.now - start
            #expect(lint.status == 1, "\(lint.stderr)")
            let report = try Self.json(lint)
            #expect(report["mode"] as? String == "trace")
            let findings = try #require(report["findings"] as? [[String: Any]])
            let allowed = try #require(report["allowed"] as? [[String: Any]])
            let found = Self.rulesByFile(findings)

            for file in Self.dangerous {
                #expect(found[file.file] == file.rules, "\(file.file): \(found[file.file] ?? [])")
            }
            for file in Self.safe {
                #expect(found[file.file] == nil, "\(file.file) should pass: \(found[file.file] ?? [])")
            }
            #expect(found["01_base.sql"] == nil, "the applied migration is not linted")
            // Every rule has a dangerous case here.
            #expect(Set(Self.dangerous.flatMap(\.rules)) == Set(LintRule.allCases.map(\.id)))

            // The allow comment moved its finding to `allowed`, with the reason.
            #expect(allowed.count == 1)
            #expect(allowed.first?["rule"] as? String == "non-concurrent-index")
            #expect(allowed.first?["reason"] as? String == "media is tiny and this runs at night")
            #expect(allowed.first?["line"] as? Int == 3)

            // The JSON shape: every key on every finding, with sizes from the target.
            let keys: Set<String> = [
                "rule", "file", "line", "statement", "table", "lock", "blocks", "rewrite", "estimated_rows", "bytes",
                "message", "recipe",
            ]
            for finding in findings { #expect(Set(finding.keys) == keys, "\(finding)") }
            let index = try #require(findings.first { $0["rule"] as? String == "non-concurrent-index" })
            #expect(index["table"] as? String == "media")
            #expect(index["lock"] as? String == "SHARE")
            #expect(index["blocks"] as? String == "writes")
            #expect(index["rewrite"] as? Bool == false)
            #expect(index["estimated_rows"] as? Int == 500)
            #expect((index["bytes"] as? Int ?? 0) > 0)
            #expect(index["statement"] as? String == "CREATE INDEX media_kind ON media (kind)")
            #expect(index["line"] as? Int == 1)
            let type = try #require(findings.first { $0["rule"] as? String == "column-type-rewrite" })
            #expect(type["rewrite"] as? Bool == true)
            #expect(type["lock"] as? String == "ACCESS EXCLUSIVE")
            #expect(type["blocks"] as? String == "reads and writes")
            #expect(
                (type["message"] as? String)?.contains("ACCESS EXCLUSIVE on media: blocks reads and writes") == true)
            let underLock = try #require(findings.first { $0["rule"] as? String == "work-under-exclusive-lock" })
            #expect(underLock["line"] as? Int == 2)
            let fk = try #require(findings.first { ($0["file"] as? String)?.hasSuffix("08_fk.sql") == true })
            #expect(fk["lock"] as? String == "SHARE ROW EXCLUSIVE")
            #expect(fk["blocks"] as? String == "writes")

            // --write-jobs wrote the batched job for the whole-table UPDATE, keyed on the primary key.
            let job = try String(contentsOfFile: dir.path + "/jobs/lint_14_update_line1.sql", encoding: .utf8)
            #expect(job.hasPrefix("-- godwit:batched\n"))
            #expect(job.contains("\n-- table: media\n-- key: id\n"))
            #expect(job.hasSuffix("UPDATE media SET title = upper(title)\nWHERE id BETWEEN $1 AND $2;\n"))

            // The target is exactly as before: no ledger row, no object, and no scratch database left.
            #expect(try await schemaDump(db.url) == schemaBefore)
            let ledgerAfter = try await conn.query(
                "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version"
            ).rows
                .map(\.values)
            #expect(ledgerAfter == ledgerBefore)
            #expect(try await conn.query("SELECT count(*) AS n FROM media").first?.int("n") == 500)
            let admin = try await Connection.connect(try TestDatabase.serverURL)
            // Other suites lint at the same time: only this run's scratch database and role count.
            #expect(try await run.leftovers() == 0)
            let leaked = try await admin.query(
                """
                SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'godwit_lint_probe')
                     + (SELECT count(*) FROM pg_database WHERE datname = 'godwit_lint_never_created') AS n
                """)
            #expect(try leaked.first?.int("n") == 0, "a role or database outlived the lint")
            await admin.close()

            // The cheap pre-run check on the same connection: catalog-informed static rules.
            let source = try MigrationSource.load(directory: dir.path + "/migrations")
            let linter = MigrationLinter(source: source)
            let catalog = try await linter.lint(try await linter.pendingMigrations(on: conn), on: conn)
            #expect(catalog.mode == .catalog)
            let catalogIndex = try #require(catalog.findings.first { $0.rule == "non-concurrent-index" })
            #expect(catalogIndex.estimatedRows == 500)
            #expect(!catalog.findings.contains { $0.file.hasSuffix("30_new_table.sql") })
            await conn.close()
            print("lint of \(Self.dangerous.count + Self.safe.count + 1) pending migrations took \(elapsed)")
        }
    }

    @Test("The catalog check tells a string type's widening from its narrowing by the column's current type")
    func catalogJudgesStringTypeChanges() async throws {
        try await withTestDatabase(prefix: "godwit_string_types") { db in
            let conn = try await db.connect()
            try await conn.query(
                "CREATE TABLE people (id bigint PRIMARY KEY, name varchar(50), bio text, code varchar(10), nick varchar)"
            )
            let cases: [(sql: String, rewrites: Bool)] = [
                ("ALTER TABLE people ALTER COLUMN name TYPE varchar(80);", false),
                ("ALTER TABLE people ALTER COLUMN name TYPE varchar(20);", true),
                ("ALTER TABLE people ALTER COLUMN name TYPE text;", false),
                ("ALTER TABLE people ALTER COLUMN bio TYPE varchar(200);", true),
                ("ALTER TABLE people ALTER COLUMN bio TYPE character varying;", false),
                ("ALTER TABLE people ALTER COLUMN nick TYPE varchar(30);", true),
                ("ALTER TABLE people ALTER COLUMN code TYPE CHARACTER VARYING ( 10 );", false),
                ("ALTER TABLE people ALTER COLUMN code TYPE text USING upper(code);", true),
                // The second statement sees the type the first gave, not the catalog's varchar(50).
                (
                    "ALTER TABLE people ALTER COLUMN name TYPE text;\nALTER TABLE people ALTER COLUMN name TYPE varchar(50);",
                    true
                ),
            ]
            for (index, item) in cases.enumerated() {
                let migration = Migration(
                    version: Int64(index + 1), description: "t", kind: .simple, contents: Array(item.sql.utf8),
                    path: "m/\(index + 1)_t.sql")
                let report = try await MigrationLinter(source: MigrationSource(migrations: [], directory: "m"))
                    .lint([migration], on: conn)
                let rewrites = report.findings.filter { $0.rule == "column-type-rewrite" }
                #expect(rewrites.isEmpty != item.rewrites, "\(item.sql): \(report.findings.map(\.rule))")
                if item.rewrites { #expect(rewrites.allSatisfy { $0.rewrite && $0.lock == "ACCESS EXCLUSIVE" }) }
            }
            // The static rules alone cannot tell, and keep their guess: a string type is cheap.
            let narrowing = Migration(
                version: 1, description: "t", kind: .simple, contents: Array(cases[1].sql.utf8), path: "m/1_t.sql")
            let alone = try await MigrationLinter(source: MigrationSource(migrations: [], directory: "m"))
                .lintStatically([narrowing])
            #expect(alone.findings.isEmpty)
            await conn.close()
        }
    }

    @Test func withoutADatabaseOnlyTheStaticRulesRunAndSaySo() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try writeFolder(dir)
        let files = (Self.dangerous.map(\.file) + Self.safe.map(\.file) + [Self.allowedFile.0]).map {
            "migrations/\($0)"
        }
        let json = try await GodwitCommand.run(
            ["migrate", "lint", "--no-dotenv", "--format", "json"] + files, directory: dir.path)
        #expect(json.status == 1, "\(json.stderr)")
        let report = try Self.json(json)
        #expect(report["mode"] as? String == "static")
        let found = Self.rulesByFile(try #require(report["findings"] as? [[String: Any]]))
        for file in Self.dangerous where !Self.staticOnlyMisses.contains(file.file) {
            #expect(found[file.file]?.isSuperset(of: file.rules) == true, "\(file.file): \(found[file.file] ?? [])")
        }
        for file in Self.safe {
            #expect(found[file.file] == nil, "\(file.file) should pass: \(found[file.file] ?? [])")
        }
        let estimated = (report["findings"] as? [[String: Any]])?.first?["estimated_rows"]
        #expect(estimated is NSNull)
        struct Decoded: Decodable {
            var mode: String
            var findings: [LintFinding]
            var allowed: [LintFinding]
        }
        let decoded = try JSONDecoder().decode(Decoded.self, from: Data(json.stdout.utf8))
        #expect(decoded.findings.allSatisfy { $0.lintRule != nil && $0.line > 0 && !$0.recipe.isEmpty })
        #expect(decoded.allowed.map(\.reason) == ["media is tiny and this runs at night"])

        let text = try await GodwitCommand.run(["migrate", "lint", "--no-dotenv"] + files, directory: dir.path)
        #expect(text.status == 1)
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "note: no database given: static rules only")
        #expect(!text.stdout.contains("accepts no finding"))
        #expect(
            lines.contains(
                "migrations/02_index.sql:1: non-concurrent-index: CREATE INDEX without CONCURRENTLY holds its lock for the whole build; SHARE on media: blocks writes"
            ))
        #expect(
            lines.contains(
                "allowed non-concurrent-index at migrations/43_allowed.sql:3: media is tiny and this runs at night"))

        // Only safe files: exit 0, and the same note.
        let clean = try await GodwitCommand.run(
            ["migrate", "lint", "--no-dotenv"] + Self.safe.map { "migrations/\($0.file)" }, directory: dir.path)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        #expect(clean.stdout.hasPrefix("note: no database given: static rules only\n"))
        #expect(clean.stdout.hasSuffix("no findings in \(Self.safe.count) migrations\n"))
    }

    @Test(arguments: [
        (
            "-- godwit:allow non-concurrent-index\nCREATE INDEX i ON t (a);\n",
            ":1: `-- godwit:allow non-concurrent-index` needs a reason"
        ),
        (
            "SELECT 1;\n--godwit:allow no-such-rule because\nCREATE INDEX i ON t (a);\n",
            ":2: `-- godwit:allow` names unknown rule `no-such-rule`"
        ),
    ])
    func aBadAllowCommentIsAnErrorNamingFileAndLine(contents: String, expected: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("5_bad.sql", contents)
        let output = try await GodwitCommand.run(["migrate", "lint", "--no-dotenv", "--format", "json", path])
        #expect(output.status == 1)
        #expect(output.stdout.isEmpty)
        let lines = output.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("error: \(path)\(expected)") == true, "\(output.stderr)")
    }

    @Test func aServerThatCannotBeReachedIsOneErrorLineAndNothingOnStdout() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE INDEX i ON t (a);\n")
        let output = try await GodwitCommand.run(
            [
                "migrate", "lint", "--format", "json", "--connect-timeout", "0", "-D",
                "postgres://postgres:sekrit@127.0.0.1:1/x",
            ],
            directory: dir.path)
        #expect(output.status == 1)
        #expect(output.stdout.isEmpty)
        #expect(
            output.stderr.hasPrefix("error: ") && output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
        #expect(!output.stderr.contains("sekrit"))
    }

    /// The trace needs CREATEDB; without it the one line says so, and never the password.
    @Test func aRoleThatCannotCreateTheScratchDatabaseIsToldWhatItNeeds() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);\n")
        try await withTestDatabase { db in
            let admin = try await db.connect()
            let role = "lint_\(UInt32.random(in: 0...UInt32.max))"
            let secret = "pw-\(UInt32.random(in: 0...UInt32.max))"
            try await admin.execute("CREATE ROLE \(quoteIdentifier(role)) LOGIN PASSWORD \(quoteLiteral(secret))")
            var components = try #require(URLComponents(string: db.url))
            components.user = role
            components.password = secret
            let output = try await GodwitCommand.run(
                ["migrate", "lint", "--format", "json", "-D", try #require(components.string)], directory: dir.path)
            #expect(output.status == 1)
            #expect(output.stdout.isEmpty)
            #expect(output.stderr.hasPrefix("error: migrate lint needs a scratch database"), "\(output.stderr)")
            #expect(output.stderr.contains("CREATEDB") && output.stderr.split(separator: "\n").count == 1)
            #expect(!output.stderr.contains(secret))
            try await admin.execute("DROP ROLE \(quoteIdentifier(role))")
            await admin.close()
        }
    }

    @Test func aStatementThatFailsInTheScratchDatabaseIsAnErrorNamingFileAndLine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b nosuchtype;\n")
        try await withTestDatabase { db in
            let output = try await GodwitCommand.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            #expect(output.status == 1)
            #expect(output.stdout.isEmpty)
            #expect(output.stderr.hasPrefix("error: migrations/1_a.sql:2:"), "\(output.stderr)")
            #expect(
                output.stderr.contains(
                    ": the statement failed in the scratch database of migrate lint: type \"nosuchtype\" does not exist"
                ),
                "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1)
        }
    }
}

/// pg_dump for the untouched-target check, found and given its password as Godwit's own
/// client programs are (without linking GodwitBackups into this test target).
enum GodwitBackupsShim {
    /// `GODWIT_PG_BIN`, then the PATH (ops/test puts `pg_config --bindir` first), then Debian's folders.
    static var pgDump: String {
        let environment = ProcessInfo.processInfo.environment
        var folders =
            [environment["GODWIT_PG_BIN"] ?? ""] + (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        folders += ["17", "16", "15"].map { "/usr/lib/postgresql/\($0)/bin" }
        return folders.map { $0 + "/pg_dump" }.first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/pg_dump"
    }

    static func arguments(_ url: String) throws -> (String, [String: String]) {
        var options = try ConnectionString.options(url)
        var environment = ProcessInfo.processInfo.environment
        if let password = options.removeValue(forKey: "password") { environment["PGPASSWORD"] = password }
        return (options.map { "\($0.key)='\($0.value)'" }.joined(separator: " "), environment)
    }
}
