/// The notifications of the channels a session LISTENs on, one at a time as they arrive, as an
/// `AsyncSequence`: `for try await notification in connection.notifications() { ... }`.
///
/// While nothing arrives, the session is pinged (`SELECT 1`) every `idle` interval, so that a
/// connection that died quietly (a server gone, a network cut) ends the loop with its error
/// instead of waiting forever. Cancelling the task ends the wait with `CancellationError`.
public struct NotificationSequence: AsyncSequence, Sendable {
    public typealias Element = PostgresNotification

    let connection: Connection
    let idle: Duration

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(connection: connection, idle: idle) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: Connection
        let idle: Duration
        /// What one wait returned beyond the notification handed out.
        var arrived: [PostgresNotification] = []

        public mutating func next() async throws -> PostgresNotification? {
            while arrived.isEmpty {
                arrived = try await connection.notifications(timeout: idle)
                if arrived.isEmpty { try await connection.query("SELECT 1") }
            }
            return arrived.removeFirst()
        }
    }
}

extension Connection {
    /// The notifications of the channels this session LISTENs on (see `listen(_:)`), as they
    /// arrive; the session is pinged after each `idle` interval without one.
    public nonisolated func notifications(pingingAfter idle: Duration = .seconds(30)) -> NotificationSequence {
        NotificationSequence(connection: self, idle: idle)
    }
}
