import GodwitPostgres
import GodwitQueue

/// Runs one SQL script: one-off maintenance in the background, with the queue's retries.
/// Payload: `{"sql": "UPDATE ..."}`.
///
/// The script runs in a session logged in as the role that enqueued the job (see
/// `EnqueuerSessions`), in one transaction that also records the job's success
/// (`<schema>.job_succeeded`): the script and its success commit together or not at all, so a
/// crash at any moment can neither lose the success of a committed script nor run it twice. The
/// script may not end that transaction (`COMMIT`, `ROLLBACK`, ...). A lone `VACUUM`, `ANALYZE`,
/// `CREATE INDEX CONCURRENTLY` and the like, which cannot run in a transaction, runs by itself
/// at the top level instead, and is at-least-once: a crash after it and before its success is
/// recorded runs it again.
public struct SQLJob: JobHandler {
    public let kind = JobKind.sql
    public let schema: QueueSchema

    public init(schema: QueueSchema = QueueSchema()) {
        self.schema = schema
    }

    struct Payload: Decodable {
        var sql: String
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        let statements = SQLSplitter.split(payload.sql).map(\.text)
        guard !statements.isEmpty else {
            throw InvalidPayload("job \(context.job.id): the sql payload holds no statement")
        }
        func described(_ statement: String) -> String {
            JobScript.leadingWords(statement, count: 3).joined(separator: " ")
        }
        if statements.count == 1, JobScript.mustRunAtTopLevel(statements[0]) {
            let affected = try await context.withSession { connection in
                try await connection.query(statements[0]).affectedRows ?? 0
            }
            return Self.result(statements: 1, affected: affected)
        }
        if let topLevel = statements.first(where: JobScript.mustRunAtTopLevel) {
            throw InvalidPayload(
                "job \(context.job.id): \(described(topLevel)) cannot run inside a transaction; enqueue it as a job of its own"
            )
        }
        if let control = statements.first(where: JobScript.endsTransaction) {
            throw InvalidPayload(
                "job \(context.job.id): the script may not end its transaction (\(described(control))): it runs in one "
                    + "transaction, which records its success as it commits")
        }
        let result = try await context.withSession { connection in
            do {
                return try await connection.withTransaction { connection in
                    let results = try await connection.execute(payload.sql)
                    guard await connection.transactionStatus == .inTransaction else {
                        throw InvalidPayload("job \(context.job.id): the script ended its transaction")
                    }
                    let result = Self.result(statements: statements.count, affected: results.last?.affectedRows ?? 0)
                    try await connection.query(
                        "SELECT \(schema.qualified("job_succeeded"))($1, $2, $3::pg_catalog.jsonb)",
                        [context.job.id, context.job.leaseToken, result])
                    return result
                }
            } catch let error as PostgresError where error.sqlState == .leaseLost {
                throw JobInterruption.leaseLost
            }
        }
        context.successRecorded()
        return result
    }

    static func result(statements: Int, affected: Int) -> String {
        #"{"statements": \#(statements), "rows_affected": \#(affected)}"#
    }
}
