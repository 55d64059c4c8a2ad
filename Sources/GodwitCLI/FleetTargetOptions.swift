import ArgumentParser
import Foundation
import GodwitFleet
import GodwitPostgres
import Logging

/// `--targets FILE` or `--targets-query SQL`: a fleet's targets, for every fleet command (and
/// `worker --targets`).
struct FleetTargetOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The targets file: one target a line, NAME URL [schema=NAME], # for comments.", valueName: "file"))
    var targets: String?

    @Option(
        help: ArgumentHelp(
            "Read the targets from this query's rows (name, url[, schema]) on the control database (-D) instead.",
            valueName: "sql"))
    var targetsQuery: String?

    func validate() throws {
        if targets != nil && targetsQuery != nil {
            throw ValidationError("--targets and --targets-query exclude each other")
        }
    }

    /// The targets file's targets, or nil when the targets come from `--targets-query`. A
    /// relative path is opened in the console's working directory and named as given; every
    /// line that cannot be a target is refused with its line (`FleetTargets.parse`).
    func fileTargets() throws -> FleetTargets? {
        guard let targets else { return nil }
        let path = Console.current.opened(targets)
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason =
                FileManager.default.fileExists(atPath: path) ? "cannot read it" : "no such file"
            throw FleetError(.badTargets, file: targets, "\(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw FleetError(.badTargets, file: targets, "the targets file is not UTF-8 text")
        }
        return remembered(try FleetTargets.parse(text, file: targets))
    }

    /// The targets: the file's, or `--targets-query`'s rows, read on a session of the control
    /// database of their own (the login's `search_path`, as the person's SQL expects), closed
    /// at once. Refuses neither given.
    func load(control connection: ConnectionOptions, logger: Logger) async throws -> FleetTargets {
        if let fleet = try fileTargets() { return fleet }
        guard let targetsQuery else { throw CLIError("no targets given: pass --targets FILE or --targets-query SQL") }
        return remembered(
            try await connection.withConnection(logger: logger) { conn in
                try await FleetTargets.query(targetsQuery, on: conn)
            })
    }

    /// `fleet`, its connection strings' secrets scrubbed from all that the command prints.
    private func remembered(_ fleet: FleetTargets) -> FleetTargets {
        for target in fleet.targets { PrintedSecrets.add(conninfo: target.connection) }
        return fleet
    }
}
