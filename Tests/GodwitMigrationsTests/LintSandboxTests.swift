import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `migrate lint` with a database runs the migrations: with a superuser's URL, as CI often has,
/// a migration from an untrusted branch must still not reach the server's programs, and must
/// not run with the URL's rights. The lint's own role owns the scratch database and nothing
/// else, and is gone afterwards.
@Suite("migrate lint runs the migrations it lints as a restricted role")
struct LintSandboxTests {
    /// A path the database server can create (it runs on this host and writes /tmp).
    static func marker() -> String { "/tmp/godwit-lint-marker-\(UUID().uuidString)" }

    static func json(_ output: GodwitProcess.Output) throws -> [String: Any] {
        try #require(
            JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any],
            "\(output.stdout)\(output.stderr)")
    }

    @Test func aCopyToProgramIsAFindingAndTheTraceNeverRunsIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let marker = Self.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        try dir.write(
            "migrations/1_export.sql",
            "CREATE TABLE exported (id int);\nCOPY (SELECT 1) TO PROGRAM 'touch \(marker)';\n")
        try await withTestDatabase { db in
            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            let lint = run.output
            #expect(lint.status == 1, "\(lint.stderr)")
            #expect(!FileManager.default.fileExists(atPath: marker), "the lint ran the migration's program")
            let report = try Self.json(lint)
            #expect(report["mode"] as? String == "trace")
            let findings = try #require(report["findings"] as? [[String: Any]])
            #expect(findings.map { $0["rule"] as? String } == ["copy-program"])
            #expect(findings.first?["line"] as? Int == 2)
            #expect((findings.first?["message"] as? String)?.contains("runs a command on the database server") == true)
            let notes = try #require(report["notes"] as? [[String: Any]])
            #expect(notes.count == 1)
            #expect(notes.first?["file"] as? String == "migrations/1_export.sql")
            #expect(
                (notes.first?["message"] as? String)?.hasPrefix(
                    "not run in the scratch database, since it acts outside the database (copy-program)") == true)
            #expect(try await run.leftovers() == 0)

            // The control: the same program, run by the superuser directly, does create the
            // file, so its absence above is the lint's doing. It reads the row first: a program
            // that exits before PostgreSQL has written its row fails the COPY with a broken pipe.
            let admin = try await db.connect()
            try await admin.execute("COPY (SELECT 1) TO PROGRAM 'cat > /dev/null && touch \(marker)'")
            await admin.close()
            #expect(FileManager.default.fileExists(atPath: marker))
        }
    }

    /// A command the static rules cannot see (built at run time), after a `RESET ROLE`: the
    /// session is the lint's role, so the server refuses the program, and the lint says so.
    @Test func aHiddenProgramAfterResetRoleIsRefusedByTheServer() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let marker = Self.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        try dir.write(
            "migrations/1_hidden.sql",
            """
            RESET ROLE;
            DO $$ BEGIN EXECUTE 'CO' || 'PY (SELECT 1) TO PRO' || 'GRAM ' || quote_literal('touch \(marker)'); END $$;
            CREATE TABLE after_it (id int);
            CREATE INDEX ON after_it (id);

            """)
        try await withTestDatabase { db in
            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            let lint = run.output
            #expect(!FileManager.default.fileExists(atPath: marker), "the lint ran the migration's program")
            #expect(lint.status == 0, "\(lint.stdout)\(lint.stderr)")
            let report = try Self.json(lint)
            #expect((report["findings"] as? [Any])?.isEmpty == true)
            let notes = try #require(report["notes"] as? [[String: Any]])
            #expect(notes.map { $0["line"] as? Int } == [2], "\(notes)")
            let message = notes.first?["message"] as? String ?? ""
            #expect(message.contains("pg_execute_server_program"), "\(message)")
            #expect(message.hasPrefix("not run in the scratch database, where the migrations run as a role"))
            #expect(try await run.leftovers() == 0)
        }
    }

    /// What the migrations' session is: not the URL's superuser, not able to become it, owner
    /// of the copied tables, a member of no role. A migration checks it and fails otherwise.
    @Test func theMigrationsRunAsARoleThatOwnsTheScratchDatabaseAndNothingElse() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(
            "migrations/2_probe.sql",
            """
            RESET ROLE;
            SET ROLE postgres;
            SET SESSION AUTHORIZATION postgres;
            ALTER TABLE media ADD COLUMN caption text;
            DO $$
            DECLARE
                me pg_roles;
            BEGIN
                SELECT * INTO me FROM pg_roles WHERE rolname = session_user;
                IF me.rolsuper OR me.rolcreaterole OR me.rolcreatedb OR me.rolreplication OR me.rolbypassrls
                    OR current_user <> session_user
                    OR EXISTS (SELECT FROM pg_auth_members WHERE member = me.oid)
                    OR pg_has_role(session_user, 'pg_execute_server_program', 'USAGE')
                    OR pg_has_role(session_user, 'pg_write_server_files', 'USAGE')
                    OR pg_has_role(session_user, 'pg_read_server_files', 'USAGE')
                    OR pg_has_role(session_user, 'pg_signal_backend', 'USAGE')
                    OR (SELECT datdba FROM pg_database WHERE datname = current_database()) <> me.oid
                    OR (SELECT relowner FROM pg_class WHERE oid = 'media'::regclass) <> me.oid
                    OR (SELECT nspowner FROM pg_namespace WHERE nspname = 'app') <> me.oid
                    OR (SELECT proowner FROM pg_proc WHERE oid = 'app.stamp()'::regprocedure) <> me.oid
                THEN
                    RAISE EXCEPTION 'godwit-lint-probe: the migrations run as % with more than the scratch database', session_user;
                END IF;
            END $$;

            """)
        try await withTestDatabase { db in
            let admin = try await db.connect()
            try await admin.execute(
                """
                CREATE TABLE media (id bigint PRIMARY KEY, title text);
                CREATE SCHEMA app;
                CREATE FUNCTION app.stamp() RETURNS timestamptz LANGUAGE sql SECURITY DEFINER AS 'SELECT now()';
                """)
            await admin.close()
            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            let lint = run.output
            #expect(!lint.stderr.contains("godwit-lint-probe"), "\(lint.stderr)")
            #expect(lint.status == 0, "\(lint.stdout)\(lint.stderr)")
            let report = try Self.json(lint)
            #expect(report["mode"] as? String == "trace")
            // The two role changes were refused and noted; RESET ROLE and the rest ran.
            let notes = try #require(report["notes"] as? [[String: Any]])
            #expect(notes.map { $0["line"] as? Int } == [2, 3], "\(notes)")
            #expect(try await run.leftovers() == 0)
        }
    }

    /// The role goes also when the lint fails half-way.
    @Test func aFailedTraceLeavesNoRoleNorDatabase() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_bad.sql", "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b nosuchtype;\n")
        try await withTestDatabase { db in
            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            let lint = run.output
            #expect(lint.status == 1)
            #expect(lint.stderr.contains("type \"nosuchtype\" does not exist"), "\(lint.stderr)")
            #expect(try await run.leftovers() == 0)
        }
    }

    /// A URL whose role may create databases but not roles: one line saying what it needs,
    /// and nothing created, rather than a trace with the URL's own rights.
    @Test func aRoleThatCannotCreateRolesIsRefusedBeforeAnythingIsCreated() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_a.sql", "CREATE TABLE a (id int);\n")
        try await withRoles(["lint_createdb"]) { roles in
            let role = roles[0]
            let admin = try await Connection.connect(try TestDatabase.serverURL)
            try await admin.execute("ALTER ROLE \(role.quoted) CREATEDB")
            await admin.close()
            try await withTestDatabase { db in
                let run = try await ScratchRun.run(
                    ["migrate", "lint", "--format", "json", "-D", try role.url(db)], directory: dir.path)
                let lint = run.output
                #expect(lint.status == 1)
                #expect(lint.stdout.isEmpty)
                let lines = lint.stderr.split(separator: "\n")
                #expect(lines.count == 1, "\(lint.stderr)")
                #expect(
                    lint.stderr.hasPrefix(
                        "error: migrate lint needs a scratch database beside the one given and a role of its own to run the migrations as there, and role \"\(role.name)\" may not create the role: it needs CREATEROLE"
                    ), "\(lint.stderr)")
                #expect(!lint.stderr.contains(role.password))
                // Refused before a scratch name was even chosen, and no database of the role's made.
                #expect(try await run.leftovers(expected: 0) == 0)
                let check = try await Connection.connect(try TestDatabase.serverURL)
                let owned = try await check.query(
                    "SELECT count(*) AS n FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)",
                    [role.name]
                ).first?.int("n")
                await check.close()
                #expect(owned == 0)
            }
        }
    }

    /// A caller that is no superuser, with CREATEDB and CREATEROLE (the URL to give CI): the
    /// trace works, and cleans up after itself with no more than those rights.
    @Test func aRoleWithCreatedbAndCreateroleTracesAndCleansUp() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/2_index.sql", "CREATE INDEX media_title ON media (title);\n")
        try await withRoles(["lint_ci"]) { roles in
            let role = roles[0]
            try await withTestDatabase { db in
                let admin = try await db.connect()
                try await admin.execute(
                    """
                    ALTER ROLE \(role.quoted) CREATEDB CREATEROLE;
                    ALTER DATABASE \(quoteIdentifier(db.name)) OWNER TO \(role.quoted);
                    """)
                await admin.close()
                let owner = try await role.connect(db)
                try await owner.execute("CREATE TABLE media (id bigint PRIMARY KEY, title text)")
                await owner.close()
                let run = try await ScratchRun.run(
                    ["migrate", "lint", "--format", "json", "-D", try role.url(db)], directory: dir.path)
                let lint = run.output
                #expect(lint.status == 1, "\(lint.stderr)")
                let report = try Self.json(lint)
                #expect(report["mode"] as? String == "trace")
                let rules = (report["findings"] as? [[String: Any]])?.map { $0["rule"] as? String }
                #expect(rules == ["non-concurrent-index"])
                #expect(!lint.stderr.contains(role.password))
                #expect(try await run.leftovers() == 0)
                // Objects the lint's role owned, or grants to it, would keep the test's role
                // from being dropped: withRoles drops it, and must be able to.
            }
        }
    }
}
