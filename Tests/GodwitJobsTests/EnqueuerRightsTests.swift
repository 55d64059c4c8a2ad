import Foundation
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A job runs with the rights of the role that enqueued it, never with the worker's: the
/// worker here is the superuser `postgres`, the enqueuer a role that may do almost nothing.
@Suite("Jobs run with their enqueuer's rights", .serialized)
struct EnqueuerRightsTests {
    @Test func enqueuedByIsStampedFromTheInsertingRoleAndCannotBeForged() async throws {
        try await withEnqueuer { db, admin, low in
            let conn = try await low.connect(db)
            // The column is not among those granted: naming it is refused outright.
            let forged = await #expect(throws: PostgresError.self) {
                try await conn.query(
                    "INSERT INTO godwit.jobs (kind, name, payload, enqueued_by) VALUES ('noop', 'forged', '{}', 'postgres')"
                )
            }
            #expect(forged?.message.contains("permission denied for table jobs") == true)
            let plain = try await conn.query(
                "INSERT INTO godwit.jobs (kind, name) VALUES ('noop', 'plain') RETURNING id"
            )
            .first!.int64("id")
            let viaFunction = try await conn.query("SELECT godwit.enqueue('noop', 'function') AS id").first!.int64("id")
            await conn.close()
            // A role granted INSERT on every column (a careless grant) still cannot choose: the
            // trigger stamps current_user over whatever the row says.
            try await admin.execute("GRANT INSERT ON godwit.jobs TO \(low.quoted)")
            let careless = try await low.connect(db)
            let overwritten = try await careless.query(
                "INSERT INTO godwit.jobs (kind, name, enqueued_by) VALUES ('noop', 'careless', 'postgres') RETURNING id"
            ).first!.int64("id")
            await careless.close()
            let byID = try await admin.query("SELECT id, enqueued_by::text AS r FROM godwit.jobs").rows.reduce(
                into: [Int64: String]()
            ) {
                $0[try $1.int64("id")] = try $1.string("r")
            }
            #expect(byID == [plain: low.name, viaFunction: low.name, overwritten: low.name])
        }
    }

    /// SQL that tries to leave the enqueuer's role, each as an `sql` job of its own.
    static let sqlEscapes: [(String, String)] = [
        ("plain", "CREATE TABLE made_by_low (x int)"),
        ("RESET ROLE", "RESET ROLE; CREATE TABLE made_by_low (x int)"),
        ("set_config", "SELECT set_config('role', 'postgres', false); CREATE TABLE made_by_low (x int)"),
        ("SET ROLE", "SET ROLE postgres; CREATE TABLE made_by_low (x int)"),
        ("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres; CREATE TABLE made_by_low (x int)"),
        ("RESET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION; CREATE TABLE made_by_low (x int)"),
        ("DO block", "DO $$ BEGIN EXECUTE 'RESET ROLE'; EXECUTE 'CREATE TABLE made_by_low (x int)'; END $$"),
        // Code that PostgreSQL runs at COMMIT, outside the sandbox function: a deferred trigger
        // and the rest of a cursor WITH HOLD. Neither needs anything but TEMP.
        (
            "deferred trigger",
            """
            CREATE FUNCTION pg_temp.escape() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN RESET ROLE; CREATE TABLE public.made_by_low (x int); RETURN NULL; END $f$;
            CREATE TEMP TABLE bait (x int);
            CREATE CONSTRAINT TRIGGER escape AFTER INSERT ON bait DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION pg_temp.escape();
            INSERT INTO bait VALUES (1)
            """
        ),
        (
            "cursor WITH HOLD",
            """
            CREATE FUNCTION pg_temp.escape() RETURNS int LANGUAGE plpgsql AS $f$
            BEGIN RESET ROLE; CREATE TABLE public.made_by_low (x int); RETURN 1; END $f$;
            DECLARE escape CURSOR WITH HOLD FOR SELECT pg_temp.escape()
            """
        ),
    ]

    @Test(arguments: sqlEscapes)
    func anSQLJobCannotCreateWhatItsEnqueuerCannot(label: String, sql: String) async throws {
        try await withEnqueuer { db, admin, low in
            let conn = try await low.connect(db)
            let id = try await enqueueSQL(sql, name: label, on: conn)
            await conn.close()
            try await drain(db)
            let (state, error) = try await outcome(of: id, admin)
            #expect(state == "failed", "\(label): \(error)")
            #expect(!(try await relationExists("made_by_low", admin)), "\(label) created the table")
            #expect(!(try await isSuperuser(low, admin)))
            if label == "plain" { #expect(error.contains("permission denied for schema public"), "\(error)") }
        }
    }

    /// An sql job's script runs in the transaction that records its success: one that would end
    /// it is refused before anything runs.
    @Test func aScriptThatEndsItsTransactionIsRefusedAndNothingRuns() async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute("CREATE TABLE marks (x int); GRANT INSERT ON marks TO \(low.quoted)")
            let conn = try await low.connect(db)
            let id = try await enqueueSQL(
                "INSERT INTO marks VALUES (1); COMMIT; INSERT INTO marks VALUES (2)", on: conn)
            await conn.close()
            try await drain(db)
            let (state, error) = try await outcome(of: id, admin)
            #expect(state == "failed")
            #expect(error.contains("the script may not end its transaction (COMMIT)"), "\(error)")
            #expect(try await admin.query("SELECT count(*) AS n FROM marks").first?.int("n") == 0)
        }
    }

    @Test func aLoneVacuumRunsAsTheEnqueuerAndSkipsTablesItDoesNotOwn() async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute(
                """
                CREATE TABLE items (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
                CREATE TABLE control (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
                INSERT INTO items SELECT generate_series(1, 100);
                INSERT INTO control SELECT generate_series(1, 100);
                """)
            let conn = try await low.connect(db)
            let lows = try await enqueueSQL("VACUUM items", name: "low vacuum", on: conn)
            await conn.close()
            // The same job from the worker's own role does vacuum: the check below can see one.
            let own = try await enqueueSQL("VACUUM control", name: "own vacuum", on: admin)
            try await drain(db)
            #expect(try await outcome(of: own, admin).state == "succeeded")
            let vacuumed = try await eventually {
                try await admin.query(
                    "SELECT last_vacuum IS NOT NULL AS v FROM pg_stat_user_tables WHERE relname = 'control'"
                ).first?.bool("v") == true
            }
            #expect(vacuumed)
            let items = try #require(
                try await admin.query(
                    "SELECT last_vacuum IS NULL AS never, vacuum_count FROM pg_stat_user_tables WHERE relname = 'items'"
                ).first)
            #expect(try items.bool("never"))
            #expect(try items.int("vacuum_count") == 0)
            // PostgreSQL only warns ("skipping"); the job may succeed, having done nothing.
            #expect(["succeeded", "failed"].contains(try await outcome(of: lows, admin).state))
        }
    }

    @Test func handMadeBatchedPayloadsDoNoMoreThanTheEnqueuerMay() async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute(
                """
                CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT generate_series(1, 300);
                CREATE TABLE victim (x int);
                GRANT SELECT ON items TO \(low.quoted);
                """)
            let conn = try await low.connect(db)
            // What each failed job's last_error starts with, and what it says.
            let cases: [(label: String, payload: String, prefix: String, expected: String)] = [
                (
                    "delete without the right",
                    batchedPayload(table: "items", statement: "DELETE FROM items WHERE id BETWEEN $1 AND $2"),
                    "batch 1 (keys 1..100) failed: ", "permission denied for table items (SQLSTATE 42501)"
                ),
                (
                    "table name with a statement",
                    batchedPayload(
                        table: "items; DROP TABLE victim",
                        statement: "UPDATE items SET n = n WHERE id BETWEEN $1 AND $2"),
                    "job %id (batched", "invalid name syntax"
                ),
                (
                    "key with a statement",
                    batchedPayload(
                        table: "items", key: "id) ; DROP TABLE victim; --",
                        statement: "UPDATE items SET n = n WHERE id BETWEEN $1 AND $2"),
                    "job %id (batched", "table items has no column \"id) ; DROP TABLE victim; --\""
                ),
                (
                    "second statement",
                    batchedPayload(table: "items", statement: "SELECT $1::int, $2::int; DROP TABLE victim"),
                    "job %id (batched", "the statement must be exactly one statement; it holds 2"
                ),
            ]
            var ids: [(label: String, id: Int64, prefix: String, expected: String)] = []
            for item in cases {
                let id = try await insertBatchedJob(item.payload, name: item.label, on: conn)
                ids.append((item.label, id, item.prefix.replacingOccurrences(of: "%id", with: "\(id)"), item.expected))
            }
            await conn.close()
            try await drain(db)
            for item in ids {
                let (state, error) = try await outcome(of: item.id, admin)
                #expect(state == "failed", "\(item.label)")
                #expect(error.hasPrefix(item.prefix), "\(item.label): \(error)")
                #expect(error.contains(item.expected), "\(item.label): \(error)")
            }
            #expect(try await relationExists("victim", admin))
            #expect(try await admin.query("SELECT count(*) AS n FROM items").first?.int("n") == 300)
        }
    }

    @Test func aBatchCannotTakeTheWorkersRoleBySetConfig() async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute(
                """
                CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT generate_series(1, 300);
                GRANT SELECT, UPDATE ON items TO \(low.quoted);
                """)
            let conn = try await low.connect(db)
            let id = try await conn.query(
                """
                SELECT godwit.enqueue_batched('escalate', 'items', 'id',
                    'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2 AND set_config(''role'', ''postgres'', false) IS NOT NULL',
                    batch_size => 100, max_attempts => 1) AS id
                """
            ).first!.int64("id")
            await conn.close()
            try await drain(db)
            let (state, error) = try await outcome(of: id, admin)
            #expect(state == "failed")
            #expect(error.contains("permission denied to set role \"postgres\""), "\(error)")
            #expect(try await admin.query("SELECT count(*) AS n FROM items WHERE n <> 0").first?.int("n") == 0)
        }
    }

    /// The worker (w, not a superuser, owning the queue) logs in as the enqueuer (low) to run its
    /// job: by default with its own URL, user replaced and password left out, the password then
    /// coming from the password file. Without a way in the job fails at once, naming the role and
    /// the settings; it never runs as w.
    @Test func aWorkerThatCannotLogInAsTheEnqueuerFailsTheJobAndSaysHow() async throws {
        try await withRoles(["low", "w"]) { roles in
            let (low, w) = (roles[0], roles[1])
            try await withTestDatabase { db in
                let admin = try await db.connect()
                try await admin.execute(
                    """
                    GRANT CREATE ON DATABASE \(quoteIdentifier(db.name)) TO \(w.quoted);
                    CREATE SCHEMA w_data AUTHORIZATION \(w.quoted);
                    """)
                // The worker connects as w, not a superuser: it installs the schema and owns it.
                let workerURL = try w.url(db)
                let first = try await drainWorker(try TestPasswordFile.url(workerURL))
                #expect(first.status == 0, "\(first.stderr.suffix(1500))")
                #expect(!first.stderr.contains(w.password))
                let asW = try await w.connect(db)
                try await asW.query("SELECT godwit.grant_enqueue($1::regrole)", [low.name])
                await asW.close()
                let conn = try await low.connect(db)
                // w could do this; low cannot (w_data is w's).
                let id = try await enqueueSQL("CREATE TABLE w_data.made (x int)", on: conn)
                await conn.close()
                let dir = try TemporaryDirectory()
                defer { dir.delete() }
                let lockedOut = try await drainWorker(try TestPasswordFile.url(workerURL, file: dir.path + "/none"))
                #expect(lockedOut.status == 0)
                #expect(!lockedOut.stderr.contains(w.password) && !lockedOut.stderr.contains(low.password))
                let (state, error) = try await outcome(of: id, admin)
                #expect(state == "failed")
                #expect(
                    error.contains("enqueued by role \(low.name), and the worker cannot log in as \(low.name)"),
                    "\(error)")
                #expect(error.contains("--enqueuer-logins"), "\(error)")
                #expect(!error.contains(w.password))
                #expect(!(try await relationExists("made", admin)))
                // A logins file that is readable by others is refused before anything runs.
                try dir.write("logins", "\(low.name) \(try low.url(db))\n")
                chmod(dir.path + "/logins", 0o644)
                // A worker with no password file, and the logins file as written.
                func drainWithLogins() async throws -> GodwitProcess.Output {
                    try await drainWorker(
                        try TestPasswordFile.url(workerURL, file: dir.path + "/none"),
                        ["--enqueuer-logins", dir.path + "/logins"])
                }
                let refused = try await drainWithLogins()
                #expect(refused.status == 1)
                #expect(refused.stderr.contains("readable by group or others"), "\(refused.stderr)")
                #expect(!refused.stderr.contains(low.password))
                // A line that logs in as someone else is refused too: the job runs only as low.
                try dir.write("logins", "\(low.name) \(try w.url(db))\n")
                chmod(dir.path + "/logins", 0o600)
                try await admin.query("SELECT godwit.retry($1)", [id])
                #expect(try await drainWithLogins().status == 0)
                let impostor = try await outcome(of: id, admin)
                #expect(impostor.state == "failed")
                #expect(impostor.error.contains("logs in as \(w.name)"), "\(impostor.error)")
                #expect(!(try await relationExists("made", admin)))
                // With low's own login in the file the job runs as low, which still may not
                // create there.
                try dir.write("logins", "# role connection-string\n\(low.name) \(try low.url(db))\n")
                chmod(dir.path + "/logins", 0o600)
                try await admin.query("SELECT godwit.retry($1)", [id])
                #expect(try await drainWithLogins().status == 0)
                let retried = try await outcome(of: id, admin)
                #expect(retried.state == "failed")
                #expect(retried.error.contains("permission denied for schema w_data"), "\(retried.error)")
                #expect(!(try await relationExists("made", admin)))
                await admin.close()
            }
        }
    }

    /// A migrate job's migrations run in a session of its enqueuer's: low may not create the
    /// ledger (or anything) in public, so nothing is made.
    @Test func aMigrateJobRunsWithItsEnqueuersRights() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("migrations/1_made_by_migration.sql", "CREATE TABLE made_by_migration (x int);")
        let payload = MigratePayload(source: try MigrationSource.load(directory: dir.path + "/migrations"))
        let json = String(decoding: try JSONEncoder().encode(payload), as: UTF8.self)
        try await withEnqueuer { db, admin, low in
            let conn = try await low.connect(db)
            let id = try await conn.query("SELECT godwit.enqueue('migrate', 'migrate', $1::jsonb) AS id", [json])
                .first!.int64("id")
            await conn.close()
            try await drain(db)
            let (state, error) = try await outcome(of: id, admin)
            #expect(state == "failed")
            #expect(error.contains("permission denied for schema public"), "\(error)")
            #expect(!(try await relationExists("made_by_migration", admin)))
            #expect(!(try await relationExists("_sqlx_migrations", admin)))
        }
    }
}
