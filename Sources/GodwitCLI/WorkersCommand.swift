import ArgumentParser
import Foundation
import GodwitPostgres
import GodwitQueue

/// `godwit workers`: the workers that have a row in `<schema>.workers`, live, stopped and stale.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the workers: running, stopped (an orderly exit) or stale (not seen lately, likely dead).",
        discussion: """
            Each worker writes its row in godwit.workers when it starts, with every heartbeat, and \
            when it exits in order. A worker not seen for godwit.stale_after() (15 s) is stale: it \
            died, was stopped, or lost the database; its running jobs are rescued when their lease \
            expires. Rows stopped or unseen for a day are deleted by the workers' housekeeping.
            """)
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() async throws {
        try await withCLIErrors {
            let workers = try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                try await queueOptions.explainingMissingSchema(on: conn) {
                    try await JobQueue(schema: QueueSchema(name: queueOptions.schema)).workers(on: conn)
                }
            }
            switch format {
            case .json:
                output(try jsonText(workers))
            case .text:
                output(Self.table(workers))
            }
        }
    }

    /// The text table: one line a worker under a header.
    static func table(_ workers: [WorkerRecord]) -> String {
        let header = ["ID", "LOGIN", "HOST", "PID", "VERSION", "STARTED", "LAST SEEN", "STATE", "JOBS"]
        let rows = workers.map { worker in
            [
                worker.id, worker.login, worker.host ?? "", worker.pid.map(String.init) ?? "", worker.version ?? "",
                shortTime(worker.startedAt), "\(formatSeconds(worker.unseenSeconds)) ago", worker.state,
                "\(worker.runningJobs)",
            ].map { TerminalText.escaped($0, keepingNewlines: false) }
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// `2026-12-06T17:36:38.123+00:00` as `2026-12-06 17:36:38`.
    private static func shortTime(_ iso: String) -> String {
        String(iso.prefix(19)).replacingOccurrences(of: "T", with: " ")
    }
}
