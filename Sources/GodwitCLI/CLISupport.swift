import ArgumentParser
import Foundation
import GodwitBackups
import GodwitHTTP
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Logging
import Synchronization

/// Runs a command body, turning the errors a person can act on (every `GodwitError`, and
/// Foundation's file errors) into one `error: ...` line on stderr and exit status 1, instead of
/// a stack of Swift type names. The exit itself is `Godwit.runAsMain`'s, after every connection
/// is closed (`ExitCode(1)` is thrown to it).
func withCLIErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        try failIfActionable(error)
    }
}

/// `fail`s with the one line of an error a person can act on; rethrows any other.
private func failIfActionable(_ error: any Error) throws -> Never {
    switch error {
    case let error as any GodwitError: try fail(error.description)
    case let error as CocoaError: try fail(error.localizedDescription)
    default: throw error
    }
}

/// Prints `error: message` and throws `ExitCode(1)`, which `Godwit.runAsMain` turns into the exit,
/// in order (never `exit()` here: a connection's thread may still be ending).
private func fail(_ message: String) throws -> Never {
    printError(message.replacingOccurrences(of: "\n", with: " "))
    throw ExitCode(1)
}

/// Writes `error: message` to stderr, scrubbed of every secret this process was given, its
/// control characters escaped (an error may quote what the database holds).
func printError(_ message: String) {
    let text = TerminalText.escaped(PrintedSecrets.scrub(message), keepingNewlines: true)
    Console.current.writeErr("error: \(text)\n")
}

/// A logger that writes to stderr, so that stdout carries only the command's output. Every
/// line is scrubbed of the secrets this process was given.
func makeLogger(_ level: Logger.Level, label: String = "godwit") -> Logger {
    var logger = Logger(label: label, factory: makeLogHandler)
    logger.logLevel = level
    return logger
}

/// swift-log's stream handler on the stderr of the console current now (`Console.current`,
/// kept for the logger's life, wherever it is used later), behind `ScrubbingLogHandler`.
func makeLogHandler(label: String) -> any LogHandler {
    let console = Console.current
    return ScrubbingLogHandler(
        inner: StreamLogHandler(label: label, stream: ConsoleErrorStream(console: console)), console: console)
}

/// The secrets of every connection string the running command was given (its arguments,
/// `DATABASE_URL`, `./.env`), removed from everything Godwit prints: error lines, usage
/// errors and log lines. They are the current console's (`Console.secrets`), so that commands
/// run in parallel in one process (tests) neither share nor lose them.
///
/// `Connection` scrubs its errors of the password libpq parses; this also catches what libpq
/// cannot parse, and the pieces of a password that libpq splits off and echoes as a host name
/// or port (`postgres://u:p@ss@host` connects to host `ss@host`).
enum PrintedSecrets {
    static func add(conninfo: String, to console: Console = .current) {
        let found = ConnectionString.secrets(in: conninfo)
        guard !found.isEmpty else { return }
        console.secrets.withLock { known in
            known = Set(known + found).sorted { ($0.utf8.count, $0) > ($1.utf8.count, $1) }
        }
    }

    static func scrub(_ text: String, for console: Console = .current) -> String {
        let known = console.secrets.withLock { $0 }
        return known.isEmpty ? text : ConnectionString.scrub(text, secrets: known)
    }
}

/// Passes log events on to `inner` with their message, metadata and error scrubbed by
/// `PrintedSecrets`, and their control characters escaped (`TerminalText`, newlines included:
/// a job's name or error, read from the database, can neither drive the terminal nor forge a
/// log line). It keeps the logger's metadata itself, so that none reaches `inner` unscrubbed.
struct ScrubbingLogHandler: LogHandler {
    var inner: any LogHandler
    /// Whose secrets are scrubbed: the console the logger was made under.
    let console: Console
    var metadata: Logger.Metadata = [:]

    init(inner: any LogHandler, console: Console) {
        self.inner = inner
        self.console = console
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        var all = metadata.merging(event.metadata ?? [:]) { $1 }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
            event.error = nil
        }
        event.message = "\(cleaned(event.message.description))"
        event.metadata = all.isEmpty ? nil : all.mapValues(scrubbed)
        inner.log(event: event)
    }

    private func cleaned(_ text: String) -> String {
        TerminalText.escaped(PrintedSecrets.scrub(text, for: console), keepingNewlines: false)
    }

    private func scrubbed(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(cleaned(text))
        case .stringConvertible(let item): .string(cleaned(item.description))
        case .dictionary(let dictionary): .dictionary(dictionary.mapValues(scrubbed))
        case .array(let array): .array(array.map(scrubbed))
        }
    }
}

/// Writes one line to stdout at once (unbuffered), so progress shows as it happens and
/// interleaves correctly with the log lines on stderr.
///
/// Control characters are escaped (`TerminalText`): what is printed often comes from the
/// database (job names and errors, migration descriptions, backup files). JSON output keeps
/// its meaning: the escape is JSON's own.
func output(_ line: String) {
    Console.current.writeOut(TerminalText.escaped(line, keepingNewlines: true) + "\n")
}
