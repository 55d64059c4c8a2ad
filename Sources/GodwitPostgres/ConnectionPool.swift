import ServiceLifecycle
import Synchronization

/// A bounded set of connections to one database, lent out one at a time.
///
/// Every use is scoped: `withConnection` and `withTransaction` hand out a connection for the
/// length of a closure and take it back afterwards, whatever happened inside. On the way back a
/// transaction left open is rolled back and, when asked, the session is reset (`DISCARD ALL`:
/// role, settings, temporary objects, prepared statements, advisory locks); both are sent even
/// when the task was cancelled. A connection that broke, or that the server ended while it sat
/// idle (a restart), is closed and replaced before it would be lent.
///
/// The pool is a swift-service-lifecycle `Service`: run it in the same `ServiceGroup` as the
/// services that use it, before them in the list, so that it shuts down after them. Used
/// without a group, it works the same; call `close()` at the end.
public final class ConnectionPool: Service, Sendable {
    public struct Configuration: Sendable {
        public var conninfo: String
        public var options: SessionOptions
        /// At most this many connections are open at once; further leases wait.
        public var maximumConnections: Int
        /// How opening a connection for a lease retries while the server is unreachable.
        public var connectRetry: RetryPolicy
        /// Whether a connection given back stays open for the next lease; when false it is
        /// closed at once, so that the pool holds no connection it is not using (a pool of a
        /// fleet worker's, whose connections are counted against a budget).
        public var keepsIdleConnections: Bool

        public init(
            conninfo: String, options: SessionOptions = SessionOptions(), maximumConnections: Int = 4,
            connectRetry: RetryPolicy = .connecting(for: .seconds(10)), keepsIdleConnections: Bool = true
        ) {
            self.conninfo = conninfo
            self.options = options
            self.maximumConnections = max(1, maximumConnections)
            self.connectRetry = connectRetry
            self.keepsIdleConnections = keepsIdleConnections
        }
    }

    /// The pool was closed: it lends nothing more.
    public struct ClosedError: GodwitError {
        public init() {}
        public var code: String { "poolClosed" }
        public var description: String { "the connection pool is closed" }
    }

    private struct Waiter {
        var id: UInt64
        /// Resumed with a connection handed over directly, or nil when a slot freed up and the
        /// waiter should open a connection itself.
        var continuation: CheckedContinuation<Connection?, any Error>
    }

    private struct State {
        var idle: [Connection] = []
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    public let configuration: Configuration
    private let state = Mutex(State())

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Connections open now, lent out or idle.
    public var openConnections: Int { state.withLock { $0.open } }

    // MARK: Scoped use

    /// Lends a connection for the length of `body`.
    ///
    /// - Parameter discardingState: reset the session afterwards with `DISCARD ALL`, for work
    ///   that changes session state (a job's `SET ROLE`, temporary functions).
    @discardableResult
    public func withConnection<T: Sendable>(
        discardingState: Bool = false, isolation: isolated (any Actor)? = #isolation,
        _ body: (Connection) async throws -> T
    ) async throws -> T {
        let connection = try await lease()
        let value: T
        do {
            value = try await body(connection)
        } catch {
            await giveBack(connection, discardingState: discardingState)
            throw error
        }
        await giveBack(connection, discardingState: discardingState)
        return value
    }

    /// Runs `body` in a transaction on a lent connection: COMMIT when it returns, ROLLBACK when
    /// it throws or the task is cancelled.
    @discardableResult
    public func withTransaction<T: Sendable>(
        discardingState: Bool = false, isolation: isolated (any Actor)? = #isolation,
        _ body: (Connection) async throws -> T
    ) async throws -> T {
        try await withConnection(discardingState: discardingState) { connection in
            try await connection.withTransaction(body)
        }
    }

    // MARK: Service

    /// Keeps the pool open until graceful shutdown (or cancellation), then closes it.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes every idle connection and refuses further leases; connections lent out are
    /// closed when they come back.
    public func close() async {
        let (idle, waiters) = state.withLock { state -> ([Connection], [Waiter]) in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: ClosedError()) }
        for connection in idle { await connection.close() }
    }

    // MARK: Leasing

    private enum Next {
        case use(Connection)
        case open
        case wait
        case closed
    }

    private func lease() async throws -> Connection {
        while true {
            let next = state.withLock { state -> Next in
                if state.closed { return .closed }
                if let connection = state.idle.popLast() { return .use(connection) }
                if state.open < configuration.maximumConnections {
                    state.open += 1
                    return .open
                }
                return .wait
            }
            switch next {
            case .closed:
                throw ClosedError()
            case .use(let connection):
                // An idle connection the server has ended since (a restart) is replaced, not lent.
                if await connection.isUsable { return connection }
                await discard(connection)
            case .open:
                do {
                    return try await configuration.connectRetry.run {
                        try await Connection.connect(configuration.conninfo, options: configuration.options)
                    }
                } catch {
                    freeSlot()
                    throw error
                }
            case .wait:
                if let handed = try await waitForConnection() { return handed }
            }
        }
    }

    private func waitForConnection() async throws -> Connection? {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Connection?, any Error>) in
                let outcome = state.withLock { state -> Result<Connection?, any Error>? in
                    if state.closed { return .failure(ClosedError()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    // Something may have come back since the lease looked.
                    if let connection = state.idle.popLast() { return .success(connection) }
                    if state.open < configuration.maximumConnections { return .success(nil) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Takes a connection back: rolls back what was left open, resets the session when asked,
    /// and keeps it for the next lease, or closes it when it is broken.
    private func giveBack(_ connection: Connection, discardingState: Bool) async {
        guard configuration.keepsIdleConnections,
            await connection.prepareForReuse(discardingState: discardingState)
        else {
            await discard(connection)
            return
        }
        let (waiter, keep) = state.withLock { state -> (Waiter?, Bool) in
            if state.closed {
                state.open -= 1
                return (nil, false)
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), true) }
            state.idle.append(connection)
            return (nil, true)
        }
        if !keep {
            await connection.close()
        } else if let waiter {
            waiter.continuation.resume(returning: connection)
        }
    }

    private func discard(_ connection: Connection) async {
        await connection.close()
        freeSlot()
    }

    /// One connection fewer is open: a waiter, if any, may open one in its place.
    private func freeSlot() {
        let waiter = state.withLock { state -> Waiter? in
            state.open -= 1
            return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: nil)
    }
}
