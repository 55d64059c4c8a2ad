import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// Runs a change's finish job (kind `change`, payload `{"change": NAME}`): once the backfill
/// has succeeded (`ChangeSupervisor` releases the job), it verifies every row, builds the
/// indexes and uniques, validates the constraints, and sets the phase `ready`.
///
/// Its SQL comes from the change's `statements`, generated at start from the starter's file:
/// the starter's code, so it runs in sessions that log in as the job's enqueuer (the starter;
/// a job enqueued by anyone else is refused), with `search_path` pinned to `pg_catalog`, the
/// table's schema and `pg_temp`, as the sync trigger's function has it, so the expressions
/// resolve as the trigger resolves them. The job's own bookkeeping (`change_records`) goes
/// through the worker's pool, each write fenced by the job's lease.
///
/// Every step records where it stands and is safe to run again after a crash at any point:
/// verification resumes from its cursor; an index found valid is kept, one left INVALID by a
/// build that died is dropped and built again; a unique already attached is not attached
/// again; validating a valid constraint does nothing. A failure is recorded in
/// `change_records.error` (one line) as well as on the job, and the change stays `verifying`.
public struct ChangeJob: JobHandler {
    public let kind = JobKind.change
    public var schema: QueueSchema
    /// The lock timeout and retries of `VALIDATE CONSTRAINT` and of attaching a unique index.
    public var lockPolicy: LockTimeoutPolicy
    /// Rows per verification chunk when the backfill names no batch size (a change with no
    /// backfill); otherwise the backfill's `batch-size`.
    public var defaultVerifyChunk: Int

    public init(
        schema: QueueSchema = .withChanges(), lockPolicy: LockTimeoutPolicy = .default, defaultVerifyChunk: Int = 1000
    ) {
        self.schema = schema
        self.lockPolicy = lockPolicy
        self.defaultVerifyChunk = max(1, defaultVerifyChunk)
    }

    struct Payload: Decodable {
        var change: String
    }

    public func run(_ context: JobContext) async throws -> String? {
        let name = try context.payload(as: Payload.self).change
        let record = try await context.pool.withConnection { try await Record.load(name, schema: schema, on: $0) }
        guard let record else {
            throw JobFailure(
                "change \(name) (job \(context.job.id)): no such change in \(schema.qualified("change_records"))")
        }
        try record.check(job: context.job)
        switch record.phase {
        case .verifying:
            break
        case .ready, .completing, .completed:
            // A rerun after the phase moved but before the job's success was recorded.
            return Self.result(name, record.phase)
        case .aborted:
            throw JobFailure("change \(name) was aborted: nothing to finish")
        case .planned, .expanding, .backfilling:
            throw JobFailure(
                "change \(name) is \(record.phase.rawValue): its finish job runs once the backfill has succeeded")
        }
        let run = Run(job: self, context: context, record: record)
        do {
            try await run.finish()
        } catch {
            throw await run.failed(error)
        }
        return Self.result(name, .ready)
    }

    static func result(_ name: String, _ phase: ChangePhase) -> String {
        let object: [String: String] = ["change": name, "phase": phase.rawValue]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

extension ChangeJob {
    /// A change's row as its finish job reads it.
    struct Record: Sendable {
        var name: String
        var phase: ChangePhase
        var startedBy: String
        var finishJob: Int64?
        var tableOID: String
        /// The table's schema, unquoted; nil when the table is gone.
        var tableSchema: String?
        var statements: ChangeStatements
        var verifiedRows: Int64
        var disagreeingRows: Int64
        var verifyCursor: String?
        var verified: Bool
        var indexesBuilt: Bool
        var validated: Bool
        /// The backfill's batch size, from its job's payload.
        var batchSize: Int?
        /// The key column's type (`format_type`); nil when the table or the column is gone.
        var keyType: String?
        /// The table's `relkind`: `r` for a table, `p` for a partitioned one; nil when it is gone.
        var relationKind: String?

        static func load(_ name: String, schema: QueueSchema, on connection: Connection) async throws -> Record? {
            guard
                let row = try await connection.query(
                    """
                    SELECT c.phase, c.started_by, c.finish_job_id, c.table_oid::text AS table_oid,
                           n.nspname AS table_schema, c.statements::text AS statements,
                           c.verified_rows, coalesce(c.disagreeing_rows, 0) AS disagreeing_rows, c.verify_cursor,
                           c.verified_at IS NOT NULL AS verified, c.indexes_built_at IS NOT NULL AS indexes_built,
                           c.validated_at IS NOT NULL AS validated,
                           (SELECT b.payload->>'batch_size' FROM \(schema.jobs) b WHERE b.id = c.backfill_job_id)
                               AS batch_size,
                           (SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a
                            WHERE a.attrelid = c.table_oid AND a.attname = c.key_column AND NOT a.attisdropped)
                               AS key_type,
                           t.relkind::text AS relkind
                    FROM \(schema.qualified("change_records")) c
                    LEFT JOIN pg_catalog.pg_class t ON t.oid = c.table_oid
                    LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
                    WHERE c.name = $1
                    """, [name]
                ).first
            else { return nil }
            let phaseText = try row.string("phase")
            guard let phase = ChangePhase(rawValue: phaseText) else {
                throw JobFailure("change \(name): unknown phase \(phaseText)")
            }
            let statements: ChangeStatements
            do {
                statements = try JSONDecoder().decode(
                    ChangeStatements.self, from: Data(try row.string("statements").utf8))
            } catch {
                throw JobFailure("change \(name): its recorded statements are malformed: \(error)")
            }
            return Record(
                name: name, phase: phase, startedBy: try row.string("started_by"),
                finishJob: row["finish_job_id"].flatMap { Int64($0) }, tableOID: try row.string("table_oid"),
                tableSchema: row["table_schema"], statements: statements, verifiedRows: try row.int64("verified_rows"),
                disagreeingRows: try row.int64("disagreeing_rows"), verifyCursor: row["verify_cursor"],
                verified: try row.bool("verified"), indexesBuilt: try row.bool("indexes_built"),
                validated: try row.bool("validated"), batchSize: row["batch_size"].flatMap { Int($0) },
                keyType: row["key_type"], relationKind: row["relkind"])
        }

        /// Refuses a job that is not this change's finish job, or that someone other than the
        /// change's starter enqueued: its SQL is the starter's, and runs only as the starter.
        func check(job: ClaimedJob) throws {
            guard finishJob == job.id else {
                throw JobFailure(
                    "change \(name): job \(job.id) is not its finish job (that is \(finishJob.map { "job \($0)" } ?? "none")); nothing was run"
                )
            }
            guard job.enqueuedBy == startedBy else {
                throw JobFailure(
                    "change \(name) was started by role \(startedBy), but its finish job \(job.id) was enqueued by \(job.enqueuedBy): it runs only as the starter"
                )
            }
        }
    }
}

extension ChangeJob {
    /// One attempt of a finish job: the steps not yet recorded as done, in order.
    struct Run: Sendable {
        let job: ChangeJob
        let context: JobContext
        let record: Record

        var name: String { record.name }
        var statements: ChangeStatements { record.statements }

        func finish() async throws {
            guard let tableSchema = record.tableSchema else {
                throw JobFailure(
                    "change \(name): its table \(statements.table) (oid \(record.tableOID)) no longer exists")
            }
            try await context.withSession { session in
                // As the sync trigger's function resolves names: the catalog, then the
                // table's schema; the session is reset when it goes back to its pool.
                try await session.query(
                    "SELECT pg_catalog.set_config('search_path', $1, false)",
                    ["pg_catalog, \(quoteIdentifier(tableSchema)), pg_temp"])
                if !record.verified {
                    try await verify(on: session)
                }
                if !record.indexesBuilt {
                    try await buildIndexes(on: session)
                }
                if !record.validated {
                    try await validateConstraints(on: session)
                }
            }
            try context.checkpoint()
            try await updateRecord("phase = 'ready', ready_at = now(), error = NULL")
            context.logger.notice("change \(name) is ready", metadata: ["change": "\(name)"])
        }

        /// Writes `assignments` into the change's row, fenced by the job's lease and the phase
        /// `verifying`, and `condition` when given. A lost lease throws
        /// `JobInterruption.leaseLost` (the worker then writes nothing more); a change that
        /// left `verifying` meanwhile (aborted) fails the job, naming its phase.
        func updateRecord(
            _ assignments: String, _ parameters: [any PostgresParameter] = [], condition: String? = nil
        ) async throws {
            let records = job.schema.qualified("change_records")
            let jobs = job.schema.jobs
            let base = parameters.count
            let sql = """
                UPDATE \(records) c SET \(assignments), updated_at = now()
                WHERE c.name = $\(base + 1) AND c.phase = 'verifying'\(condition.map { " AND (\($0))" } ?? "")
                  AND EXISTS (SELECT 1 FROM \(jobs) j
                              WHERE j.id = $\(base + 2) AND j.state = 'running' AND j.lease_token = $\(base + 3))
                """
            let arguments: [any PostgresParameter] = parameters + [name, context.job.id, context.job.leaseToken]
            let updated = try await context.pool.withConnection { connection in
                try await connection.query(sql, arguments).affectedRows ?? 0
            }
            if updated == 1 { return }
            let state = try await context.pool.withConnection { connection in
                try await connection.query(
                    """
                    SELECT (SELECT c.phase FROM \(records) c WHERE c.name = $1) AS phase,
                           EXISTS (SELECT 1 FROM \(jobs) j WHERE j.id = $2 AND j.state = 'running' AND j.lease_token = $3)
                               AS ours
                    """, [name, context.job.id, context.job.leaseToken]
                ).first
            }
            guard try state?.bool("ours") == true else { throw JobInterruption.leaseLost }
            let phase = state?["phase"] ?? "gone"
            if phase != ChangePhase.verifying.rawValue {
                throw JobFailure("change \(name) is \(phase) now: its finish job stopped")
            }
            throw JobFailure("change \(name): its record moved on under this job (another attempt ran at once)")
        }

        /// What a failure becomes: interruptions as they are; anything else one line naming
        /// the change, recorded in `change_records.error` too.
        func failed(_ error: any Error) async -> any Error {
            if error is JobInterruption || error is CancellationError || Task.isCancelled { return error }
            // A pause, cancel or shutdown that came while a statement failed wins, as the
            // worker decides for any job.
            do { try context.checkpoint() } catch { return error }
            let failure: JobFailure
            switch error {
            case let given as JobFailure:
                failure = given
            case let server as PostgresError:
                failure = JobFailure(
                    "change \(name): \(Self.oneLine(server.summary))", transient: server.isTransient,
                    detail: server.detail)
            default:
                failure = JobFailure("change \(name): \(Self.oneLine(String(describing: error)))")
            }
            let message = Self.oneLine(failure.message)
            let records = job.schema.qualified("change_records")
            do {
                try await context.pool.withConnection { connection in
                    try await connection.query(
                        "UPDATE \(records) SET error = $2, updated_at = now() WHERE name = $1 AND phase = 'verifying'",
                        [name, message])
                }
            } catch {
                context.logger.warning(
                    "could not record the change's error", metadata: ["change": "\(name)", "error": "\(error)"])
            }
            return failure
        }

        /// `text` on one line: line breaks and other control characters become spaces.
        static func oneLine(_ text: String) -> String {
            String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        }
    }
}
