import GodwitPostgres
import GodwitQueue

/// The batch statement, checked again and made ready to run, in the enqueuer's session.
///
/// Everything of a batched job that its enqueuer wrote runs in a session logged in as the
/// enqueuer (`EnqueuerSessions`): the checks, the parse, the bounds, every batch and the health
/// query. Whatever PostgreSQL runs of the enqueuer's there (a domain check at parse time, a
/// trigger deferred to COMMIT, an operator it planted), it runs as the enqueuer.
///
/// Before every attempt the worker checks the payload against the catalog
/// (`<schema>.batched_target`: table, unique NOT NULL key of a supported type) and parses the
/// statement without running it (`Connection.describe`: exactly one statement, exactly `$1` and
/// `$2`), under the search_path recorded at enqueue. Then it creates `pg_temp.godwit_batch(after,
/// size)` (`BatchFunction`), which finds the next batch's bounds in key order and runs the
/// statement over them, with the same search_path. Names in it come from the catalog, quoted by
/// the server; the statement travels as a literal.
struct BatchStatement {
    let relation: String
    /// The relation's oid, for the worker's own reads of the server's state: the worker may
    /// have no right to the enqueuer's schema, so it does not look the name up.
    let relationOID: Int64
    let keySQL: String
    let keyType: String
    /// A shard's upper bound (inclusive), as text.
    let upper: String?
    let healthQuery: String?

    /// Checks `payload` against the catalog, parses its statement, and creates the batch
    /// function in `session` (the enqueuer's), under the search_path recorded at enqueue.
    static func prepare(
        for payload: BatchedJob.Payload, job: ClaimedJob, schema: QueueSchema, on session: Connection
    ) async throws -> BatchStatement {
        func invalid(_ message: String) -> InvalidPayload {
            InvalidPayload("job \(job.id) (batched \"\(job.name)\"): \(message)")
        }
        let statements = SQLSplitter.split(payload.statement)
        guard statements.count == 1 else {
            throw invalid("the statement must be exactly one statement; it holds \(statements.count)")
        }
        // The enqueuer's search_path at enqueue, for the checks, the parse and the function
        // (FROM CURRENT).
        if let searchPath = payload.searchPath {
            try await session.query("SELECT pg_catalog.set_config('search_path', $1, false)", [searchPath])
        }
        let target: PostgresRow
        do {
            target = try await session.query(
                "SELECT relation, key_sql, key_type FROM \(schema.qualified("batched_target"))($1, $2)",
                [payload.table, payload.key]
            ).first!
        } catch let error as PostgresError where error.code == .server {
            throw invalid(error.message)
        }
        let relation = try target.string("relation")
        let keySQL = try target.string("key_sql")
        let keyType = try target.string("key_type")
        let relationOID = try await session.query(
            "SELECT $1::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int8 AS oid", [relation]
        ).first!.int64("oid")
        let described: PreparedStatementDescription
        do {
            described = try await session.describe(payload.statement)
        } catch let error as PostgresError where error.code == .server {
            throw invalid("the statement does not prepare: \(error.description)")
        }
        do {
            try await KeyCollation.check(
                statement: payload.statement, key: payload.key, relation: relation, on: session)
        } catch let mismatch as KeyCollation.Mismatch {
            throw invalid(mismatch.message)
        }
        guard described.parameterTypes.count == 2 else {
            throw invalid(
                "the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; "
                    + "it uses \(described.parameterTypes.count)")
        }
        let types = try await session.query(
            "SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL) AS a, pg_catalog.format_type($2::pg_catalog.oid, NULL) AS b",
            [Int64(described.parameterTypes[0]), Int64(described.parameterTypes[1])]
        ).first!
        let function = BatchFunction(
            schema: schema, relation: relation, relationOID: relationOID, keySQL: keySQL, keyType: keyType,
            firstType: try types.string("a"), lastType: try types.string("b"), upper: payload.upper,
            statement: payload.statement)
        try await session.execute(function.definition)
        return BatchStatement(
            relation: relation, relationOID: relationOID, keySQL: keySQL, keyType: keyType, upper: payload.upper,
            healthQuery: payload.healthQuery)
    }
}
