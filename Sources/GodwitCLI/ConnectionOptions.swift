import ArgumentParser
import Foundation
import GodwitPostgres
import Logging

/// Where to connect, shared by every command that talks to the database.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: [.customShort("D"), .long],
        help: ArgumentHelp(
            "The database URL or conninfo string. Defaults to DATABASE_URL from the environment, then from ./.env. "
                + "Every local user can read a command line (/proc/PID/cmdline): for a URL with a password, "
                + "prefer DATABASE_URL, ./.env or --database-url-file.",
            valueName: "url"))
    var databaseURL: String?

    @Option(
        help: ArgumentHelp(
            "Read the database URL or conninfo string from this file (not readable or writable by group or others).",
            valueName: "file"))
    var databaseURLFile: String?

    @Flag(help: "Do not read DATABASE_URL from a .env file in the working directory.")
    var noDotenv = false

    @Option(help: "Seconds to keep retrying the first connection while the server is unreachable.")
    var connectTimeout: Double = 10

    /// The connection string to use, or a one-line error saying where Godwit looked or why
    /// what it found is not a PostgreSQL connection string (`mysql://...`, a bare word), so
    /// that such a string fails at once instead of being retried as a database name.
    func resolvedURL() throws -> String {
        let (url, origin) = try givenURL()
        PrintedSecrets.add(conninfo: url)
        do {
            try ConnectionString.validate(url)
        } catch let error as PostgresError {
            // The same string is refused wherever it came from; the line says where to fix it.
            guard let origin else { throw error }
            var named = error
            named.message = "\(origin): \(error.message)"
            throw named
        }
        return url
    }

    func validate() throws {
        if databaseURL != nil && databaseURLFile != nil {
            throw ValidationError("--database-url and --database-url-file exclude each other")
        }
    }

    /// The connection string, and where it came from when that is a file the user may not
    /// think of (`./.env`), for the error that refuses it.
    private func givenURL() throws -> (url: String, origin: String?) {
        if let databaseURL, !databaseURL.isEmpty { return (databaseURL, nil) }
        if let databaseURLFile { return (try SecretFile.read(databaseURLFile, option: "--database-url-file"), nil) }
        if let url = Console.current.environment["DATABASE_URL"], !url.isEmpty { return (url, nil) }
        if !noDotenv, let url = DotEnv.value(of: "DATABASE_URL", inFile: Console.current.opened(".env")) {
            return (url, "DATABASE_URL in ./.env")
        }
        throw CLIError(
            "no database given: pass --database-url, or set DATABASE_URL in the environment or in ./.env")
    }

    /// A connection for the length of `body`, closed afterwards whether it returns or throws.
    @discardableResult
    func withConnection<T>(logger: Logger, _ body: (Connection) async throws -> T) async throws -> T {
        let url = try resolvedURL()
        logger.debug("connecting", metadata: ["url": "\(ConnectionString.redacted(url))"])
        return try await Connection.withConnection(url, retryingFor: .milliseconds(Int(connectTimeout * 1000)), body)
    }

    /// A connection for reading and controlling the queue, for the length of `body` and closed
    /// afterwards: `search_path` pinned to `pg_catalog, pg_temp` at login, so nothing planted in
    /// a schema the login searches stands in for a name or operator of Godwit's statements. Not
    /// for enqueueing, which records the caller's own search_path with a batched job.
    @discardableResult
    func withQueueConnection<T>(logger: Logger, _ body: (Connection) async throws -> T) async throws -> T {
        let url = try resolvedURL()
        logger.debug("connecting", metadata: ["url": "\(ConnectionString.redacted(url))"])
        var options = SessionOptions()
        options.pinnedSearchPath = SessionOptions.catalogSearchPath
        return try await Connection.withConnection(
            url, options: options, retryingFor: .milliseconds(Int(connectTimeout * 1000)), body)
    }
}

/// A file that holds a secret, such as a database URL with its password.
enum SecretFile {
    /// The file's text, less surrounding whitespace (the final line break). Refuses, in one
    /// line naming the file, one that group or others may read or write: a password in it is
    /// not the user's alone, or another user could point Godwit at a server of theirs. The
    /// mode is read from the open file, so the file checked is the file read. A relative
    /// `path` is opened in the console's working directory, and named as given.
    static func read(_ path: String, option: String) throws -> String {
        let descriptor = open(Console.current.opened(path), O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CLIError("\(option) \(path): cannot open it: \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw CLIError("\(option) \(path): cannot read it: \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            let octal = String(mode, radix: 8)
            throw CLIError(
                "\(option) \(path): group or others may read or write it (mode 0\(octal)), and it holds a password: "
                    + "chmod 600 \(path)")
        }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw CLIError("\(option) \(path): cannot read it: \(error.localizedDescription)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw CLIError("\(option) \(path): the file is empty") }
        return text
    }
}

/// Reads `KEY=value` lines from a `.env` file the way dotenv does: `#` comments, an optional
/// `export `, and single or double quotes around the value. `path` is opened as it is: the
/// caller resolves it against the console's working directory.
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

struct CLIError: GodwitError {
    var description: String
    var code: String { "command" }
    init(_ description: String) { self.description = description }
}
