import ArgumentParser
import Foundation
import GodwitBackups
import GodwitBatched
import GodwitQueue
import GodwitMigrations
import GodwitPostgres
import Logging

/// Runs a command body, turning the errors a person can act on into one `error: ...` line on
/// stderr and exit status 1, instead of a stack of Swift type names.
func withCLIErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as MigrationError {
        fail(error.description)
    } catch let error as PostgresError {
        fail(error.description)
    } catch let error as CLIError {
        fail(error.description)
    } catch let error as JobFailure {
        fail(error.description)
    } catch let error as BackupError {
        fail(error.description)
    } catch let error as ClientProgram.LaunchError {
        fail(error.description)
    } catch let error as CocoaError {
        fail(error.localizedDescription)
    }
}

func withCLIErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as MigrationError {
        fail(error.description)
    } catch let error as CLIError {
        fail(error.description)
    } catch let error as CocoaError {
        fail(error.localizedDescription)
    }
}

private func fail(_ message: String) -> Never {
    let line = message.replacingOccurrences(of: "\n", with: " ")
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
    Godwit.exit(withError: ExitCode(1))
}

/// A logger that writes to stderr, so that stdout carries only the command's output.
func makeLogger(_ level: Logger.Level, label: String = "godwit") -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = level
    return logger
}

/// Writes one line to stdout at once (unbuffered), so progress shows as it happens and
/// interleaves correctly with the log lines on stderr.
func output(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
