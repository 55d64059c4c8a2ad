import Foundation
import GodwitCLI

/// Runs a `godwit` command line in this process (`Godwit.run(_:environment:directory:)`), for
/// tests of what a command does and prints that need no process of its own: the same status,
/// stdout and stderr as `GodwitProcess.run`, without the spawn.
///
/// The command sees the environment given and nothing else of the test's (no `DATABASE_URL`
/// unless given), and opens relative paths (`./sqlx.toml`, `./.env`, `migrations`) in
/// `directory`, as `GodwitProcess.run(_:environment:directory:)` started there would.
public enum GodwitCommand {
    /// Runs `arguments` to completion. `environment` stands for the process's environment in
    /// what the commands read themselves (`DATABASE_URL`, `GODWIT_HTTP_TOKEN`,
    /// `GODWIT_ENQUEUER_LOGINS`); a nil value leaves a variable out, as for `GodwitProcess`.
    /// The client programs a command starts (`pg_dump`, `pg_restore`, `psql`) get it over the
    /// test process's environment, `GODWIT_PG_BIN` and `TMPDIR` included; libpq, in this
    /// process, reads the process's own (`PGPASSFILE`): a test that must change that spawns.
    /// `directory` is the working directory (the test process's when nil).
    public static func run(
        _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil
    ) async throws -> GodwitProcess.Output {
        let outcome = await Godwit.run(
            arguments, environment: environment.compactMapValues { $0 }, directory: directory)
        return GodwitProcess.Output(
            status: outcome.status, stdout: outcome.stdout, stderr: outcome.stderr,
            pid: ProcessInfo.processInfo.processIdentifier)
    }

    /// Starts `arguments` and returns at once, for a command the test acts on while it runs
    /// (a worker, `job watch`): see `RunningCommand`. `environment` and `directory` as for `run`.
    public static func start(
        _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil
    ) -> RunningCommand {
        RunningCommand(arguments: arguments, environment: environment.compactMapValues { $0 }, directory: directory)
    }
}
