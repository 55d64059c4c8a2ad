import Foundation
import GodwitPostgres
import Logging
import Synchronization

/// What a command writes to and reads from around it: its stdout and stderr, the environment
/// variables it looks at, its working directory, whether stdout is a terminal, whether it
/// answers SIGTERM and SIGINT, and the secrets it scrubs from all it prints (`PrintedSecrets`).
///
/// Every command writes through `Console.current`, which is the process's own streams,
/// environment and current directory unless `Godwit.run(_:environment:directory:)` runs a
/// command line with a console of its own that captures the output. It is task-local, so
/// that tests running commands in parallel in one process each see their own output,
/// environment, folder and secrets.
final class Console: Sendable {
    /// Writes text (whole lines, with their `\n`) to stdout.
    let writeOut: @Sendable (String) -> Void
    /// Writes text (whole lines, with their `\n`) to stderr.
    let writeErr: @Sendable (String) -> Void
    /// The environment variables the commands read (`DATABASE_URL`, `GODWIT_HTTP_TOKEN`,
    /// `GODWIT_ENQUEUER_LOGINS`). Client programs get it over the process's
    /// (`ClientProgram.environment`, with `GODWIT_PG_BIN` and `TMPDIR`); libpq reads the
    /// process's own (`PGPASSFILE`, `PGOPTIONS`): those are not this console's to change.
    let environment: [String: String]
    /// The folder every relative path a command is given or looks for is opened in (`.env`,
    /// `sqlx.toml`, `--config`, `--source`, `--dir`, `--backup-dir`, job, lint, backup and
    /// secret files). What the command prints names a path as it was given: relative stays
    /// relative. Never the process's to change (`chdir`), which commands running in parallel
    /// share.
    let directory: WorkingDirectory
    /// Whether stdout is a terminal (`job watch` then draws a bar that rewrites itself).
    let stdoutIsTerminal: Bool
    /// Whether `worker` and `serve` stop gracefully on SIGTERM and SIGINT. A command run
    /// in-process leaves the signals to the process it runs in.
    let handlesSignals: Bool
    /// The secrets of the connection strings this console's commands were given, longest first.
    let secrets = Mutex<[String]>([])

    init(
        environment: [String: String], directory: WorkingDirectory, stdoutIsTerminal: Bool, handlesSignals: Bool,
        writeOut: @escaping @Sendable (String) -> Void, writeErr: @escaping @Sendable (String) -> Void
    ) {
        self.environment = environment
        self.directory = directory
        self.stdoutIsTerminal = stdoutIsTerminal
        self.handlesSignals = handlesSignals
        self.writeOut = writeOut
        self.writeErr = writeErr
    }

    /// The process's stdout and stderr (each write unbuffered and whole), environment and
    /// current directory (as it was when first used: nothing in Godwit changes it).
    static let process = Console(
        environment: ProcessInfo.processInfo.environment, directory: .process,
        stdoutIsTerminal: isatty(STDOUT_FILENO) == 1, handlesSignals: true,
        writeOut: { FileHandle.standardOutput.write(Data($0.utf8)) },
        writeErr: { FileHandle.standardError.write(Data($0.utf8)) })

    /// The console of the command running in this task.
    @TaskLocal static var current: Console = .process

    /// Where the path `given` is opened: itself when absolute, else inside `directory`.
    /// Print `given`, not this.
    func opened(_ given: String) -> String { directory.resolve(given) }
}

/// What a command run in-process wrote, each stream kept apart, in the order written. It can
/// be read while the command runs (a worker's log so far) as well as after.
public final class CapturedOutput: Sendable {
    private let streams = Mutex<(stdout: String, stderr: String)>(("", ""))

    public init() {}

    func appendOut(_ text: String) { streams.withLock { $0.stdout += text } }
    func appendErr(_ text: String) { streams.withLock { $0.stderr += text } }

    /// What the command has written to stdout so far.
    public var stdout: String { streams.withLock { $0.stdout } }
    /// What the command has written to stderr so far.
    public var stderr: String { streams.withLock { $0.stderr } }
}

/// A console's stderr as a stream for swift-log's `StreamLogHandler`, so that log lines keep
/// its format wherever they go.
struct ConsoleErrorStream: TextOutputStream, Sendable {
    let console: Console

    mutating func write(_ string: String) { console.writeErr(string) }
}
