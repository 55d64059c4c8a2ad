import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A `-- no-transaction` migration that stops between statements, whatever stops it (the
/// session ended by the server, a cancelled task), leaves a `success = false` row in the
/// ledger, written before its first statement, so that the next run stops on it, naming the
/// version, instead of running its first statements a second time.
@Suite("Interrupted -- no-transaction migrations are recorded as partially applied")
struct InterruptedMigrationTests {
    /// sqlx 0.8's own question of the ledger (`dirty_version` in sqlx-postgres/src/migrate.rs).
    static let sqlxDirtyVersion = "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1"

    @Test func theRowIsWrittenBeforeTheFirstStatementAndMarkedDoneAfterTheLast() async throws {
        try await withFixture([
            "1_t.sql": "CREATE TABLE t (a int);",
            "2_steps.sql": """
            -- no-transaction
            CREATE TABLE seen AS SELECT version, success, execution_time FROM _sqlx_migrations WHERE version = 2;
            CREATE INDEX CONCURRENTLY t_a_idx ON t (a);
            """,
        ]) { (fx: Fixture) async throws in
            try await fx.migrator().run(on: fx.conn)
            let seen = try await fx.conn.query("SELECT version, success, execution_time FROM seen").rows.map {
                "\(try $0.int64("version")) \(try $0.bool("success")) \(try $0.int64("execution_time"))"
            }
            #expect(seen == ["2 false -1"])
            let row = try #require(
                try await fx.conn.query("SELECT success, execution_time FROM _sqlx_migrations WHERE version = 2").first)
            #expect(try row.bool("success"))
            #expect(try row.int64("execution_time") > 0)
            #expect(try await fx.conn.query(Self.sqlxDirtyVersion).rows.isEmpty)
        }
    }

    /// The server ends the session between two statements (here the file's second statement
    /// ends its own session, as a restart or an administrator would): the first statement
    /// stays applied, the row stays dirty, and the next run refuses, naming the version and
    /// the file, without running the first statement again.
    @Test func aSessionEndedBetweenStatementsStopsTheNextRunNamingTheVersion() async throws {
        try await withFixture([
            "1_t.sql": "CREATE TABLE t (a int);",
            "2_steps.sql": """
            -- no-transaction
            CREATE TABLE first_step (id int);
            SELECT pg_terminate_backend(pg_backend_pid());
            CREATE TABLE last_step (id int);
            """,
            "3_after.sql": "CREATE TABLE after_it (id int);",
        ]) { (fx: Fixture) async throws in
            let session = try await fx.db.connect()
            let stopped = await #expect(throws: (any Error).self) { try await fx.migrator().run(on: session) }
            #expect(!(stopped is CancellationError))
            await session.close()

            #expect(try await fx.ledger().map { "\($0.version) \($0.success)" } == ["1 true", "2 false"])
            #expect(try await fx.conn.query(Self.sqlxDirtyVersion).first?.int64("version") == 2)
            #expect(try await fx.exists("first_step"))
            #expect(try await !fx.exists("last_step"))

            let again = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(again?.code == .dirty)
            #expect(again?.version == 2)
            let message = again?.message ?? ""
            #expect(
                message.hasPrefix("migration 2 is partially applied; fix and remove row from `_sqlx_migrations` table"),
                "\(message)")
            #expect(message.contains("2_steps.sql"), "\(message)")
            #expect(message.contains("DELETE FROM _sqlx_migrations WHERE version = 2"), "\(message)")
            #expect(!message.contains("already exists"))
            #expect(try await !fx.exists("after_it"))
            // The ledger keeps sqlx's exact shape: sqlx reads it, and stops on the same row.
            let types = try await fx.conn.query(
                "SELECT column_name::text AS c, data_type::text AS t FROM information_schema.columns WHERE table_name = '_sqlx_migrations' ORDER BY ordinal_position"
            ).rows.map { "\(try $0.string("c")) \(try $0.string("t"))" }
            #expect(
                types == [
                    "version bigint", "description text", "installed_on timestamp with time zone", "success boolean",
                    "checksum bytea", "execution_time bigint",
                ])
        }
    }

    /// A statement that fails after others ran: the error says the migration is recorded as
    /// partially applied and what to do by hand; one that fails first leaves no row.
    @Test func aFailureSaysWhatIsRecordedAndHowToClearIt() async throws {
        try await withFixture([
            "1_steps.sql": "-- no-transaction\nCREATE TABLE one (id int);\nCREATE TABLE one (id int);\n"
        ]) { (fx: Fixture) async throws in
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            let message = error?.message ?? ""
            #expect(message.contains("1_steps.sql:3:"), "\(message)")
            #expect(
                message.contains(
                    "1 of 2 statements had already run outside a transaction, so the migration is recorded as partially applied (success = false in _sqlx_migrations)"
                ), "\(message)")
            #expect(message.contains("DELETE FROM _sqlx_migrations WHERE version = 1"), "\(message)")
            #expect(try await fx.ledger().map(\.success) == [false])
        }
    }

    /// A task cancelled during the second of several concurrent index builds (a worker's
    /// shutdown timeout, a cancelled job): the build's INVALID index is dropped as a failed
    /// build's is, the first index stays, and the migration stays recorded as partially
    /// applied, so the next attempt stops as dirty instead of failing on "already exists".
    @Test func aTaskCancelledDuringAConcurrentBuildDropsItsInvalidIndexAndLeavesTheMigrationDirty() async throws {
        try await withFixture([
            "1_t.sql":
                "CREATE TABLE t (a int, b int); CREATE TABLE u (a int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;",
            "2_idx.sql": """
            -- no-transaction
            CREATE INDEX CONCURRENTLY u_a_idx ON u (a);
            CREATE INDEX CONCURRENTLY t_b_idx ON t (b);
            CREATE INDEX CONCURRENTLY t_a_idx ON t (a);
            """,
        ]) { (fx: Fixture) async throws in
            let migrator = try fx.migrator(.off)
            try await migrator.run(on: fx.conn, targetVersion: 1)
            // An application transaction that has written to t: the build on t waits for it,
            // with its INVALID index already in the catalog.
            let blocker = try await fx.db.connect()
            try await blocker.execute("BEGIN; INSERT INTO t VALUES (0, 0)")
            let session = try await fx.db.connect()
            let pid = try #require(try await session.query("SELECT pg_backend_pid() AS pid").first?.int("pid"))
            let run = Task { try await migrator.run(on: session) }
            let waiting = try await eventually(timeout: .seconds(60)) {
                try await fx.conn.query(
                    """
                    SELECT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass('t_b_idx') AND NOT indisvalid)
                       AND EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock') AS ready
                    """, [pid]
                ).first?.bool("ready") == true
            }
            #expect(waiting)
            run.cancel()
            // The clean-up's DROP INDEX CONCURRENTLY waits for the same transaction: once it is
            // under way, the application's transaction ends.
            let dropping = try await eventually(timeout: .seconds(60)) {
                try await fx.conn.query(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'DROP INDEX CONCURRENTLY%') AS d",
                    [pid]
                ).first?.bool("d") == true
            }
            #expect(dropping)
            try await blocker.execute("ROLLBACK")
            let outcome = await run.result
            #expect(throws: CancellationError.self) { try outcome.get() }

            let indexes = try await fx.conn.query(
                "SELECT c.relname::text AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid IN ('t'::regclass, 'u'::regclass) ORDER BY 1"
            ).rows.map { "\(try $0.string("name")):\(try $0.bool("valid"))" }
            #expect(indexes == ["u_a_idx:true"])
            #expect(try await fx.ledger().map { "\($0.version) \($0.success)" } == ["1 true", "2 false"])
            // The session lives on, idle, without the migration lock.
            #expect(await session.transactionStatus == .idle)

            let again = await #expect(throws: MigrationError.self) { try await migrator.run(on: session) }
            #expect(again?.code == .dirty)
            #expect(again?.version == 2)
            #expect(again?.message.contains("2_idx.sql") == true, "\(again?.message ?? "")")
            await session.close()
            await blocker.close()
        }
    }

    /// Cancelled before any statement of the file ran: nothing is left, not even the row.
    @Test func aTaskCancelledDuringTheFirstBuildLeavesNoRowAndNoIndex() async throws {
        try await withFixture([
            "1_t.sql": "CREATE TABLE t (a int); INSERT INTO t SELECT g FROM generate_series(1, 100) g;",
            "2_idx.sql": "-- no-transaction\nCREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
        ]) { (fx: Fixture) async throws in
            let migrator = try fx.migrator(.off)
            try await migrator.run(on: fx.conn, targetVersion: 1)
            let blocker = try await fx.db.connect()
            try await blocker.execute("BEGIN; INSERT INTO t VALUES (0)")
            let session = try await fx.db.connect()
            let pid = try #require(try await session.query("SELECT pg_backend_pid() AS pid").first?.int("pid"))
            let run = Task { try await migrator.run(on: session) }
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try await fx.conn.query(
                        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX%') AS w",
                        [pid]
                    ).first?.bool("w") == true
                })
            run.cancel()
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try await fx.conn.query(
                        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'DROP INDEX CONCURRENTLY%') AS d",
                        [pid]
                    ).first?.bool("d") == true
                })
            try await blocker.execute("ROLLBACK")
            let outcome = await run.result
            #expect(throws: CancellationError.self) { try outcome.get() }
            #expect(try await !fx.exists("t_a_idx"))
            #expect(try await fx.ledger().map(\.version) == [1])
            try await migrator.run(on: session)
            #expect(try await fx.ledger().map(\.success) == [true, true])
            await session.close()
            await blocker.close()
        }
    }
}
