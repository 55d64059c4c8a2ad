import ArgumentParser
import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue

extension JobCommand {
    struct Enqueue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a batched data migration from a jobs/*.sql file and enqueue it.",
            discussion: """
                The definition is checked against the live database first (the table and key exist, \
                the key is unique, the statement prepares with $1 and $2), so mistakes surface now \
                rather than hours into a run. Prints the new job's id.

                Example: godwit job enqueue jobs/backfill_media_title.sql
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @Argument(help: "The job definition file.") var file: String
        @Option(help: "The job's name (default: the name directive, or the file name).") var name: String?
        @Option(
            help: ArgumentHelp(
                "Continue from this failed or cancelled batched job's checkpoint (the last key it committed), on the "
                    + "same table and key: for a corrected statement. Cancel a paused job first.",
                valueName: "id"))
        var resumeFrom: Int64?

        func run() async throws {
            try await withCLIErrors {
                guard let text = try? String(contentsOfFile: Console.current.opened(file), encoding: .utf8) else {
                    throw CLIError("\(file): cannot read the file")
                }
                var definition = try BatchedJobDefinition.parse(text, file: file)
                if let name { definition.name = name }
                let schema = QueueSchema.withJobs(name: queueOptions.schema)
                let id = try await connection.withConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                    try await installIfMissing(schema, on: conn)
                    return try await definition.enqueue(
                        file: file, schema: schema, resumingFrom: resumeFrom, on: conn, warn: printWarning)
                }
                output("\(id)")
            }
        }

        /// Installs (or upgrades) the queue schema only when it is missing (or older than this
        /// godwit), so that a role with no more than `grant_enqueue` can enqueue: installing runs
        /// `CREATE SCHEMA IF NOT EXISTS`, which PostgreSQL refuses without CREATE on the database
        /// even when the schema exists. When it is missing and this role may not create it, one
        /// line says who can.
        private func installIfMissing(_ schema: QueueSchema, on conn: Connection) async throws {
            guard !(try await schema.isCurrent(on: conn)) else { return }
            let installed = try await schema.installedVersion(on: conn)
            do {
                try await schema.install(on: conn)
            } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
                let role = try? await conn.query("SELECT current_user::text AS r").first?["r"]
                let who = role.map { "role \(quoteIdentifier($0))" } ?? "this role"
                let state =
                    installed == 0
                    ? "is not installed in this database"
                    : "is at version \(installed), older than this godwit's \(schema.latestVersion)"
                throw CLIError(
                    "the job queue's schema \(schema.quoted) \(state), and \(who) may not \(installed == 0 ? "create" : "upgrade") it: start `godwit worker` once against this database (it installs the schema), or run this as the database's owner; the server said: \(error.message)"
                )
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a job until it ends: a live progress bar on a terminal, plain lines when piped.",
            discussion: "Exits 0 when the job succeeds, 1 when it fails, 2 when it is cancelled.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @Argument(help: "The job's id.") var id: Int64
        @Option(help: "Seconds between plain progress lines when not on a terminal.") var interval: Double = 5

        func run() async throws {
            try await withCLIErrors {
                let schema = QueueSchema(name: queueOptions.schema)
                let terminal = Console.current.stdoutIsTerminal
                var lastLine = ContinuousClock.now - .seconds(3600)
                var lastText = ""
                // The connection is closed however the watch ends: at the job's end, or on an error.
                try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                    while true {
                        let found = try await queueOptions.explainingMissingSchema(on: conn) {
                            try await JobQueue(schema: schema).find(id, details: false, on: conn)
                        }
                        guard let reading = found else {
                            throw CLIError("no job \(id)")
                        }
                        let progress = WatchedProgress(reading)
                        if terminal {
                            // One line, cut to the terminal's width, so "\r" always rewrites all of it.
                            let bar = TerminalText.escaped(progress.bar(width: 30), keepingNewlines: false)
                            let line = String(bar.prefix(max(terminalColumns() - 1, 20)))
                            Console.current.writeOut("\r\u{1B}[K" + line)
                        } else if ContinuousClock.now - lastLine >= .milliseconds(Int(interval * 1000))
                            || progress.finished
                        {
                            let text = progress.line
                            if text != lastText { output(text) }
                            lastText = text
                            lastLine = ContinuousClock.now
                        }
                        if progress.finished {
                            if terminal { output("") }
                            if let error = progress.lastError, progress.state != .succeeded {
                                output("error: \(error)")
                            }
                            switch progress.state {
                            case .succeeded: return
                            case .cancelled: throw ExitCode(2)
                            default: throw ExitCode(1)
                            }
                        }
                        try await Task.sleep(for: .milliseconds(terminal ? 250 : 500))
                    }
                }
            }
        }
    }
}

/// A job as `job watch` draws it: a reading of the queue's one row for a job, with what comes
/// from the database (the name, the hold and size reasons, the stale marker) escaped for the
/// terminal, newlines too, as each shows on one line.
struct WatchedProgress {
    var job: JobRecord

    init(_ job: JobRecord) { self.job = job }

    var state: JobState { job.state }
    var finished: Bool { job.finished }
    var lastError: String? { job.lastError }

    private var name: String { Self.escaped(job.name) }
    private var hold: String? { job.holdReason.map(Self.escaped) }
    private var stale: String? { job.staleMarker.map(Self.escaped) }
    private var sizeReason: String? {
        job.sizeReason.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : Self.escaped($0) }
    }

    private static func escaped(_ text: String) -> String { TerminalText.escaped(text, keepingNewlines: false) }

    /// The numbers after the state. The governor's reason follows the batch size; with
    /// `reasonLast` (the bar, cut to the terminal's width) it comes last instead, so that a long
    /// reason is what the cut takes, not the ETA or a hold.
    private func details(reasonLast: Bool = false) -> String {
        var parts = [String(format: "%5.1f%%", job.percent)]
        if let rowsDone = job.rowsDone { parts.append("\(rowsDone)\(job.rowsTotal.map { "/\($0)" } ?? "") rows") }
        if let rate = job.rowsPerSecond, rate > 0 { parts.append("\(Int(rate)) rows/s") }
        let reason = state == .running && job.batchSize != nil ? sizeReason.map { "(\($0))" } : nil
        if let batchSize = job.batchSize, state == .running {
            parts.append("batch \(batchSize)" + (reasonLast ? "" : reason.map { " " + $0 } ?? ""))
        }
        if let eta = job.etaSeconds, state == .running { parts.append("ETA \(formatSeconds(eta))") }
        if let hold { parts.append("holding: \(hold)") }
        if let stale, state == .running { parts.append(stale) }
        if reasonLast, let reason { parts.append("size \(reason)") }
        return parts.joined(separator: "  ")
    }

    func bar(width: Int) -> String {
        let filled = Int((job.percent / 100 * Double(width)).rounded())
        let bar =
            String(repeating: "#", count: min(filled, width)) + String(repeating: ".", count: max(0, width - filled))
        return "[\(bar)] \(state.rawValue)  \(details(reasonLast: true))"
    }

    var line: String { "\(name): \(state.rawValue)  \(details())" }
}

func formatSeconds(_ seconds: Double) -> String {
    let total = Int(seconds.rounded())
    if total >= 3600 { return "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m" }
    if total >= 60 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
    return "\(total)s"
}

/// The terminal's width in columns (80 when it cannot be read).
func terminalColumns() -> Int {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
    return Int(size.ws_col)
}
