import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A batched job runs in a session that logged in as its enqueuer; the worker's fence and
/// checkpoint are functions of the queue's owner that act on the session's own job only. Here the
/// enqueuer owns a schema of its own, as an application's role usually does, and uses it to
/// leave code wherever PostgreSQL might run it: at parse time, in the batch, at COMMIT, in the
/// health query, when a batch fails, in functions named like Godwit's. Whatever runs, it runs as
/// the enqueuer (the property checked for every trick), whatever becomes of the job.
@Suite("Tricks of a batched job's enqueuer gain nothing", .serialized)
struct BatchSandboxTests {
    /// The enqueuer's code that must never run with more than the enqueuer's rights: it records
    /// who runs it, tries to drop the enqueuer's role (which works anywhere outside a
    /// SECURITY DEFINER function or a security-restricted operation), records who it is then,
    /// and, if that is a superuser, creates a table in public.
    static let setup = """
        CREATE TABLE low_code.items (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0);
        INSERT INTO low_code.items (id) SELECT generate_series(1, 300);
        CREATE TABLE low_code.seen (who text);
        CREATE FUNCTION low_code.evil() RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN
            INSERT INTO low_code.seen VALUES (current_user);
            BEGIN
                PERFORM pg_catalog.set_config('role', 'none', false);
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            INSERT INTO low_code.seen VALUES (current_user);
            IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                CREATE TABLE IF NOT EXISTS public.made_by_low (x int);
            END IF;
            RETURN true;
        END $f$;
        """

    struct Trick: Sendable, CustomTestStringConvertible {
        var label: String
        /// Run as the enqueuer after `setup`; records 'planted' when the trick is set (in a
        /// batch, the record goes with the batch if it fails).
        var plant: String
        var statement =
            "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2 AND low_code.plant()"
        var searchPath: String?
        var pauseMs = 0
        var healthQuery: String?
        var expected = Expected.everyRowOnce

        enum Expected: Sendable {
            /// The job succeeds, having updated every row once.
            case everyRowOnce
            /// The job fails with this in its last_error, having committed at most one batch.
            case fails(String)
            /// The job succeeds with these counts: the enqueuer stopped its own job early.
            case succeeds([Int: Int])
            /// Any outcome: only the enqueuer's rights are checked.
            case any
        }

        var testDescription: String { label }
    }

    static let tricks: [Trick] = [
        Trick(
            label: "a temporary type named text, for the fence's casts",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF pg_catalog.to_regtype('pg_temp.text') IS NULL THEN
                        CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (low_code.evil());
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """),
        Trick(
            label: "a temporary view named pg_stat_replication, for the throttle",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF pg_catalog.to_regclass('pg_temp.pg_stat_replication') IS NULL THEN
                        CREATE TEMP VIEW pg_stat_replication AS
                            SELECT NULL::interval AS write_lag, NULL::interval AS flush_lag, NULL::interval AS replay_lag
                            WHERE low_code.evil();
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """,
            // The throttle looks again once a second.
            pauseMs: 1100),
        Trick(
            label: "a search_path with an = operator of the enqueuer's",
            plant: """
                CREATE FUNCTION low_code.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN PERFORM low_code.evil(); RETURN a OPERATOR(pg_catalog.=) b; END $f$;
                CREATE OPERATOR low_code.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = low_code.eq);
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2",
            searchPath: "low_code, pg_catalog"),
        Trick(
            label: "a search_path with a type of the enqueuer's named text",
            plant: """
                CREATE DOMAIN low_code.text AS pg_catalog.text CHECK (low_code.evil());
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2",
            searchPath: "low_code, pg_catalog"),
        Trick(
            label: "a deferred trigger, fired at the batch's COMMIT",
            plant: """
                CREATE FUNCTION low_code.on_commit() RETURNS trigger LANGUAGE plpgsql AS $f$
                BEGIN PERFORM low_code.evil(); RETURN NULL; END $f$;
                CREATE CONSTRAINT TRIGGER on_commit AFTER UPDATE ON low_code.items DEFERRABLE INITIALLY DEFERRED
                    FOR EACH ROW EXECUTE FUNCTION low_code.on_commit();
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2"),
        Trick(
            label: "a deferred exclusion constraint on an expression, re-checked at the batch's COMMIT",
            plant: """
                CREATE FUNCTION low_code.key_of(id int, counter int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
                BEGIN
                    IF counter OPERATOR(pg_catalog.=) 0 THEN RETURN id; END IF;
                    PERFORM low_code.evil();
                    -- As the enqueuer every changed row collides, which queues a re-check for
                    -- COMMIT; as a superuser none does, so that COMMIT succeeds.
                    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN RETURN id; END IF;
                    RETURN 0;
                END $f$;
                ALTER TABLE low_code.items ADD CONSTRAINT one_at_a_time
                    EXCLUDE USING btree ((low_code.key_of(id, counter)) WITH =) DEFERRABLE INITIALLY DEFERRED;
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2",
            expected: .fails("conflicting key value violates exclusion constraint \"one_at_a_time\"")),
        Trick(
            label: "a cursor WITH HOLD, run to its end at the batch's COMMIT",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF NOT EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE name = 'escape') THEN
                        EXECUTE 'DECLARE escape CURSOR WITH HOLD FOR SELECT low_code.evil() FROM pg_catalog.generate_series(1, 3)';
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """),
        Trick(
            label: "row security on the table, read when a batch fails",
            plant: """
                CREATE FUNCTION low_code.policy() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN RETURN low_code.evil(); END $f$;
                ALTER TABLE low_code.items ENABLE ROW LEVEL SECURITY;
                ALTER TABLE low_code.items FORCE ROW LEVEL SECURITY;
                CREATE POLICY everything ON low_code.items USING (low_code.policy());
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement:
                "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2 AND 1 / (id - id) = 0",
            expected: .fails("division by zero")),
        Trick(
            label: "a function that swaps the batch function for one of its own",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    EXECUTE $s$
                        CREATE OR REPLACE FUNCTION pg_temp.godwit_batch(after_key text, batch_size integer, job_id bigint,
                            lease bigint, OUT control text, OUT first_key text, OUT last_key text, OUT n integer, OUT changed bigint, OUT ms double precision,
                            OUT waiters integer, OUT longest_wait_ms double precision, OUT total_wait_ms double precision, OUT shared boolean)
                        LANGUAGE plpgsql AS $b$ BEGIN PERFORM low_code.evil(); n := 0; changed := 0; END $b$
                    $s$;
                    INSERT INTO low_code.seen VALUES ('planted');
                    RETURN true;
                END $f$;
                """,
            // The swapped function finds no rows: the job ends after its first batch.
            expected: .succeeds([1: 100, 0: 200])),
        Trick(
            label: "a batch that swaps the health query's function for one that runs as its caller",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF NOT EXISTS (SELECT FROM low_code.seen WHERE who = 'planted') THEN
                        EXECUTE $s$
                            CREATE OR REPLACE FUNCTION pg_temp.godwit_health(OUT healthy boolean)
                            LANGUAGE plpgsql AS $b$ BEGIN healthy := low_code.evil(); END $b$
                        $s$;
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """,
            // The health query is looked at about once a second: after the first batch's pause.
            pauseMs: 1100, healthQuery: "SELECT true"),
        Trick(
            label: "a domain whose check runs when the statement is parsed",
            plant: """
                CREATE DOMAIN low_code.checked AS int CHECK (low_code.evil());
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement:
                "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2 AND '{1}'::low_code.checked[] IS NOT NULL"
        ),
        Trick(
            label: "a health query that leaves a trigger for its COMMIT",
            plant: """
                CREATE TABLE low_code.pings (x int);
                CREATE FUNCTION low_code.on_ping() RETURNS trigger LANGUAGE plpgsql AS $f$
                BEGIN PERFORM low_code.evil(); RETURN NULL; END $f$;
                CREATE CONSTRAINT TRIGGER on_ping AFTER INSERT ON low_code.pings DEFERRABLE INITIALLY DEFERRED
                    FOR EACH ROW EXECUTE FUNCTION low_code.on_ping();
                CREATE FUNCTION low_code.ping() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN INSERT INTO low_code.pings VALUES (1); RETURN true; END $f$;
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2",
            pauseMs: 1100, healthQuery: "SELECT low_code.ping()"),
        Trick(
            label: "an overload of the batch function planted in pg_temp",
            plant: """
                CREATE FUNCTION low_code.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF pg_catalog.to_regprocedure('pg_temp.godwit_batch(text, double precision)') IS NULL THEN
                        EXECUTE $s$
                            CREATE FUNCTION pg_temp.godwit_batch(after_key text, batch_size double precision,
                                OUT first_key text, OUT last_key text, OUT n integer, OUT changed bigint, OUT ms double precision,
                                OUT waiters integer, OUT longest_wait_ms double precision, OUT total_wait_ms double precision)
                            LANGUAGE plpgsql AS $b$ BEGIN PERFORM low_code.evil(); n := 0; changed := 0; END $b$
                        $s$;
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """,
            expected: .any),
        Trick(
            label: "the table swapped for a view that calls the enqueuer's code, read when the batch fails",
            plant: """
                CREATE FUNCTION low_code.swap() RETURNS boolean LANGUAGE plpgsql AS $f$
                BEGIN
                    IF pg_catalog.to_regclass('low_code.items_real') IS NULL THEN
                        ALTER TABLE low_code.items RENAME TO items_real;
                        CREATE VIEW low_code.items AS SELECT id, counter FROM low_code.items_real WHERE low_code.evil();
                        INSERT INTO low_code.seen VALUES ('planted');
                    END IF;
                    RETURN true;
                END $f$;
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2",
            // The job's health query, run before the first batch, makes the swap.
            healthQuery: "SELECT low_code.swap()", expected: .any),
        Trick(
            label: "SET CONSTRAINTS ALL DEFERRED from a trigger, then a deferred trigger",
            plant: """
                CREATE TABLE low_code.later (x int);
                CREATE FUNCTION low_code.on_later() RETURNS trigger LANGUAGE plpgsql AS $f$
                BEGIN PERFORM low_code.evil(); RETURN NULL; END $f$;
                CREATE CONSTRAINT TRIGGER on_later AFTER INSERT ON low_code.later DEFERRABLE INITIALLY IMMEDIATE
                    FOR EACH ROW EXECUTE FUNCTION low_code.on_later();
                CREATE FUNCTION low_code.redefer() RETURNS trigger LANGUAGE plpgsql AS $f$
                BEGIN SET CONSTRAINTS ALL DEFERRED; INSERT INTO low_code.later VALUES (1); RETURN NULL; END $f$;
                CREATE TRIGGER redefer AFTER UPDATE ON low_code.items FOR EACH STATEMENT EXECUTE FUNCTION low_code.redefer();
                INSERT INTO low_code.seen VALUES ('planted');
                """,
            statement: "UPDATE low_code.items SET counter = counter + 1 WHERE id BETWEEN $1 AND $2"),
    ]

    @Test(arguments: tricks)
    func nothingTheEnqueuerLeavesInTheSessionRunsWithMoreThanItsRights(_ trick: Trick) async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute("CREATE SCHEMA low_code AUTHORIZATION \(low.quoted)")
            let conn = try await low.connect(db)
            try await conn.execute(Self.setup)
            try await conn.execute(trick.plant)
            let id = try await insertBatchedJob(
                batchedPayload(
                    table: "low_code.items", statement: trick.statement, searchPath: trick.searchPath,
                    pauseMs: trick.pauseMs,
                    healthQuery: trick.healthQuery),
                name: trick.label, on: conn)
            await conn.close()
            try await drain(db)
            let (state, error) = try await outcome(of: id, admin)
            let seen = Set(try await admin.query("SELECT who FROM low_code.seen").rows.map { try $0.string("who") })
            // A failed batch rolls back what it planted; its error shows the trick was there.
            switch trick.expected {
            case .everyRowOnce, .succeeds: #expect(seen.contains("planted"), "the trick was never set")
            case .fails, .any: break
            }
            #expect(seen.isSubset(of: ["planted", low.name]), "ran as: \(seen.sorted())")
            #expect(!(try await relationExists("made_by_low", admin)))
            #expect(!(try await isSuperuser(low, admin)))
            // Counted only where the table is still a table: reading a view of the enqueuer's
            // would run its code here, as the test's superuser.
            switch trick.expected {
            case .everyRowOnce:
                #expect(state == "succeeded", "\(error)")
                #expect(try await counters(admin, "low_code.items") == [1: 300])
            case .fails(let failure):
                #expect(state == "failed")
                #expect(error.contains(failure), "\(error)")
                let counts = try await counters(admin, "low_code.items")
                #expect(counts[1, default: 0] <= 100, "\(counts)")
            case .succeeds(let expected):
                #expect(state == "succeeded", "\(error)")
                #expect(try await counters(admin, "low_code.items") == expected)
            case .any:
                break
            }
        }
    }
}
