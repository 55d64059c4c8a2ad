import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// One test over every path into the queue that a low-privileged role has.
@Suite("A low-privileged role gains nothing through the queue", .serialized)
struct NoEscalationTests {
    /// Everything in the database that the role could not change by itself: objects with their
    /// owners and privileges (Godwit's schema included, its rows not), the role's attributes and
    /// memberships, and the application's rows. A relation's file changes when it is rewritten
    /// (VACUUM FULL, CLUSTER, TRUNCATE). One line each, sorted, so a difference shows what
    /// changed.
    static func snapshot(_ conn: Connection, _ role: TestRole) async throws -> [String] {
        try await conn.query(
            """
            WITH spaces AS (
                SELECT oid FROM pg_namespace
                WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%temp%'
                  AND nspname NOT LIKE 'pg\\_toast%'
            )
            SELECT line FROM (
                SELECT format('relation %s %s owner=%s acl=%s file=%s', c.relkind, c.oid::regclass, c.relowner::regrole, c.relacl,
                    c.relfilenode) AS line
                FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM spaces)
                UNION ALL
                SELECT format('function %s owner=%s acl=%s definer=%s config=%s', p.oid::regprocedure, p.proowner::regrole,
                    p.proacl, p.prosecdef, p.proconfig)
                FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM spaces)
                UNION ALL
                SELECT format('schema %s owner=%s acl=%s', n.nspname, n.nspowner::regrole, n.nspacl)
                FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM spaces)
                UNION ALL
                SELECT format('trigger %s on %s', t.tgname, t.tgrelid::regclass) FROM pg_trigger t
                WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM spaces))
                UNION ALL
                SELECT format('role super=%s createrole=%s createdb=%s bypassrls=%s', r.rolsuper, r.rolcreaterole,
                    r.rolcreatedb, r.rolbypassrls)
                FROM pg_roles r WHERE r.rolname = $1
                UNION ALL
                SELECT format('member %s of %s', m.member::regrole, m.roleid::regrole) FROM pg_auth_members m
                WHERE m.member = $1::regrole OR m.roleid = $1::regrole
                UNION ALL
                SELECT format('database acl=%s', d.datacl) FROM pg_database d WHERE d.datname = current_database()
                UNION ALL
                SELECT format('default acl %s', a.defaclacl) FROM pg_default_acl a
                UNION ALL
                SELECT format('items %s', md5(string_agg(i::text, ',' ORDER BY i.id))) FROM items i
                UNION ALL
                SELECT format('webhooks %s', md5(string_agg(w::text, ',' ORDER BY w.url))) FROM webhooks w
            ) s ORDER BY line
            """, [role.name]
        ).rows.map { try $0.string("line") }
    }

    @Test func sqlJobsBatchedJobsAndControlsLeaveEverythingAsTheRoleCouldLeaveIt() async throws {
        try await withEnqueuer { db, admin, low in
            try await admin.execute(
                """
                CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT generate_series(1, 300);
                ANALYZE items;
                CREATE TABLE webhooks (url text PRIMARY KEY) WITH (autovacuum_enabled = false);
                INSERT INTO webhooks VALUES ('https://example.com/hook');
                GRANT SELECT ON items TO \(low.quoted);
                """)
            try await admin.query("SELECT godwit.grant_control($1::regrole)", [low.name])
            // What a worker installs beyond the jobs' parts (the changes' records) is there
            // before, so that the comparison sees only what the jobs did.
            try await drain(db)
            let before = try await Self.snapshot(admin, low)
            // A job of the worker's own, for the controls to act on.
            let theirs = try await enqueueSQL("SELECT 1", name: "the worker's", on: admin)
            try await admin.query("SELECT godwit.pause($1)", [theirs])

            let conn = try await low.connect(db)
            var mine: [Int64] = []
            // sql jobs: every escape, and plain writes the role has no right to.
            for (label, sql) in EnqueuerRightsTests.sqlEscapes {
                mine.append(try await enqueueSQL(sql, name: label, on: conn))
            }
            for sql in [
                "UPDATE items SET n = n + 1", "DELETE FROM webhooks", "GRANT SELECT ON webhooks TO PUBLIC",
                "ALTER ROLE \(low.quoted) SUPERUSER", "CREATE SCHEMA mine", "VACUUM FULL webhooks",
            ] {
                mine.append(try await enqueueSQL(sql, name: sql, on: conn))
            }
            // Batched jobs through the SQL function: checked, enqueued, and run as the role.
            for statement in [
                "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2",
                "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2 AND set_config('role', 'postgres', false) IS NOT NULL",
                "WITH gone AS (DELETE FROM webhooks RETURNING 1) SELECT count(*) FROM gone WHERE $1::int <= $2::int",
            ] {
                mine.append(
                    try await conn.query(
                        "SELECT godwit.enqueue_batched('batched', 'items', 'id', $1, batch_size => 100) AS id",
                        [statement]
                    ).first!.int64("id"))
            }
            // Batched jobs inserted by hand, with payloads no check has seen.
            for payload in [
                batchedPayload(table: "items", statement: "DELETE FROM items WHERE id BETWEEN $1 AND $2"),
                batchedPayload(
                    table: "webhooks", key: "url", statement: "DELETE FROM webhooks WHERE url BETWEEN $1 AND $2"),
                batchedPayload(table: "items; DROP TABLE webhooks", statement: "SELECT $1::int, $2::int"),
                batchedPayload(
                    table: "items", key: "id) ; DROP TABLE webhooks; --", statement: "SELECT $1::int, $2::int"),
                batchedPayload(table: "items", statement: "SELECT $1::int, $2::int; DROP TABLE webhooks"),
                batchedPayload(
                    table: "items", statement: "UPDATE items SET n = 1 WHERE id BETWEEN $1 AND $2",
                    searchPath: "pg_temp, public"),
            ] {
                mine.append(try await insertBatchedJob(payload, on: conn))
            }
            try await drain(db)
            // Controls: the role retries its failed jobs (they fail again); of the worker's job
            // it may cancel it, which changes its state and nothing else, but not resume it,
            // which would make it run with the worker's rights.
            for id in mine {
                guard try await outcome(of: id, admin).state == "failed" else { continue }
                #expect(try await conn.query("SELECT godwit.retry($1) AS r", [id]).first?.bool("r") == true)
            }
            await #expect(throws: PostgresError.self) { try await conn.query("SELECT godwit.resume($1)", [theirs]) }
            #expect(try await conn.query("SELECT godwit.cancel($1) AS r", [theirs]).first?.bool("r") == true)
            await #expect(throws: PostgresError.self) { try await conn.query("SELECT godwit.retry($1)", [theirs]) }
            await conn.close()
            try await drain(db)

            // Each job failed, or succeeded having done nothing: PostgreSQL only warns when a
            // GRANT grants nothing or a VACUUM skips a table the role does not own.
            for id in mine {
                let (state, error) = try await outcome(of: id, admin)
                #expect(["failed", "succeeded"].contains(state), "job \(id): \(state) \(error)")
            }
            let job = try #require(
                try await admin.query(
                    "SELECT state::text AS s, kind, payload::text AS p, enqueued_by::text AS r FROM godwit.jobs WHERE id = $1",
                    [theirs]
                ).first)
            #expect(try job.string("s") == "cancelled")
            #expect(
                try [job.string("kind"), job.string("p"), job.string("r")] == [
                    "sql", #"{"sql": "SELECT 1"}"#, "postgres",
                ])
            let after = try await Self.snapshot(admin, low)
            #expect(after == before, "changed: \(Set(after).symmetricDifference(before).sorted())")
        }
    }
}
