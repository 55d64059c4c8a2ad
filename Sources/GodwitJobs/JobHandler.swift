import Foundation
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
    /// The database, for handlers that need a connection of their own for the job.
    public let databaseURL: String
    let signals: JobSignals

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

/// Sleeps in small steps, checking for interruptions between them: for tests of pause,
/// cancel, leases and shutdown. Payload: `{"milliseconds": 500}`.
public struct SleepJob: JobHandler {
    public let kind = "sleep"
    public init() {}

    struct Payload: Decodable {
        var milliseconds: Int
        /// Fail this many first attempts with a transient error (to test retries).
        var failAttempts: Int?
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        if let failAttempts = payload.failAttempts, context.job.attempt <= failAttempts {
            throw PostgresError(
                code: .server, message: "simulated serialization failure on attempt \(context.job.attempt)",
                sqlState: "40001")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(payload.milliseconds)
        while clock.now < deadline {
            try context.checkpoint()
            try await Task.sleep(for: min(.milliseconds(20), deadline - clock.now))
        }
        try context.checkpoint()
        return #"{"slept_ms": \#(payload.milliseconds)}"#
    }
}

/// Runs one SQL script on a connection of its own: one-off maintenance in the background, with
/// the queue's retries. Payload: `{"sql": "VACUUM ANALYZE media"}`.
public struct SQLJob: JobHandler {
    public let kind = "sql"
    public init() {}

    struct Payload: Decodable {
        var sql: String
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        let connection = try await Connection.connect(context.databaseURL, applicationName: "godwit worker (sql)")
        defer { Task { await connection.close() } }
        let results = try await connection.execute(payload.sql)
        let affected = results.compactMap(\.affectedRows).reduce(0, +)
        return #"{"statements": \#(results.count), "rows_affected": \#(affected)}"#
    }
}
