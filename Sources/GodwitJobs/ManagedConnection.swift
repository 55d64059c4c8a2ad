import GodwitPostgres
import Logging

/// A connection that is opened on first use and again after it breaks (a server restart, a
/// terminated backend), for the worker's long-lived connections.
actor ManagedConnection {
    private let url: String
    private let purpose: String
    private let logger: Logger
    private var current: Connection?

    init(url: String, purpose: String, logger: Logger) {
        self.url = url
        self.purpose = purpose
        self.logger = logger
    }

    /// Runs `body` on the connection, opening it first if needed. When the connection turns
    /// out to be broken, it is dropped, so the next call opens a new one.
    func run<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let connection: Connection
        if let current, await current.isOpen {
            connection = current
        } else {
            connection = try await Connection.connect(url, applicationName: "godwit worker (\(purpose))")
            if current != nil { logger.notice("reconnected", metadata: ["connection": "\(purpose)"]) }
            current = connection
        }
        do {
            return try await body(connection)
        } catch let error as PostgresError where error.code == .connectionLost || error.sqlState?.hasPrefix("57P") == true {
            await connection.close()
            current = nil
            throw error
        }
    }

    func close() async {
        await current?.close()
        current = nil
    }
}
