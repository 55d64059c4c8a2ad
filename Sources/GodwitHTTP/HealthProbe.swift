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
/// hold). A request waits at most `timeout` for it and then answers that the database did not
/// answer, while the probe goes on; the next request waits for that same probe rather than
/// starting another, so a hung server costs one connection, not one a request.
///
/// The probe is the one task that outlives a request (it is owned by the state, not by whoever
/// started it). A request's wait is structured: a task group of the wait for the probe's
/// reading and the bound's sleep, the loser cancelled, so nothing of a request outlives it.
public final class HealthProbe: Sendable {
    private struct State {
        var reading: HealthReading?
        var readAt: ContinuousClock.Instant?
        var probing = false
        /// The requests waiting for the probe in flight, by a number of their own.
        var waiters: [Int: CheckedContinuation<HealthReading?, Never>] = [:]
        var nextWaiter = 0
    }

    private let databaseURL: String
    private let schema: QueueSchema
    private let timeout: Duration
    private let cacheDuration: Duration
    private let connectTimeout: Duration
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    /// - Parameter connectTimeout: how long a probe waits to connect before it reads as
    ///   unreachable (a request gives up on it after `timeout` all the same).
    public init(
        databaseURL: String, schema: QueueSchema, timeout: Duration, cacheDuration: Duration,
        connectTimeout: Duration = .seconds(5)
    ) {
        self.databaseURL = databaseURL
        self.schema = schema
        self.timeout = timeout
        self.cacheDuration = cacheDuration
        self.connectTimeout = connectTimeout
    }

    /// The newest reading, probing when the cached one is too old; within `timeout`.
    public func check() async -> HealthReading {
        let now = clock.now
        let cached: HealthReading? = state.withLock { state in
            if let reading = state.reading, let at = state.readAt, now - at < cacheDuration { return reading }
            return nil
        }
        if let cached { return cached }
        let bound = timeout
        let reading = await withTaskGroup(of: HealthReading?.self) { group in
            group.addTask { await self.nextReading() }
            group.addTask {
                try? await Task.sleep(for: bound)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let reading { return reading }
        return HealthReading(
            healthy: false, reason: "the database did not answer within \(Int(timeout.milliseconds)) ms",
            schemaVersion: nil, expectedSchemaVersion: schema.latestVersion)
    }

    /// The reading of the probe in flight, starting one if none is; nil when the waiting task is
    /// cancelled first (the request's bound passed), which leaves the probe running.
    private func nextReading() async -> HealthReading? {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        enum Next { case cancelled, wait, probe }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Decided under the lock that `onCancel` takes: either it finds this waiter to
                // resume, or this sees the cancellation and never registers.
                let next: Next = state.withLock { state in
                    guard !Task.isCancelled else { return .cancelled }
                    state.waiters[id] = continuation
                    if state.probing { return .wait }
                    state.probing = true
                    return .probe
                }
                switch next {
                case .cancelled: continuation.resume(returning: nil)
                case .wait: break
                // Owned by the state until it records its reading; see the type's comment.
                case .probe: Task { await self.probe() }
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    private func probe() async {
        let reading = await read()
        let waiters = state.withLock { state in
            state.reading = reading
            state.readAt = clock.now
            state.probing = false
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: reading) }
    }

    private func read() async -> HealthReading {
        let expected = schema.latestVersion
        var options = SessionOptions()
        options.applicationName = "godwit http (health)"
        options.connectTimeout = connectTimeout
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
                    reason:
                        "the queue schema \(schema.name) is at version \(version), newer than this godwit knows (\(expected))",
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
}
