import Foundation
import GodwitPostgres
import Logging

/// Runs jobs of one kind.
public protocol JobHandler: Sendable {
    /// The kind of job this handler serves.
    var kind: JobKind { get }

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
public struct InvalidPayload: GodwitError {
    public var message: String
    public var code: String { "invalidPayload" }
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a handler gets for one attempt of one job.
public struct JobContext: Sendable {
    public let job: ClaimedJob
    public let logger: Logger
    public let queue: JobQueue
    /// The worker's own connections, for the queue's bookkeeping (progress, holds, backups'
    /// records); never lent to the job's SQL, which runs through `withSession`.
    public let pool: ConnectionPool
    /// Sessions that log in as the job's enqueuer.
    public let sessions: EnqueuerSessions
    /// The database, for client programs (pg_dump) that connect by themselves.
    public let databaseURL: String
    let signals: JobSignals

    public init(
        job: ClaimedJob, logger: Logger, queue: JobQueue, pool: ConnectionPool, sessions: EnqueuerSessions,
        databaseURL: String, signals: JobSignals = JobSignals()
    ) {
        self.job = job
        self.logger = logger
        self.queue = queue
        self.pool = pool
        self.sessions = sessions
        self.databaseURL = databaseURL
        self.signals = signals
    }

    /// Says that the job's success was recorded in the job's own transaction (an sql job's
    /// `job_succeeded`), so the worker must not record it again.
    public func successRecorded() {
        signals.markRecorded(job)
    }

    /// Throws a `JobInterruption` when the job must stop here.
    public func checkpoint() throws {
        if let interruption = signals.interruption(for: job) { throw interruption }
    }

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
    public let kind = JobKind.noop
    public init() {}
    public func run(_ context: JobContext) async throws -> String? { nil }
}

extension JobContext {
    /// Lends a session logged in as the job's enqueuer (see `EnqueuerSessions`). It is reset
    /// (`DISCARD ALL`) when it goes back to its pool, whatever the job did to it.
    public func withSession<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        try await sessions.withSession(for: job, body)
    }
}
