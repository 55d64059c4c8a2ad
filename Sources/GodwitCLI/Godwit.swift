import ArgumentParser
import Foundation
import GodwitPostgres
import Logging

/// The `godwit` command: every subcommand lives in this library, and the executable's `main`
/// only calls `Godwit.runAsMain()`, so that tests parse and run commands in-process.
public struct Godwit: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "godwit",
        abstract: "Change a live PostgreSQL database safely: sqlx-compatible schema migrations.",
        discussion: """
            Godwit reads the same migrations/ folder and writes the same _sqlx_migrations ledger as \
            sqlx, so a Rust service running sqlx::migrate! and Godwit agree on every byte.
            """,
        version: "0.1.0",
        subcommands: [
            Migrate.self, WorkerCommand.self, WorkersCommand.self, ServeCommand.self, JobCommand.self, BackupCommand.self,
        ]
    )

    /// swift-argument-parser's `main`, with every message scrubbed of the secrets in the
    /// arguments and `DATABASE_URL`: a usage error quotes the argument it could not place, and
    /// that may be a URL with a password (`godwit migrate info postgres://u:pw@host/db`).
    ///
    /// Usage errors exit 64 (`EX_USAGE`, as swift-argument-parser does); every other failure
    /// exits 1. Every path out goes through here, and leaves only once every database
    /// connection is closed and its thread joined (`Connection.finishAll()`): nothing calls
    /// `exit()` while a connection thread may still be ending.
    public static func runAsMain() async {
        // First of all: the process holds the password from its start (arguments, environment).
        CoreDumps.disableUnlessAllowed()
        // A logger a library makes for itself goes the way of makeLogger's: scrubbed, escaped, on stderr.
        LoggingSystem.bootstrap { ScrubbingLogHandler(inner: StreamLogHandler.standardError(label: $0)) }
        for argument in CommandLine.arguments.dropFirst() { PrintedSecrets.add(conninfo: argument) }
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"] { PrintedSecrets.add(conninfo: url) }
        do {
            var command = try await asyncParseAsRoot(HTTPOptions.withDefaultAddress(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let message = TerminalText.escaped(PrintedSecrets.scrub(fullMessage(for: error)), keepingNewlines: true)
            let code = exitCode(for: error)
            if !message.isEmpty {
                let stream = code.isSuccess ? FileHandle.standardOutput : FileHandle.standardError
                stream.write(Data((message + "\n").utf8))
            }
            await Connection.finishAll()
            Foundation.exit(code.rawValue)
        }
        await Connection.finishAll()
    }
}
