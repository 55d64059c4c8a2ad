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
            Migrate.self, WorkerCommand.self, WorkersCommand.self, ServeCommand.self, JobCommand.self,
            BackupCommand.self, ChangeCommand.self, FleetCommand.self,
        ]
    )

    /// swift-argument-parser's `main` for the `godwit` executable: `run(arguments:)` on the
    /// process's streams and environment, then the exit.
    ///
    /// Usage errors exit 64 (`EX_USAGE`, as swift-argument-parser does); every other failure
    /// exits 1. Every path out goes through here, and leaves only once every database
    /// connection is closed and its thread joined (`Connection.finishAll()`): nothing calls
    /// `exit()` while a connection thread may still be ending.
    public static func runAsMain() async {
        // First of all: the process holds the password from its start (arguments, environment).
        CoreDumps.disableUnlessAllowed()
        // A logger a library makes for itself goes the way of makeLogger's: scrubbed, escaped, on stderr.
        LoggingSystem.bootstrap { makeLogHandler(label: $0) }
        let status = await run(arguments: Array(CommandLine.arguments.dropFirst()))
        await Connection.finishAll()
        if status != 0 { Foundation.exit(status) }
    }

    /// Parses and runs `arguments` (without the program's name) in this process, with the
    /// console given (`Console.current` by default), and returns the exit status: what
    /// `runAsMain()` does, but the exit.
    ///
    /// Every message is scrubbed of the secrets in the arguments and `DATABASE_URL`: a usage
    /// error quotes the argument it could not place, and that may be a URL with a password
    /// (`godwit migrate info postgres://u:pw@host/db`).
    static func run(arguments: [String]) async -> Int32 {
        for argument in arguments { PrintedSecrets.add(conninfo: argument) }
        if let url = Console.current.environment["DATABASE_URL"] { PrintedSecrets.add(conninfo: url) }
        do {
            var command = try await asyncParseAsRoot(HTTPOptions.withDefaultAddress(arguments))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            let message = TerminalText.escaped(PrintedSecrets.scrub(fullMessage(for: error)), keepingNewlines: true)
            let code = exitCode(for: error)
            if !message.isEmpty {
                if code.isSuccess {
                    Console.current.writeOut(message + "\n")
                } else {
                    Console.current.writeErr(message + "\n")
                }
            }
            return code.rawValue
        }
    }

    /// Parses and runs a command line in this process, as `godwit` would run it, and returns
    /// its exit status and what it wrote, without exiting: for tests.
    ///
    /// Its output is rendered as the executable's is (one-line errors, secrets scrubbed,
    /// control characters escaped); `environment` stands for the process's environment in
    /// what the commands read themselves (`DATABASE_URL`, `GODWIT_HTTP_TOKEN`,
    /// `GODWIT_ENQUEUER_LOGINS`) and in the client programs' environment (`pg_dump`,
    /// `pg_restore`, `psql`: the process's with `environment` over it, which is also where
    /// `GODWIT_PG_BIN` and `TMPDIR` are read for them); libpq, in this process, reads the
    /// process's own (`PGPASSFILE`, `PGOPTIONS`).
    /// `directory` stands for the working directory (the process's when nil; a relative one is
    /// inside the process's): every relative path the command opens is opened there, and
    /// printed as given, as the executable started in that folder would. `worker` and `serve`
    /// leave SIGTERM and SIGINT to the process: a worker run here ends by `--drain` or by
    /// cancelling the calling task. What it writes goes to `captured` as it is written, for a
    /// caller that reads it meanwhile.
    public static func run(
        _ arguments: [String], environment: [String: String] = [:], directory: String? = nil,
        capturingInto captured: CapturedOutput = CapturedOutput()
    ) async -> CommandOutcome {
        let console = Console(
            environment: environment, directory: directory.map(WorkingDirectory.init) ?? .process,
            stdoutIsTerminal: false, handlesSignals: false,
            writeOut: { captured.appendOut($0) }, writeErr: { captured.appendErr($0) })
        let programs = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let status = await Console.$current.withValue(console) {
            await ClientProgram.$environment.withValue(programs) { await run(arguments: arguments) }
        }
        return CommandOutcome(status: status, stdout: captured.stdout, stderr: captured.stderr)
    }
}

/// What a command line run in-process (`Godwit.run(_:environment:directory:)`) ended with.
public struct CommandOutcome: Sendable {
    /// The exit status `godwit` would have exited with: 0, 1, 2 (`job watch`'s cancelled job)
    /// or 64 (a usage error).
    public var status: Int32
    /// What the command wrote to stdout.
    public var stdout: String
    /// What the command wrote to stderr: errors, warnings, notes and log lines.
    public var stderr: String
}
