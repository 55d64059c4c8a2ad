import Foundation
import GodwitPostgres

/// A login role made for one test: a name unique on the cluster and a random password.
///
/// Roles are cluster-wide, so every test makes its own, and `withRoles` drops them afterwards.
/// Other roles than `postgres` authenticate with a password over TCP, so their URLs carry it:
/// never put such a URL in a message.
public struct TestRole: Sendable {
    public let name: String
    public let password: String

    /// The role's name quoted for SQL.
    public var quoted: String { quoteIdentifier(name) }

    /// `database`'s URL with this role and its password.
    public func url(_ database: TestDatabase) throws -> String {
        guard var components = URLComponents(string: database.url) else {
            throw TestSetupError(message: "the test database's URL does not parse")
        }
        components.user = name
        components.password = password
        guard let url = components.string else { throw TestSetupError(message: "cannot build a URL for role \(name)") }
        return url
    }

    public func connect(_ database: TestDatabase) async throws -> Connection {
        try await Connection.connect(try url(database))
    }
}

/// Makes one login role per prefix (the prefix and a random number), with a line in
/// `TestPasswordFile` so that workers started by tests can log in as it, runs `body`, and drops the
/// roles, whether `body` throws or not. Run the test's database inside `body`, so that it is
/// gone (and with it everything the roles own or were granted there) before the roles are.
public func withRoles<T>(_ prefixes: [String], _ body: ([TestRole]) async throws -> T) async throws -> T {
    let admin = try await Connection.connect(try TestDatabase.serverURL)
    var roles: [TestRole] = []
    func dropAll() async {
        for role in roles { _ = try? await admin.execute("DROP ROLE IF EXISTS \(role.quoted)") }
        await admin.close()
    }
    do {
        for prefix in prefixes {
            let role = TestRole(name: "\(prefix)_\(UInt32.random(in: 0...UInt32.max))", password: UUID().uuidString)
            try await admin.execute("CREATE ROLE \(role.quoted) LOGIN PASSWORD \(quoteLiteral(role.password))")
            TestPasswordFile.add(role: role.name, password: role.password)
            roles.append(role)
        }
        let value = try await body(roles)
        await dropAll()
        return value
    } catch {
        await dropAll()
        throw error
    }
}
