import GodwitPostgres
import GodwitQueue

/// Sleeps in small steps, checking for interruptions between them: for tests of pause,
/// cancel, leases and shutdown in tests that run a `Worker` in-process; the `godwit` executable
/// does not have this kind. Payload: `{"milliseconds": 500}`.
public struct SleepJob: JobHandler {
    public let kind = JobKind.sleep
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
                sqlState: .serializationFailure)
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

extension JobKind {
    /// The tests' `SleepJob`, which the `godwit` executable does not run.
    public static let sleep = JobKind("sleep")
}
