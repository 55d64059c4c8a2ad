import GodwitPostgres
import GodwitQueue
import Synchronization

/// One answer to "can this process do its work": the database reachable and the queue schema
/// at a version this build knows.
public struct HealthReading: Sendable, Equatable {
    public var healthy: Bool
    /// Why it is unhealthy, for a person; never holds a password or a connection string.
    public var reason: String?
    public var schemaVersion: Int?
    public var expectedSchemaVersion: Int
}

/// Probes the database for `/health`, with a bound and a short cache.
///
/// A reading is reused for `cacheDuration`, so an orchestrator probing often costs one query a
/// second. A probe runs on a connection of its own (not the worker's pool, which busy jobs may
/// hold), in a task of its own: the request waits at most `timeout` for it and then answers that
/// the database did not answer, while the probe goes on; the next request waits for that same
/// probe rather than starting another, so a hung server costs one connection, not one a request.
public final class HealthProbe: Sendable {
    private struct State {
        var reading: HealthReading?
        var readAt: ContinuousClock.Instant?
        var inFlight: Task<HealthReading, Never>?
    }

    private let databaseURL: String
    private let schema: QueueSchema
    private let timeout: Duration
    private let cacheDuration: Duration
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    public init(databaseURL: String, schema: QueueSchema, timeout: Duration, cacheDuration: Duration) {
        self.databaseURL = databaseURL
        self.schema = schema
        self.timeout = timeout
        self.cacheDuration = cacheDuration
    }

    /// The newest reading, probing when the cached one is too old; within `timeout`.
    public func check() async -> HealthReading {
        let now = clock.now
        let task: Task<HealthReading, Never> = state.withLock { state in
            if let reading = state.reading, let at = state.readAt, now - at < cacheDuration {
                return Task { reading }
            }
            if let inFlight = state.inFlight { return inFlight }
            let probe = Task { await self.probe() }
            state.inFlight = probe
            return probe
        }
        if let reading = await Self.value(of: task, within: timeout) { return reading }
        return HealthReading(
            healthy: false, reason: "the database did not answer within \(Int(timeout.milliseconds)) ms",
            schemaVersion: nil, expectedSchemaVersion: schema.latestVersion)
    }

    private func probe() async -> HealthReading {
        let reading = await read()
        state.withLock { state in
            state.reading = reading
            state.readAt = clock.now
            state.inFlight = nil
        }
        return reading
    }

    private func read() async -> HealthReading {
        let expected = schema.latestVersion
        var options = SessionOptions()
        options.applicationName = "godwit http (health)"
        options.connectTimeout = .seconds(5)
        options.pinnedSearchPath = SessionOptions.catalogSearchPath
        do {
            let connection = try await Connection.connect(databaseURL, options: options)
            defer { Task { await connection.close() } }
            let version = try await schema.installedVersion(on: connection)
            if version == 0 {
                return HealthReading(
                    healthy: false, reason: "the queue schema \(schema.name) is not installed", schemaVersion: 0,
                    expectedSchemaVersion: expected)
            }
            if version > expected {
                return HealthReading(
                    healthy: false,
                    reason: "the queue schema \(schema.name) is at version \(version), newer than this godwit knows (\(expected))",
                    schemaVersion: version, expectedSchemaVersion: expected)
            }
            return HealthReading(healthy: true, reason: nil, schemaVersion: version, expectedSchemaVersion: expected)
        } catch {
            // PostgresError's description carries no password: the project's errors redact it.
            return HealthReading(
                healthy: false, reason: "the database cannot be reached: \(error)", schemaVersion: nil,
                expectedSchemaVersion: expected)
        }
    }

    /// The task's value, or nil when it takes longer than `bound`; the task goes on either way.
    static func value<T: Sendable>(of task: Task<T, Never>, within bound: Duration) async -> T? {
        let once = ResumeOnce<T?>()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            Task { once.resume(await task.value) }
            Task {
                try? await Task.sleep(for: bound)
                once.resume(nil)
            }
        }
    }
}

/// A continuation resumed by whichever of two tasks comes first.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)
    func set(_ value: CheckedContinuation<T, Never>) { continuation.withLock { $0 = value } }
    func resume(_ value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
}
