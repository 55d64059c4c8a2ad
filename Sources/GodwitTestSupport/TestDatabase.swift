import Foundation
import GodwitPostgres

/// A throwaway database on the test server, so that tests can run in parallel.
///
/// The server comes from `TEST_DATABASE_URL` (a superuser URL); `ops/test` starts a private
/// cluster and sets it. Each database is created from `template0` and dropped afterwards.
public struct TestDatabase: Sendable {
    /// URL of the server's maintenance database, as given in the environment.
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty else {
                throw TestSetupError(
                    message: "TEST_DATABASE_URL is not set: run the tests with ops/test, which starts PostgreSQL")
            }
            return url
        }
    }

    /// `host:port` of the test server, for tests that build connection strings of their own.
    public static var serverAddress: String {
        get throws {
            let components = URLComponents(string: try serverURL)
            return "\(components?.host ?? "127.0.0.1"):\(components?.port ?? 5432)"
        }
    }

    public let name: String
    /// URL of this database.
    public let url: String

    /// Creates a fresh, empty database.
    public static func create(prefix: String = "godwit_test") async throws -> TestDatabase {
        let server = try serverURL
        let name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))_\(ProcessInfo.processInfo.processIdentifier)"
        try await Connection.withConnection(server) { admin in
            try await admin.execute("CREATE DATABASE \(quoteIdentifier(name)) TEMPLATE template0")
        }
        return TestDatabase(name: name, url: try Self.url(server, database: name))
    }

    /// Drops the database, ending any session still connected to it.
    public func drop() async throws {
        let admin = try await Connection.connect(try Self.serverURL)
        try await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
        await admin.close()
    }

    public func connect() async throws -> Connection {
        try await Connection.connect(url)
    }

    /// `server` with its database replaced by `database`.
    public static func url(_ server: String, database: String) throws -> String {
        guard var components = URLComponents(string: server) else {
            throw TestSetupError(message: "TEST_DATABASE_URL must be a postgres:// URL")
        }
        components.path = "/" + database
        guard let url = components.string else {
            throw TestSetupError(message: "cannot build a URL for database \(database)")
        }
        return url
    }
}

/// Runs `body` with a fresh database and drops it afterwards, whether `body` throws or not.
public func withTestDatabase<T>(
    prefix: String = "godwit_test", _ body: (TestDatabase) async throws -> T
) async throws -> T {
    let database = try await TestDatabase.create(prefix: prefix)
    do {
        let value = try await body(database)
        try await database.drop()
        return value
    } catch {
        try? await database.drop()
        throw error
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
