import ArgumentParser
import Foundation
import GodwitPostgres
import Logging

/// Where to connect, shared by every command that talks to the database.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: [.customShort("D"), .long],
        help: ArgumentHelp(
            "The database URL or conninfo string. Defaults to DATABASE_URL from the environment, then from ./.env.",
            valueName: "url"))
    var databaseURL: String?

    @Flag(help: "Do not read DATABASE_URL from a .env file in the working directory.")
    var noDotenv = false

    @Option(help: "Seconds to keep retrying the first connection while the server is unreachable.")
    var connectTimeout: Double = 10

    /// The connection string to use, or a one-line error saying where Godwit looked or why
    /// what it found is not a PostgreSQL connection string (`mysql://...`, a bare word), so
    /// that such a string fails at once instead of being retried as a database name.
    func resolvedURL() throws -> String {
        let url = try givenURL()
        PrintedSecrets.add(conninfo: url)
        try ConnectionString.validate(url)
        return url
    }

    private func givenURL() throws -> String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty { return url }
        if !noDotenv, let url = DotEnv.value(of: "DATABASE_URL", inFile: ".env") { return url }
        throw CLIError(
            "no database given: pass --database-url, or set DATABASE_URL in the environment or in ./.env")
    }

    func connect(logger: Logger) async throws -> Connection {
        let url = try resolvedURL()
        logger.debug("connecting", metadata: ["url": "\(ConnectionString.redacted(url))"])
        return try await Connection.connect(url, retryingFor: .milliseconds(Int(connectTimeout * 1000)))
    }

    /// A connection for the length of `body`, closed afterwards whether it returns or throws.
    @discardableResult
    func withConnection<T>(logger: Logger, _ body: (Connection) async throws -> T) async throws -> T {
        let url = try resolvedURL()
        logger.debug("connecting", metadata: ["url": "\(ConnectionString.redacted(url))"])
        return try await Connection.withConnection(url, retryingFor: .milliseconds(Int(connectTimeout * 1000)), body)
    }
}

/// Reads `KEY=value` lines from a `.env` file the way dotenv does: `#` comments, an optional
/// `export `, and single or double quotes around the value.
enum DotEnv {
    static func value(of key: String, inFile path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var found: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            guard line[..<equals].trimmingCharacters(in: .whitespaces) == key else { continue }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            } else if let hash = value.range(of: " #") {
                value = String(value[..<hash.lowerBound])
            }
            found = value
        }
        return found
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
