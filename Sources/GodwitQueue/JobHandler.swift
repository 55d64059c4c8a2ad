import Foundation
import GodwitMigrations
import GodwitPostgres
import Logging

/// Runs jobs of one kind.
public protocol JobHandler: Sendable {
    /// The `kind` column value this handler serves.
    var kind: String { get }

    /// Runs one attempt. Returns the result JSON to store (or nil). Long work calls
    /// `context.checkpoint()` between steps, so that pause, cancel, shutdown and a lost lease
    /// take effect there.
    func run(_ context: JobContext) async throws -> String?
}

/// Why a job stopped at a checkpoint.
public enum JobInterruption: Error, Sendable, Equatable {
    case paused
    case cancelled
    /// The worker is shutting down; the job goes back to the queue.
    case shutdown
    /// Another worker rescued the job: this attempt must stop without writing.
    case leaseLost
}

/// A payload that is not what the job's kind expects. Fails the job at once: retrying
/// cannot fix it.
public struct InvalidPayload: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a handler gets for one attempt of one job.
public struct JobContext: Sendable {
    public let job: ClaimedJob
    public let logger: Logger
    public let queue: JobQueue
    /// The worker's connections; a job's own work goes through `withSession`.
    public let pool: ConnectionPool
    /// The database, for client programs (pg_dump) that connect by themselves.
    public let databaseURL: String
    let signals: JobSignals

    public init(
        job: ClaimedJob, logger: Logger, queue: JobQueue, pool: ConnectionPool, databaseURL: String,
        signals: JobSignals = JobSignals()
    ) {
        self.job = job
        self.logger = logger
        self.queue = queue
        self.pool = pool
        self.databaseURL = databaseURL
        self.signals = signals
    }

    /// Throws a `JobInterruption` when the job must stop here.
    public func checkpoint() throws {
        if let interruption = signals.interruption(for: job.id) { throw interruption }
    }

    /// The interruption pending for this job, if any, without throwing.
    public var pendingInterruption: JobInterruption? { signals.interruption(for: job.id) }

    /// Decodes the payload into `T`, or throws `InvalidPayload` naming the job.
    public func payload<T: Decodable>(as type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(job.payload.utf8))
        } catch {
            throw InvalidPayload("job \(job.id) (\(job.kind) \"\(job.name)\"): malformed payload: \(describe(error))")
        }
    }
}

/// A short description of a decoding error, naming the field.
func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _):
        return "missing field \"\(key.stringValue)\""
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return "wrong type at \"\(path)\""
    case DecodingError.dataCorrupted(let context):
        return context.debugDescription
    default:
        return String(describing: error)
    }
}

/// Jobs that do nothing: for benchmarks and smoke tests.
public struct NoopJob: JobHandler {
    public let kind = "noop"
    public init() {}
    public func run(_ context: JobContext) async throws -> String? { nil }
}

/// Runs one SQL script: one-off maintenance in the background, with the queue's retries.
/// Payload: `{"sql": "UPDATE ..."}`.
///
/// The script runs with the rights of the role that enqueued the job (see `EnqueuerRole`), in
/// one transaction. A lone `VACUUM`, `ANALYZE`, `CREATE INDEX CONCURRENTLY` and the like,
/// which cannot run in a transaction, runs by itself at the top level instead.
public struct SQLJob: JobHandler {
    public let kind = "sql"
    public init() {}

    struct Payload: Decodable {
        var sql: String
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        let statements = SQLSplitter.split(payload.sql).map(\.text)
        guard !statements.isEmpty else { throw InvalidPayload("job \(context.job.id): the sql payload holds no statement") }
        let affected = try await context.withSession { connection in
            if statements.count == 1, EnqueuerRole.mustRunAtTopLevel(statements[0]) {
                return try await connection.query(statements[0]).affectedRows ?? 0
            }
            if let topLevel = statements.first(where: EnqueuerRole.mustRunAtTopLevel) {
                throw InvalidPayload(
                    "job \(context.job.id): \(EnqueuerRole.leadingWords(topLevel, count: 3).joined(separator: " ")) "
                        + "cannot run inside a transaction; enqueue it as a job of its own")
            }
            try await EnqueuerRole.createScriptRunner(on: connection)
            return try await connection.query("SELECT pg_temp.godwit_run_sql($1) AS n", [payload.sql]).first?.int("n") ?? 0
        }
        return #"{"statements": \#(statements.count), "rows_affected": \#(affected)}"#
    }
}

extension JobContext {
    /// Lends a connection on which the job runs as the role that enqueued it. The session is
    /// reset (`DISCARD ALL`) when it goes back to the pool, whatever the job did to it.
    public func withSession<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        try await pool.withConnection(discardingState: true) { connection in
            try await EnqueuerRole.assume(for: job, on: connection)
            return try await body(connection)
        }
    }
}
