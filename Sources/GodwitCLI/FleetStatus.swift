import ArgumentParser
import GodwitFleet
import GodwitPostgres
import Logging

extension FleetCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a fleet run's table (the latest by default); exit 0 only when every target succeeded.",
            discussion: """
                One line a target: its state, the versions the run applied, how long it waited for sqlx's \
                migration lock, how long it took, and its error. A run whose process died shows as \
                interrupted: godwit fleet resume RUN finishes it.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var schemaOptions: SchemaOptions

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .warning

        @Argument(help: ArgumentHelp("The run's id (default: the latest run).", valueName: "run"))
        var runID: Int64?

        func run() async throws {
            try await withCLIErrors {
                let records = FleetRecords(schema: schemaOptions.schema)
                try await connection.withQueueConnection(logger: makeLogger(logLevel)) { control in
                    let (found, targets) = try await FleetReport.read(runID, records: records, on: control)
                    FleetReport.print(found, targets)
                    if found.command == "enqueue" {
                        try await FleetBackfillReport.show(
                            found, targets, schema: schemaOptions.schema,
                            connectTimeout: .milliseconds(Int(connection.connectTimeout * 1000)))
                    } else {
                        try FleetReport.requireSuccess(found, targets)
                    }
                }
            }
        }
    }
}

/// How the fleet commands show a run: a header line, the table, the summary; and the one
/// error line that ends a run not every target of which succeeded.
enum FleetReport {
    /// Run `id` (the latest when nil) and its targets, the run marked interrupted when it is
    /// `running` and no process holds its lock. Refuses a run that does not exist.
    static func read(_ id: Int64?, records: FleetRecords, on control: Connection) async throws
        -> (FleetRun, [FleetTargetRecord])
    {
        let found =
            if let id {
                try await records.run(id, on: control)
            } else {
                try await records.latestRun(on: control)
            }
        guard var run = found else {
            throw FleetError(
                .notFound,
                id.map { "no fleet run \($0) in schema \(records.schema)" }
                    ?? "no fleet run in schema \(records.schema) yet: godwit fleet migrate starts one")
        }
        if run.state == .running {
            run.isInterrupted = !(try await records.isLive(run: run.id, on: control))
        }
        return (run, try await records.targets(run: run.id, on: control))
    }

    /// The header, the table and the summary, on stdout.
    static func print(_ run: FleetRun, _ targets: [FleetTargetRecord]) {
        var header =
            "run \(run.id): \(run.command) \(run.source ?? "") on \(run.targetsOrigin), \(run.shownState), started \(run.startedAt) UTC by \(run.startedBy)"
        if let finished = run.finishedAt { header += ", finished \(finished) UTC" }
        output(TerminalText.escaped(header, keepingNewlines: false))
        for line in FleetTable.lines(targets) { output(TerminalText.escaped(line, keepingNewlines: false)) }
        output(FleetTable.summary(targets) + (targets.contains(where: \.canary) ? " (* canary)" : ""))
    }

    /// Throws the run's error line unless every target succeeded: which did not, and what to
    /// do about it.
    static func requireSuccess(_ run: FleetRun, _ targets: [FleetTargetRecord]) throws {
        let unfinished = targets.filter { $0.state != .succeeded }
        if run.state == .running && !run.isInterrupted {
            throw FleetError(
                .wrongState,
                "run \(run.id) is still running: \(targets.count - unfinished.count) of \(targets.count) targets succeeded so far"
            )
        }
        guard !unfinished.isEmpty else { return }
        var byState: [String] = []
        for state in FleetTargetState.allCases where state != .succeeded {
            let names = unfinished.filter { $0.state == state }.map(\.name)
            guard !names.isEmpty else { continue }
            let shown = names.prefix(10).joined(separator: ", ") + (names.count > 10 ? ", ..." : "")
            byState.append("\(state.rawValue): \(shown)")
        }
        let why = run.isInterrupted ? " (interrupted: its process is gone)" : ""
        throw FleetError(
            .targetsFailed,
            "run \(run.id)\(why): \(unfinished.count) of \(targets.count) targets did not succeed (\(byState.joined(separator: "; "))); godwit fleet resume \(run.id) runs only those"
        )
    }
}
