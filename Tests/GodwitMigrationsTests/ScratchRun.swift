import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A `migrate lint` or `migrate verify` run in-process with `--log-level debug`, and the scratch
/// databases and roles it named in its log before creating them.
///
/// In-process, every run has this test process's id, which their scratch names carry
/// (`godwit_lint_<pid>_<random>`): a leftover is found by the exact name the run logged, not
/// by the pid, so that runs of other tests at the same time do not count, and a run that left
/// its own behind still fails.
struct ScratchRun {
    /// What the command printed, as at its default log level: the debug lines are taken out of stderr.
    var output: GodwitProcess.Output
    /// The scratch databases (and, for lint, roles of the same name) the run logged.
    var names: [String]

    /// Runs `arguments` (plus `--log-level debug`) as `GodwitCommand.run` does.
    static func run(
        _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil
    ) async throws -> ScratchRun {
        var output = try await GodwitCommand.run(
            arguments + ["--log-level", "debug"], environment: environment, directory: directory)
        var names: [String] = []
        var kept: [Substring] = []
        for line in output.stderr.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.contains(" debug godwit") || line.contains(" trace godwit") else {
                kept.append(line)
                continue
            }
            guard line.hasSuffix(" scratch database") || line.hasSuffix(" scratch database and role") else { continue }
            for word in line.split(separator: " ") where word.hasPrefix("name=godwit_") {
                names.append(String(word.dropFirst("name=".count)))
            }
        }
        output.stderr = kept.joined(separator: "\n")
        return ScratchRun(output: output, names: names)
    }

    /// How many of the logged databases and roles are still on the server; a failed
    /// expectation unless the run logged exactly `expected` names (so that no check is empty).
    func leftovers(expected: Int = 1) async throws -> Int {
        #expect(names.count == expected, "scratch names logged: \(names); stderr: \(output.stderr)")
        guard !names.isEmpty else { return 0 }
        let admin = try await Connection.connect(try TestDatabase.serverURL)
        let count = try await admin.query(
            """
            SELECT (SELECT count(*) FROM pg_database WHERE datname = ANY (string_to_array($1, ',')))
                 + (SELECT count(*) FROM pg_roles WHERE rolname = ANY (string_to_array($1, ','))) AS n
            """, [names.joined(separator: ",")]
        ).first?.int("n")
        await admin.close()
        return count ?? -1
    }
}
