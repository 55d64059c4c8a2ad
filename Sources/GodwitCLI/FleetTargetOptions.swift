import ArgumentParser
import Foundation
import GodwitFleet
import GodwitPostgres
import Logging

/// `--targets FILE` or `--targets-query SQL`: the fleet a command runs on, shared by the fleet
/// commands and `worker --targets`.
struct FleetTargetOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A targets file: one target a line, NAME URL [schema=NAME], # comments.", valueName: "file"))
    var targets: String?

    @Option(
        help: ArgumentHelp(
            "A query run (read only) on the control database (-D) whose rows are the targets: name, url[, schema].",
            valueName: "sql"))
    var targetsQuery: String?

    /// Whether either option was given.
    var given: Bool { targets != nil || targetsQuery != nil }

    func validate() throws {
        if targets != nil && targetsQuery != nil {
            throw ValidationError("give --targets or --targets-query, not both")
        }
    }

    /// The targets, read and checked (every bad line refused with its line) before anything
    /// runs. `--targets-query` runs on the control database of `connection`.
    func load(connection: ConnectionOptions, logger: Logger) async throws -> FleetTargets {
        if let targets {
            guard let text = try? String(contentsOfFile: Console.current.opened(targets), encoding: .utf8) else {
                throw CLIError("\(targets): cannot read the targets file")
            }
            let parsed = try FleetTargets.parse(text, file: targets)
            for target in parsed.targets { PrintedSecrets.add(conninfo: target.connection) }
            return parsed
        }
        guard let targetsQuery else { throw ValidationError("give --targets FILE or --targets-query SQL") }
        let parsed = try await connection.withConnection(logger: logger) { conn in
            try await FleetTargets.query(targetsQuery, on: conn)
        }
        for target in parsed.targets { PrintedSecrets.add(conninfo: target.connection) }
        return parsed
    }
}
