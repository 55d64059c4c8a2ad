import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@testable import GodwitMigrations

/// Quick timings for tests: 200 ms lock timeout, short backoff.
func quickLocks(retries: Int = 100) -> LockTimeoutPolicy {
    LockTimeoutPolicy(
        lockTimeout: .milliseconds(200), retries: retries,
        backoff: Backoff(base: .milliseconds(20), max: .milliseconds(100)))
}

extension Fixture {
    func migrator(_ policy: LockTimeoutPolicy) throws -> Migrator {
        var migrator = try migrator()
        migrator.lockPolicy = policy
        return migrator
    }

    /// A session that has read `table` inside an open transaction, as a long application read does.
    func holder(of table: String, applicationName: String = "app-holder") async throws -> Connection {
        let holder = try await Connection.connect(db.url, applicationName: applicationName)
        try await holder.execute("BEGIN")
        try await holder.execute("SELECT count(*) FROM \(table)")
        return holder
    }

    /// Starts the migrations with `quickLocks()` on a connection of their own, in the background.
    func runBlocked() async throws -> (Connection, Task<[MigrationEvent], any Error>) {
        let migrationConn = try await db.connect()
        let migrator = try migrator(quickLocks())
        return (migrationConn, Task { try await migrator.run(on: migrationConn) })
    }

    /// Whether the migration has waited for a lock half its timeout: its watch session is there
    /// (in this fixture's database: other suites' migrations wait at the same time).
    func migrationHasTriedOnce() async throws -> Bool {
        try await conn.query(
            """
            SELECT count(*) > 0 AS seen FROM pg_stat_activity
            WHERE application_name = 'godwit lock watch' AND datname = current_database()
            """
        ).first?.bool("seen") ?? false
    }
}

@Suite("Lock timeouts: migrations that never stall the application")
struct LockTimeoutTests {
    @Test func aBlockedMigrationStepsAsideSoReadsGoOnAndAppliesOnceTheHolderEnds() async throws {
        try await withFixture(["1_note.sql": "ALTER TABLE media ADD COLUMN note text;"]) { f in
            try await f.conn.execute("CREATE TABLE media (id int PRIMARY KEY); INSERT INTO media VALUES (1)")
            let holder = try await f.holder(of: "media")
            let (migrationConn, run) = try await f.runBlocked()
            // The watch session appears when the ALTER has waited half its timeout.
            #expect(try await eventually { try await f.migrationHasTriedOnce() })
            // While it retries, a read that would queue behind a waiting ALTER gets through: without
            // the lock timeout it would wait for the holder (that is, past its own 5 s limit).
            let reader = try await f.db.connect()
            for _ in 0..<5 {
                try await reader.execute("SET lock_timeout = '5s'")
                #expect(try await reader.query("SELECT count(*) AS n FROM media").first?.int("n") == 1)
                try await Task.sleep(for: .milliseconds(100))
            }
            try await holder.execute("COMMIT")
            let events = try await run.value
            #expect(events.map(\.action) == [.applied])
            #expect(try await f.ledger().map(\.success) == [true])
            #expect(
                try await f.conn.query(
                    "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'media' AND column_name = 'note'"
                ).first?.int("n") == 1)
            for c in [holder, migrationConn, reader] { await c.close() }
        }
    }

    @Test func afterTheLastRetryTheErrorNamesTheTableAndWhoHoldsIt() async throws {
        try await withFixture(["1_note.sql": "ALTER TABLE media ADD COLUMN note text;"]) { f in
            try await f.conn.execute("CREATE TABLE media (id int PRIMARY KEY)")
            let holder = try await f.holder(of: "media", applicationName: "billing-app")
            let holderPID = await holder.backendPID
            let migrationConn = try await f.db.connect()
            // A timeout long enough for the watch to look in time on a loaded machine.
            let policy = LockTimeoutPolicy(
                lockTimeout: .seconds(1), retries: 2, backoff: Backoff(base: .milliseconds(20), max: .milliseconds(50)))
            let error = await #expect(throws: MigrationError.self) {
                try await f.migrator(policy).run(on: migrationConn)
            }
            #expect(error?.code == .lockTimeout)
            let message = error?.message ?? ""
            #expect(message.hasPrefix("migration 1 could not lock table media after 3 tries in "), "\(message)")
            #expect(message.contains("pid \(holderPID) (billing-app, idle in transaction for "), "\(message)")
            #expect(message.contains("SELECT count(*) FROM media) holds it"), "\(message)")
            #expect(!message.contains("\n"))
            // Nothing applied, nothing recorded, no lock kept.
            #expect(try await f.ledger().isEmpty)
            #expect(await migrationConn.transactionStatus == .idle)
            try await holder.execute("COMMIT")
            try await f.migrator(quickLocks()).run(on: migrationConn)
            #expect(try await f.ledger().map(\.success) == [true])
            for c in [holder, migrationConn] { await c.close() }
        }
    }

    @Test func aFileThatSetsItsOwnLockTimeoutKeepsIt() async throws {
        try await withFixture([
            "1_default.sql": "CREATE TABLE seen_default AS SELECT current_setting('lock_timeout') AS v;",
            "2_own.sql":
                "SET LOCAL lock_timeout = '3s';\nCREATE TABLE seen_own AS SELECT current_setting('lock_timeout') AS v;",
            "3_off.sql": "-- no-transaction\nCREATE TABLE seen_no_tx AS SELECT current_setting('lock_timeout') AS v;",
        ]) { f in
            let migrationConn = try await f.db.connect()
            try await f.migrator(quickLocks()).run(on: migrationConn)
            #expect(try await f.conn.query("SELECT v FROM seen_default").first?.string("v") == "200ms")
            #expect(try await f.conn.query("SELECT v FROM seen_own").first?.string("v") == "3s")
            #expect(try await f.conn.query("SELECT v FROM seen_no_tx").first?.string("v") == "200ms")
            // The session's own setting is back after the no-transaction file.
            #expect(
                try await migrationConn.query("SELECT current_setting('lock_timeout') AS v").first?.string("v") == "0")
            await migrationConn.close()
        }
    }

    @Test func offLeavesTheSessionsLockTimeoutAlone() async throws {
        try await withFixture(["1_seen.sql": "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS v;"]) {
            f in
            try await f.migrator(.off).run(on: f.conn)
            #expect(try await f.conn.query("SELECT v FROM seen").first?.string("v") == "0")
        }
    }

    @Test func inANoTransactionFileOnlyTheStatementThatTimedOutIsRetried() async throws {
        try await withFixture([
            "1_two.sql":
                "-- no-transaction\nCREATE TABLE created_once (id int);\nALTER TABLE media ADD COLUMN note text;\n"
        ]) { f in
            try await f.conn.execute("CREATE TABLE media (id int PRIMARY KEY)")
            let holder = try await f.holder(of: "media")
            let (migrationConn, run) = try await f.runBlocked()
            #expect(try await eventually { try await f.migrationHasTriedOnce() })
            try await Task.sleep(for: .milliseconds(500))
            try await holder.execute("COMMIT")
            // Retrying the whole file would fail on CREATE TABLE created_once: it exists.
            #expect(try await run.value.map(\.action) == [.applied])
            #expect(try await f.ledger().map(\.success) == [true])
            #expect(try await f.exists("created_once"))
            for c in [holder, migrationConn] { await c.close() }
        }
    }

    @Test func anInvalidIndexLeftByAnUnfinishedBuildIsDroppedAndBuiltAgain() async throws {
        try await withFixture([
            "1_index.sql":
                "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS media_code ON media (code);\n"
        ]) { f in
            try await f.conn.execute(
                "CREATE TABLE media (id int PRIMARY KEY, code int); INSERT INTO media VALUES (1, 7), (2, 7)")
            // A build that failed half-way leaves the index behind, INVALID.
            await #expect(throws: PostgresError.self) {
                try await f.conn.execute("CREATE UNIQUE INDEX CONCURRENTLY media_code ON media (code)")
            }
            #expect(
                try await f.conn.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'media_code'::regclass")
                    .first?.bool("indisvalid") == false)
            try await f.conn.execute("DELETE FROM media WHERE id = 2")
            try await f.migrator(quickLocks()).run(on: f.conn)
            #expect(
                try await f.conn.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'media_code'::regclass")
                    .first?.bool("indisvalid") == true)
            #expect(try await f.ledger().map(\.success) == [true])
        }
    }

    @Test func aFailedBuildDropsTheInvalidIndexItLeft() async throws {
        try await withFixture([
            "1_index.sql": "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY media_code ON media (code);\n"
        ]) { f in
            try await f.conn.execute(
                "CREATE TABLE media (id int PRIMARY KEY, code int); INSERT INTO media VALUES (1, 7), (2, 7)")
            let error = await #expect(throws: MigrationError.self) {
                try await f.migrator(quickLocks()).run(on: f.conn)
            }
            #expect(error?.underlying?.sqlState == .uniqueViolation)
            #expect(try await !f.exists("media_code"))
            #expect(try await f.ledger().isEmpty)
        }
    }

    /// A REINDEX CONCURRENTLY that fails half-way leaves its new copy (`<index>_ccnew`) behind,
    /// INVALID; Godwit drops it and keeps the original.
    @Test(arguments: ["REINDEX INDEX CONCURRENTLY media_code_f", "REINDEX (VERBOSE) TABLE CONCURRENTLY media"])
    func aFailedConcurrentReindexDropsTheCopyItLeft(statement: String) async throws {
        try await withFixture([
            "1_reindex.sql": "-- no-transaction\nSET godwit_test.fail_index = 'on';\n\(statement);\n"
        ]) { f in
            // An immutable function that fails once asked to: the rebuild fails after the copy exists.
            try await f.conn.execute(
                """
                CREATE TABLE media (id int PRIMARY KEY, code int);
                INSERT INTO media SELECT g, g FROM generate_series(1, 100) g;
                CREATE FUNCTION code_f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
                BEGIN
                    IF current_setting('godwit_test.fail_index', true) = 'on' THEN RAISE EXCEPTION 'rebuild refused'; END IF;
                    RETURN $1;
                END $$;
                CREATE INDEX media_code_f ON media (code_f(code));
                """)
            let error = await #expect(throws: MigrationError.self) {
                try await f.migrator(quickLocks()).run(on: f.conn)
            }
            #expect(error?.underlying?.message.contains("rebuild refused") == true, "\(String(describing: error))")
            let left = try await f.conn.query(
                "SELECT c.relname::text AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'media'::regclass ORDER BY 1"
            ).rows.map { "\(try $0.string("name")):\(try $0.bool("valid"))" }
            #expect(left == ["media_code_f:true", "media_pkey:true"])
        }
    }

    @Test func aBuildThatIfNotExistsSkippedOverAnInvalidIndexStaysPartiallyApplied() async throws {
        try await withFixture([
            "1_index.sql": "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS shared_name ON media (code);\n"
        ]) { f in
            try await f.conn.execute(
                """
                CREATE TABLE media (id int PRIMARY KEY, code int);
                CREATE TABLE other (code int); INSERT INTO other VALUES (1), (1);
                """)
            // An invalid index of that name on another table: not this build's to drop.
            await #expect(throws: PostgresError.self) {
                try await f.conn.execute("CREATE UNIQUE INDEX CONCURRENTLY shared_name ON other (code)")
            }
            let error = await #expect(throws: MigrationError.self) {
                try await f.migrator(quickLocks()).run(on: f.conn)
            }
            #expect(error?.code == .invalidIndex)
            #expect(error?.message.contains("index shared_name is INVALID") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("DROP INDEX CONCURRENTLY shared_name,") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("DELETE FROM _sqlx_migrations WHERE version = 1") == true)
            #expect(try await f.ledger().map(\.success) == [false])
        }
    }

    @Test func theCommandLineTakesDurationsAndRefusesNonsense() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            let bad = try await GodwitCommand.run(
                ["migrate", "run", "-D", f.db.url, "--lock-timeout", "soon"], directory: f.dir.path)
            #expect(bad.status == 64)
            #expect(bad.stderr.contains("'soon' is not a duration"), "\(bad.stderr)")
            let ok = try await GodwitCommand.run(
                [
                    "migrate", "run", "-D", f.db.url, "--lock-timeout", "1.5s", "--lock-retries", "3", "--source",
                    f.dir.path,
                ])
            #expect(ok.status == 0, "\(ok.stderr)")
        }
    }
}

@Suite("migrate run says what lint flags before it runs")
struct RunLintWarningTests {
    @Test func aFlaggedMigrationIsNamedByRuleAndStrictRefusesIt() async throws {
        try await withFixture(["2_index.sql": "CREATE INDEX media_title ON media (title);"]) { f in
            try await f.conn.execute("CREATE TABLE media (id int PRIMARY KEY, title text)")
            let strict = try await GodwitCommand.run([
                "migrate", "run", "--strict", "-D", f.db.url, "--source", f.dir.path,
            ])
            #expect(strict.status == 1)
            #expect(strict.stderr.contains("non-concurrent-index"), "\(strict.stderr)")
            #expect(
                strict.stderr.contains(
                    "--strict: migrate lint flags 1 of the pending statements, so nothing was applied"))
            #expect(try await !f.exists("media_title"))
            #expect(try await !f.exists("_sqlx_migrations"))
            let warned = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(warned.status == 0, "\(warned.stderr)")
            #expect(warned.stderr.contains("warning: "), "\(warned.stderr)")
            #expect(warned.stderr.contains("2_index.sql:1: non-concurrent-index"), "\(warned.stderr)")
            #expect(warned.stdout.contains("Applied 2/migrate index"))
            #expect(try await f.exists("media_title"))
        }
    }

    /// A warning is not an error: the finding is a `warning:` line of its own, and a run that
    /// succeeds prints no `error:` line at all (it printed `error: warning: ...` once).
    @Test func aSuccessfulRunPrintsItsFindingsAsWarningsNotErrors() async throws {
        try await withFixture(["2_index.sql": "CREATE INDEX media_title ON media (title);"]) { f in
            try await f.conn.execute("CREATE TABLE media (id int PRIMARY KEY, title text)")
            let run = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stderr.split(separator: "\n").map(String.init)
            let finding = lines.filter { $0.contains("non-concurrent-index") }
            #expect(finding.count == 1, "\(run.stderr)")
            #expect(
                finding.allSatisfy { $0.hasPrefix("warning: ") && !$0.hasPrefix("warning: warning:") }, "\(run.stderr)")
            #expect(!lines.contains { $0.hasPrefix("error:") }, "\(run.stderr)")
            #expect(try await f.exists("media_title"))
        }
    }
}
