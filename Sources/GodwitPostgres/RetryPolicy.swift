/// Exponential backoff with full jitter, for retrying failed attempts.
///
/// Attempt n waits a random time in [base * 2^(n-1) / 2, base * 2^(n-1)], capped at `max`:
/// spread out, so that jobs failing together do not come back together.
public struct Backoff: Sendable {
    public var base: Duration
    public var max: Duration

    public init(base: Duration = .seconds(1), max: Duration = .seconds(300)) {
        self.base = base
        self.max = max
    }

    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = Swift.min(Swift.max(attempt - 1, 0), 30)
        let ceiling = Swift.min(base * (1 << exponent), max)
        return ceiling * (0.5 + 0.5 * random)
    }
}

/// When and how long to retry an operation against the database: the one place that decides
/// which failures are worth another try.
///
/// Only transient failures are retried (`PostgresError.isTransient`: a lost or refused
/// connection, a serialization failure, a deadlock, a lock timeout, a server shutting down).
/// Authentication failures, a missing database, a bad URL and every other error fail at once,
/// and cancelling the task ends the wait between tries.
public struct RetryPolicy: Sendable {
    public var backoff: Backoff
    /// Give up once this much time has passed since the first try (nil: no limit).
    public var deadline: Duration?
    /// Give up after this many tries (nil: no limit).
    public var maxAttempts: Int?

    public init(
        backoff: Backoff = Backoff(base: .milliseconds(100), max: .seconds(2)), deadline: Duration? = nil,
        maxAttempts: Int? = nil
    ) {
        self.backoff = backoff
        self.deadline = deadline
        self.maxAttempts = maxAttempts
    }

    /// For opening a connection: quick first retries, for up to `timeout`.
    public static func connecting(for timeout: Duration) -> RetryPolicy {
        RetryPolicy(backoff: Backoff(base: .milliseconds(100), max: .seconds(2)), deadline: timeout)
    }

    /// Whether `error` is worth another try under this policy.
    public static func isRetryable(_ error: any Error) -> Bool {
        (error as? PostgresError)?.isTransient == true
    }

    /// Runs `body`, retrying retryable failures. `onRetry` hears each failure that will be
    /// retried, with the delay before the next try.
    public func run<T>(
        onRetry: (any Error, Duration) -> Void = { _, _ in },
        _ body: () async throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch {
                let delay = backoff.delay(afterAttempt: attempt)
                guard Self.isRetryable(error), !Task.isCancelled,
                    maxAttempts.map({ attempt < $0 }) ?? true,
                    deadline.map({ clock.now + delay < start + $0 }) ?? true
                else { throw error }
                onRetry(error, delay)
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }
}
