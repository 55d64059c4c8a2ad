import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A fresh database with Godwit's schema, and one login role `low` that may only enqueue
/// (`grant_enqueue`), owns nothing, and has no CREATE on schema public.
func withEnqueuer(
    _ body: (_ db: TestDatabase, _ admin: Connection, _ low: TestRole) async throws -> Void
) async throws {
    try await withRoles(["low"]) { roles in
        let low = roles[0]
        try await withQueue { db, admin, _ in
            try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [low.name])
            // PostgreSQL 15's default, checked rather than assumed: only the database owner may
            // create in public.
            let canCreate = try await admin.query(
                "SELECT has_schema_privilege($1, 'public', 'CREATE') AS c", [low.name]
            ).first?.bool("c")
            #expect(canCreate == false)
            try await body(db, admin, low)
        }
    }
}

/// Enqueues an `sql` job through `godwit.enqueue` on `conn`, as whoever `conn` is.
func enqueueSQL(_ sql: String, name: String = "sql job", on conn: Connection) async throws -> Int64 {
    try await conn.query(
        "SELECT godwit.enqueue('sql', $1, jsonb_build_object('sql', $2::text)) AS id", [name, sql]
    ).first!.int64("id")
}

/// A `batched` payload as a hand-made INSERT would write it, with small batches.
func batchedPayload(
    table: String, key: String = "id", statement: String, searchPath: String? = nil, batchSize: Int = 100,
    pauseMs: Int = 0, maxAttempts: Int = 1, healthQuery: String? = nil
) -> String {
    var payload: [String: Any] = [
        "table": table, "key": key, "statement": statement, "batch_size": batchSize, "target_batch_ms": 200,
        "pause_ms": pauseMs, "min_batch_size": 1, "max_batch_size": 50_000, "lock_timeout_ms": 2000,
        "statement_timeout_ms": 10_000, "max_attempts": maxAttempts,
    ]
    if let searchPath { payload["search_path"] = searchPath }
    if let healthQuery { payload["health_query"] = healthQuery }
    let data = try! JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// Inserts a `batched` job by hand, as psql would, on `conn`.
func insertBatchedJob(_ payload: String, name: String = "hand-made", on conn: Connection) async throws -> Int64 {
    try await conn.query(
        "INSERT INTO godwit.jobs (kind, name, payload) VALUES ('batched', $1, $2::jsonb) RETURNING id", [name, payload]
    ).first!.int64("id")
}

/// A job's state and last error.
func outcome(of id: Int64, _ conn: Connection) async throws -> (state: String, error: String) {
    let row = try #require(
        try await conn.query(
            "SELECT state::text AS s, coalesce(last_error, '') AS e FROM godwit.jobs WHERE id = $1", [id]
        )
        .first)
    return (try row.string("s"), try row.string("e"))
}

/// Runs a worker (as the superuser `postgres`, in this process) until the queue is drained; it
/// logs in as each job's enqueuer with the test roles' password file (`TestPasswordFile.url`).
func drain(_ db: TestDatabase) async throws {
    let output = try await drainWorker(try TestPasswordFile.url(db.url))
    #expect(output.status == 0, "\(output.stderr.suffix(2000))")
}

/// Whether any relation of that name exists, in any schema.
func relationExists(_ name: String, _ conn: Connection) async throws -> Bool {
    try await conn.query("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1) AS e", [name]).first!.bool("e")
}

/// Whether `role` is a superuser now.
func isSuperuser(_ role: TestRole, _ conn: Connection) async throws -> Bool {
    try await conn.query("SELECT rolsuper FROM pg_roles WHERE rolname = $1", [role.name]).first!.bool("rolsuper")
}
