import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The property at the centre of the queue: code that a job's enqueuer controls runs with the
/// enqueuer's rights and no more, at every point where PostgreSQL runs user code.
///
/// Two enqueuers, `a` and `b`, each own a schema with an `observe(point)` function that records
/// who runs it (session_user, current_user), whether that role could read the other enqueuer's
/// secret table, become the worker's role or is a superuser, then tries to drop to the session's
/// own role (`set_config('role', 'none')`, which works anywhere outside a SECURITY DEFINER
/// function) and records who it is then. Their jobs call it from a statement, an immediate and a
/// deferred trigger, a cursor run at COMMIT, a domain check run when a statement is parsed (in a
/// lone CREATE INDEX CONCURRENTLY and in a batch), a batch, a row security policy (read by the
/// batches and when a batch fails) and a health query. Run by a superuser worker and by a worker
/// that is neither superuser nor member of either enqueuer.
@Suite("Enqueuer code runs as the enqueuer at every point", .serialized)
struct EnqueuerLoginTests {
    static let points: Set<String> = [
        "statement", "immediate trigger", "deferred trigger", "commit", "parse (lone statement)", "parse (batch)",
        "batch",
        "row security", "health query",
    ]

    /// Everything one enqueuer owns, in its own schema (its secret table made before); `other` is
    /// the other enqueuer's secret table's oid, `worker` the worker's role.
    static func setup(_ role: TestRole, schema: String, other: Int64, worker: String) -> String {
        """
        CREATE FUNCTION \(schema).observe(point text) RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN
            INSERT INTO public.observations VALUES (\(quoteLiteral(role.name)), point, session_user, current_user,
                has_table_privilege(current_user, \(other)::oid, 'SELECT'),
                pg_has_role(current_user, \(quoteLiteral(worker)), 'MEMBER') AND current_user <> \(quoteLiteral(worker)),
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
            BEGIN
                PERFORM set_config('role', 'none', false);
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            INSERT INTO public.observations VALUES (\(quoteLiteral(role.name)), point || ' (after dropping the role)',
                session_user, current_user, false, false, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
            RETURN true;
        END $f$;
        CREATE DOMAIN \(schema).checked_batch AS int CHECK (\(schema).observe('parse (batch)'));
        CREATE DOMAIN \(schema).checked_lone AS int CHECK (\(schema).observe('parse (lone statement)'));
        CREATE TABLE \(schema).t (x int);
        CREATE FUNCTION \(schema).on_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN PERFORM \(schema).observe(TG_ARGV[0]); RETURN NULL; END $f$;
        CREATE TRIGGER immediate AFTER INSERT ON \(schema).t FOR EACH ROW EXECUTE FUNCTION \(schema).on_insert('immediate trigger');
        CREATE CONSTRAINT TRIGGER deferred AFTER INSERT ON \(schema).t DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION \(schema).on_insert('deferred trigger');
        CREATE TABLE \(schema).items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
        INSERT INTO \(schema).items (id) SELECT generate_series(1, 30);
        ALTER TABLE \(schema).items ENABLE ROW LEVEL SECURITY;
        ALTER TABLE \(schema).items FORCE ROW LEVEL SECURITY;
        CREATE POLICY everything ON \(schema).items USING (\(schema).observe('row security'));
        """
    }

    static func jobs(schema: String) -> [String] {
        [
            """
            SELECT godwit.enqueue('sql', 'statement and triggers', jsonb_build_object('sql', $s$
                SELECT \(schema).observe('statement');
                INSERT INTO \(schema).t VALUES (1);
                DECLARE c CURSOR WITH HOLD FOR SELECT \(schema).observe('commit') FROM generate_series(1, 2)
            $s$))
            """,
            """
            SELECT godwit.enqueue('sql', 'lone statement', jsonb_build_object('sql', $s$
                CREATE INDEX CONCURRENTLY t_parsed ON \(schema).t (x) WHERE '{1}'::\(schema).checked_lone[] IS NOT NULL
            $s$))
            """,
            """
            SELECT godwit.enqueue_batched('batched', '\(schema).items', 'id',
                $s$UPDATE \(schema).items SET n = n + 1 WHERE id BETWEEN $1 AND $2
                    AND '{1}'::\(schema).checked_batch[] IS NOT NULL AND \(schema).observe('batch')$s$,
                batch_size => 10, min_batch_size => 10, max_batch_size => 10, max_attempts => 1,
                health_query => $h$SELECT \(schema).observe('health query')$h$)
            """,
        ]
    }

    enum WorkerKind: String, CaseIterable, Sendable {
        case superuser, plainRole
    }

    @Test(arguments: WorkerKind.allCases)
    func neitherEnqueuerSeesMoreThanItsOwnRights(_ kind: WorkerKind) async throws {
        try await withRoles(["a", "b", "w"]) { roles in
            let (a, b, w) = (roles[0], roles[1], roles[2])
            try await withTestDatabase { db in
                let admin = try await db.connect()
                defer { Task { await admin.close() } }
                try await admin.execute(
                    """
                    CREATE TABLE public.observations (who text, point text, session_user_name text, current_user_name text,
                        reads_other_secret boolean, can_be_worker boolean, superuser boolean);
                    GRANT INSERT ON public.observations TO PUBLIC;
                    CREATE SCHEMA a_code AUTHORIZATION \(a.quoted);
                    CREATE SCHEMA b_code AUTHORIZATION \(b.quoted);
                    GRANT CREATE ON DATABASE \(quoteIdentifier(db.name)) TO \(w.quoted);
                    """)
                let workerURL = kind == .superuser ? db.url : try w.url(db)
                let workerRole = kind == .superuser ? "postgres" : w.name
                // The worker installs the queue, and owns it.
                let installed = try await drainWorker(try TestPasswordFile.url(workerURL))
                #expect(installed.status == 0, "\(installed.stderr.suffix(1500))")
                let owner = try await Connection.connect(workerURL)
                for role in [a, b] { try await owner.query("SELECT godwit.grant_enqueue($1::regrole)", [role.name]) }
                await owner.close()
                let connA = try await a.connect(db)
                let connB = try await b.connect(db)
                try await connA.execute("CREATE TABLE a_code.secret (x text)")
                try await connB.execute("CREATE TABLE b_code.secret (x text)")
                let secretA = try await admin.query("SELECT 'a_code.secret'::regclass::oid::bigint AS o").first!.int64(
                    "o")
                let secretB = try await admin.query("SELECT 'b_code.secret'::regclass::oid::bigint AS o").first!.int64(
                    "o")
                try await connA.execute(Self.setup(a, schema: "a_code", other: secretB, worker: workerRole))
                try await connB.execute(Self.setup(b, schema: "b_code", other: secretA, worker: workerRole))
                try await admin.execute("TRUNCATE public.observations")
                for job in Self.jobs(schema: "a_code") { try await connA.query(job) }
                for job in Self.jobs(schema: "b_code") { try await connB.query(job) }
                await connA.close()
                await connB.close()
                let output = try await drainWorker(try TestPasswordFile.url(workerURL))
                #expect(output.status == 0, "\(output.stderr.suffix(2000))")
                let failed = try await admin.query(
                    "SELECT name || ': ' || coalesce(last_error, '') AS e FROM godwit.jobs WHERE state <> 'succeeded'"
                ).rows.map { try $0.string("e") }
                #expect(failed.isEmpty, "\(failed)")
                let rows = try await admin.query(
                    """
                    SELECT who, point, session_user_name, current_user_name, reads_other_secret, can_be_worker, superuser
                    FROM public.observations
                    """
                ).rows
                var seen: [String: Set<String>] = [:]
                for row in rows {
                    let who = try row.string("who")
                    let point = try row.string("point")
                    seen[who, default: []].insert(point)
                    #expect(try row.string("session_user_name") == who, "\(point): session_user")
                    #expect(try row.string("current_user_name") == who, "\(point): current_user")
                    #expect(!(try row.bool("reads_other_secret")), "\(who) at \(point) could read the other's secret")
                    #expect(!(try row.bool("can_be_worker")), "\(who) at \(point) could become the worker")
                    #expect(!(try row.bool("superuser")), "\(who) at \(point) was a superuser")
                }
                for role in [a, b] {
                    let missing = Self.points.subtracting(seen[role.name, default: []])
                    #expect(missing.isEmpty, "\(role.name): never observed at \(missing.sorted())")
                }
                // The sql job ran once: its script and its success committed together.
                let statements = try await admin.query(
                    "SELECT count(*) AS n FROM public.observations WHERE point = 'statement'"
                ).first!.int("n")
                #expect(statements == 2)
                for role in [a, b] { #expect(!(try await isSuperuser(role, admin))) }
            }
        }
    }
}
