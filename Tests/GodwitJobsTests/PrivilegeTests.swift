import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Who may do what with the queue: nothing for PUBLIC, and the three sets of rights that the
/// schema's owner grants with `grant_read`, `grant_enqueue` and `grant_control`.
@Suite("Queue privileges", .serialized)
struct PrivilegeTests {
    /// Every function in schema godwit, with a call of it on NULL arguments of its types.
    static func functionCalls(_ conn: Connection) async throws -> [(name: String, call: String)] {
        try await conn.query(
            """
            SELECT p.proname AS name, format('SELECT godwit.%I(%s)', p.proname,
                (SELECT coalesce(string_agg(format('NULL::%s', format_type(t, NULL)), ', ' ORDER BY i), '')
                 FROM unnest(p.proargtypes) WITH ORDINALITY u(t, i))) AS call
            FROM pg_proc p WHERE p.pronamespace = 'godwit'::regnamespace ORDER BY p.proname
            """
        ).rows.map { (try $0.string("name"), try $0.string("call")) }
    }

    /// Asserts that `sql` fails on `conn` with a message containing `message`.
    static func expectRefused(_ sql: String, on conn: Connection, _ message: String) async {
        let error = await #expect(throws: PostgresError.self, "\(sql)") { try await conn.query(sql) }
        #expect(error?.message.contains(message) == true, "\(sql): \(error?.message ?? "")")
    }

    @Test func nothingIsOpenToPublicAndEveryFunctionSetsItsSearchPath() async throws {
        try await withRoles(["nobody"]) { roles in
            let nobody = roles[0]
            try await withQueue { db, conn, _ in
                let functions = try await conn.query(
                    """
                    SELECT p.proname AS name, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may,
                        EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%') AS sets_path
                    FROM pg_proc p WHERE p.pronamespace = 'godwit'::regnamespace
                    """
                ).rows
                #expect(
                    Set(try functions.map { try $0.string("name") }).isSuperset(of: [
                        "enqueue", "enqueue_batched", "batched_target", "pause", "resume", "cancel", "retry",
                        "grant_read",
                        "grant_enqueue", "grant_control", "stamp_enqueued_by", "create_job_progress", "notify_jobs",
                    ]))
                for function in functions {
                    let name = try function.string("name")
                    #expect(!(try function.bool("public_may")), "PUBLIC may execute \(name)")
                    #expect(try function.bool("sets_path"), "\(name) does not set search_path")
                }
                let publicGrants = try await conn.query(
                    """
                    SELECT format('%s %s', c.oid::regclass, a.privilege_type) AS g
                    FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
                    WHERE c.relnamespace = 'godwit'::regnamespace AND a.grantee = 0
                    UNION ALL
                    SELECT format('schema %s', a.privilege_type)
                    FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                    WHERE n.nspname = 'godwit' AND a.grantee = 0
                    """
                ).rows.map { try $0.string("g") }
                #expect(publicGrants.isEmpty, "\(publicGrants)")
                // A role granted nothing can neither call nor read anything there.
                let calls = try await Self.functionCalls(conn)
                let relations = try await conn.query(
                    "SELECT format('SELECT * FROM %s', c.oid::regclass) AS q FROM pg_class c WHERE c.relnamespace = 'godwit'::regnamespace AND c.relkind IN ('r', 'v')"
                ).rows.map { try $0.string("q") }
                #expect(relations.count >= 6)
                let outsider = try await nobody.connect(db)
                for (_, call) in calls {
                    await Self.expectRefused(call, on: outsider, "permission denied for schema godwit")
                }
                for query in relations {
                    await Self.expectRefused(query, on: outsider, "permission denied for schema godwit")
                }
                await Self.expectRefused(
                    "INSERT INTO godwit.jobs (kind, name) VALUES ('noop', 'x')", on: outsider, "permission denied")
                await outsider.close()
                #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
            }
        }
    }

    @Test func readEnqueueAndControlEachGrantTheirOwnRightsAndNoOthers() async throws {
        try await withRoles(["reader", "enqueuer", "controller"]) { roles in
            let (reader, enqueuer, controller) = (roles[0], roles[1], roles[2])
            try await withQueue { db, admin, queue in
                try await admin.execute(
                    """
                    CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
                    INSERT INTO items (id) SELECT generate_series(1, 10);
                    ANALYZE items;
                    """)
                try await admin.query("SELECT godwit.grant_read($1::regrole)", [reader.name])
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [enqueuer.name])
                try await admin.query("SELECT godwit.grant_control($1::regrole)", [controller.name])
                let job = try await queue.enqueue(kind: .noop, name: "the worker's", on: admin)
                let calls = try await Self.functionCalls(admin)
                func expectNoOtherFunction(_ conn: Connection, except allowed: Set<String>) async {
                    for (name, call) in calls where !allowed.contains(name) {
                        await Self.expectRefused(call, on: conn, "permission denied for function \(name)")
                    }
                }
                let enqueueSQL = "SELECT godwit.enqueue('noop', 'mine')"
                let enqueueBatchedSQL =
                    "SELECT godwit.enqueue_batched('b', 'items', 'id', 'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2')"
                let insertSQL = "INSERT INTO godwit.jobs (kind, name) VALUES ('noop', 'inserted')"
                let writes = [
                    "UPDATE godwit.jobs SET state = 'cancelled'", "DELETE FROM godwit.jobs",
                    "INSERT INTO godwit.job_progress (job_id) VALUES (\(job))",
                    "UPDATE godwit.job_progress SET rows_done = 1",
                ]

                // Read: the progress view (and stale_after, which it calls), and nothing else.
                let read = try await reader.connect(db)
                #expect(
                    try await read.query("SELECT name FROM godwit.progress").rows.map { try $0.string("name") } == [
                        "the worker's"
                    ])
                #expect(try await read.query("SELECT stale FROM godwit.progress").first?.bool("stale") == false)
                _ = try await read.query("SELECT * FROM godwit.workers")
                _ = try await read.query("SELECT id, job_id, attempt, worker_id, error, at FROM godwit.job_errors")
                _ = try await read.query("SELECT reason FROM godwit.backups")
                await Self.expectRefused(
                    "SELECT error_detail FROM godwit.job_errors", on: read, "permission denied for table job_errors")
                await expectNoOtherFunction(read, except: ["stale_after"])
                await Self.expectRefused(insertSQL, on: read, "permission denied for table jobs")
                for write in writes { await Self.expectRefused(write, on: read, "permission denied") }
                await read.close()

                // Enqueue: both functions and a plain INSERT; no control, no other write.
                let enqueue = try await enqueuer.connect(db)
                _ = try await enqueue.query(enqueueSQL)
                _ = try await enqueue.query(enqueueBatchedSQL)
                try await enqueue.query(insertSQL)
                #expect(try await enqueue.query("SELECT count(*) AS n FROM godwit.progress").first?.int("n") == 4)
                await expectNoOtherFunction(
                    enqueue,
                    except: [
                        "enqueue", "enqueue_batched", "batched_target", "batched_target_of_table", "batch_fence",
                        "batch_checkpoint", "job_succeeded", "stale_after", "resume_batched_from",
                    ])
                // --resume-from: only from a job the caller may restart, to a job it just enqueued.
                await Self.expectRefused(
                    "SELECT godwit.resume_batched_from(1, \(job))", on: enqueue, "is a noop job, not a batched one")
                for write in writes { await Self.expectRefused(write, on: enqueue, "permission denied") }
                // The functions a job's session commits its work through act on the caller's own
                // running jobs only.
                await Self.expectRefused(
                    "SELECT godwit.batch_fence(\(job), 1)", on: enqueue, "is not a job of role \(enqueuer.name)")
                await Self.expectRefused(
                    "SELECT godwit.job_succeeded(\(job), 1, '{}')", on: enqueue, "the lease is no longer this session's"
                )
                await Self.expectRefused(
                    "SELECT godwit.batch_checkpoint(\(job), 1, 1, 1, '1', '2', 1, 1, 1, 0, 0, 0, 0, 0)", on: enqueue,
                    "the lease is no longer this session's")
                let theirs = try await enqueue.query("SELECT godwit.enqueue('noop', 'theirs') AS id").first!.int64("id")
                await enqueue.close()

                // Control: pause and cancel any job; resume and retry only the jobs of a role the
                // controller is a member of, since those make the job run again with its rights.
                let control = try await controller.connect(db)
                #expect(try await control.query("SELECT godwit.pause($1) AS c", [job]).first?.bool("c") == true)
                await Self.expectRefused(
                    "SELECT godwit.resume(\(job))", on: control, "resuming it needs membership in that role")
                #expect(try await control.query("SELECT godwit.cancel($1) AS c", [job]).first?.bool("c") == true)
                await Self.expectRefused(
                    "SELECT godwit.retry(\(job))", on: control, "retrying it needs membership in that role")
                #expect(try await state(of: job, admin) == "cancelled")
                await expectNoOtherFunction(control, except: ["pause", "resume", "cancel", "retry", "stale_after"])
                await Self.expectRefused(insertSQL, on: control, "permission denied for table jobs")
                for write in writes { await Self.expectRefused(write, on: control, "permission denied") }
                try await admin.execute("GRANT \(enqueuer.quoted) TO \(controller.quoted)")
                for function in ["pause", "resume", "cancel", "retry"] {
                    #expect(
                        try await control.query("SELECT godwit.\(function)($1) AS c", [theirs]).first?.bool("c")
                            == true, "\(function)")
                }
                #expect(try await state(of: theirs, admin) == "queued")
                await control.close()

                let stamped = try await admin.query(
                    "SELECT enqueued_by::text AS r, count(*) AS n FROM godwit.jobs GROUP BY 1 ORDER BY 1"
                )
                .rows.map { "\(try $0.string("r")):\(try $0.int("n"))" }
                #expect(Set(stamped) == ["postgres:1", "\(enqueuer.name):4"])
            }
        }
    }
}
