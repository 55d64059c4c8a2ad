import ArgumentParser
import Foundation
import GodwitChanges
import GodwitPostgres
import GodwitQueue

/// `godwit change status [NAME]`: every change as a table, or one change in full: what it
/// builds and where that stands in the catalog, the reader evidence for each column it drops,
/// and whether complete would pass, and if not, why.
struct ChangeStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show where zero-downtime column changes stand, and whether complete would pass.",
        discussion: """
            Without NAME, one line a change (in flight first): its table, phase, the backfill's \
            rows done of rows total, the rows whose two sides disagree (known once verification \
            ran), whether it is ready, and what blocks complete. With NAME, the change in full: \
            its indexes and constraints with their state in pg_index and pg_constraint, the \
            reader evidence per column it drops (when a statement naming it last ran, and the \
            application names seen running such statements), and why complete would refuse. \
            The same as SELECT * FROM godwit.changes. Given its file (a path ending in .sql) \
            instead of its name, status shows the change the file names, or that it is planned: \
            not started yet.

            Deploy the application version that reads the new columns once the change is ready: \
            before, rows the backfill has not reached have NULL in them.

            Exit status: 0, whatever the changes' phases (1 on an error, or for a NAME there is \
            no change of).

            Example: godwit change status rename_title --format json
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Argument(
        help: ArgumentHelp(
            "The change to show in full: its name (its -- name:, or its file's stem), or its file (a path ending in .sql), which shows as planned until it is started.",
            valueName: "name-or-file"))
    var name: String?

    /// A change file not started yet, as status shows it: the issue's keys, phase `planned`.
    struct PlannedChange: Encodable {
        var name: String
        var table: String
        var file: String
        var phase = ChangePhase.planned.rawValue
        var rowsDone = 0
        var rowsTotal: Int? = nil
        var disagreeingRows: Int? = nil
        var ready = false
        var blockedBy = ["the change has not started"]

        enum CodingKeys: String, CodingKey {
            case name, table, file, phase, ready
            case rowsDone = "rows_done"
            case rowsTotal = "rows_total"
            case disagreeingRows = "disagreeing_rows"
            case blockedBy = "blocked_by"
        }

        /// Every key written, `null` included, as for a started change.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(table, forKey: .table)
            try container.encode(file, forKey: .file)
            try container.encode(phase, forKey: .phase)
            try container.encode(rowsDone, forKey: .rowsDone)
            try container.encode(rowsTotal, forKey: .rowsTotal)
            try container.encode(disagreeingRows, forKey: .disagreeingRows)
            try container.encode(ready, forKey: .ready)
            try container.encode(blockedBy, forKey: .blockedBy)
        }
    }

    func run() async throws {
        try await withCLIErrors {
            let status = ChangeStatus(schema: QueueSchema(name: queueOptions.schema))
            // A file names its change; one not started yet is planned. Read before connecting,
            // so that a bad file is one line naming its line whatever the database.
            var planned: PlannedChange?
            var name = self.name
            if let file = name, file.hasSuffix(".sql") {
                guard let text = try? String(contentsOfFile: Console.current.opened(file), encoding: .utf8) else {
                    throw CLIError("\(file): cannot read the file")
                }
                let definition = try ChangeDefinition.parse(text, file: file)
                name = definition.name
                planned = PlannedChange(name: definition.name, table: definition.table, file: file)
            }
            let wanted = name
            try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                if let name = wanted {
                    guard let details = try await status.details(of: name, on: conn) else {
                        if let planned {
                            output(format == .json ? try jsonText(planned) : Self.plannedText(planned))
                            return
                        }
                        let installed = try await status.isInstalled(on: conn)
                        throw CLIError(
                            installed
                                ? "no change named \(name): `godwit change status` lists them"
                                : "no change named \(name): no change was ever started in this database (the schema \(quoteIdentifier(queueOptions.schema)) has no changes view)"
                        )
                    }
                    output(format == .json ? try jsonText(details) : Self.detailsText(details))
                } else {
                    let changes = try await status.list(on: conn)
                    output(format == .json ? try jsonText(changes) : Self.table(changes))
                }
            }
        }
    }

    /// A change file not started: its name, table and file, and how to start it.
    static func plannedText(_ change: PlannedChange) -> String {
        [
            "change:  " + cell(change.name), "table:   " + cell(change.table), "file:    " + cell(change.file),
            "phase:   planned (not started: godwit change plan shows its SQL, godwit change start starts it)",
        ].joined(separator: "\n")
    }

    /// One cell or value on the terminal: control characters escaped, newlines too, so that
    /// nothing read from the database draws on the terminal or forges a line.
    static func cell(_ text: String) -> String { TerminalText.escaped(text, keepingNewlines: false) }

    /// `500/1000 (50.0%)`, `500/?` before the backfill has counted its rows.
    static func progress(_ change: ChangeSummary) -> String {
        let total = change.rowsTotal.map(String.init) ?? "?"
        let percent = change.percent.map { String(format: " (%.1f%%)", $0) } ?? ""
        return "\(change.rowsDone)/\(total)\(percent)"
    }

    /// The text table: one line a change under a header, or a line saying there is none.
    static func table(_ changes: [ChangeSummary]) -> String {
        guard !changes.isEmpty else { return "no changes" }
        let header = ["NAME", "TABLE", "PHASE", "PROGRESS", "DISAGREEING", "READY", "BLOCKED BY"]
        let rows = changes.map { change in
            [
                change.name, change.table, change.phase, progress(change),
                change.disagreeingRows.map(String.init) ?? "-", change.ready ? "yes" : "no",
                change.blockedBy.joined(separator: "; "),
            ].map(cell)
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// One change in full, as labelled lines, then its objects, the reader evidence and what
    /// complete would say.
    static func detailsText(_ details: ChangeDetails) -> String {
        let change = details.summary
        var facts: [(String, String)] = [
            ("change", change.name), ("table", "\(change.table) (key \(change.keyColumn))"), ("file", change.file),
            ("phase", change.phase),
        ]
        var backfill = "\(progress(change)) rows"
        if let id = change.backfillJobID {
            backfill += ", job \(id)" + (change.backfillState.map { " \($0)" } ?? "")
        }
        facts.append(("backfill", backfill))
        let disagreeing = change.disagreeingRows.map { "\($0) disagree" } ?? "not run yet"
        facts.append(("verification", "\(change.verifiedRows) rows read, \(disagreeing)"))
        if let at = change.verifiedAt { facts.append(("verified", at)) }
        if let at = change.indexesBuiltAt { facts.append(("indexes built", at)) }
        if let at = change.validatedAt { facts.append(("validated", at)) }
        facts.append(("started", "\(change.startedAt) by \(change.startedBy)"))
        if let at = change.readyAt { facts.append(("ready", at)) }
        if let at = change.completedAt { facts.append(("completed", at)) }
        if let at = change.abortedAt { facts.append(("aborted", at)) }
        if let error = change.error { facts.append(("error", error)) }
        if let waiver = change.readerCheckWaiver { facts.append(("reader check waived", waiver)) }
        if let version = change.migrationVersion { facts.append(("migration", "\(version)")) }
        let width = facts.map { $0.0.count }.max() ?? 0
        var lines = facts.map { "\($0.0):".padding(toLength: width + 2, withPad: " ", startingAt: 0) + cell($0.1) }

        lines.append("")
        if let error = details.definitionError {
            lines.append("indexes and constraints: unknown, the stored file does not read back: \(cell(error))")
        } else if details.objects.isEmpty {
            lines.append("indexes and constraints: none")
        } else {
            lines.append("indexes and constraints:")
            let kindWidth = details.objects.map(\.kind.count).max() ?? 0
            for object in details.objects {
                let columns = object.columns.isEmpty ? "" : " (\(object.columns.joined(separator: ", ")))"
                lines.append(
                    "  " + object.kind.padding(toLength: kindWidth, withPad: " ", startingAt: 0) + "  "
                        + cell("\(object.name)\(columns): \(object.state)"))
            }
        }

        lines.append("")
        if details.readers.isEmpty {
            lines.append("reader evidence: none needed (the change drops no column)")
        } else {
            lines.append("reader evidence (statements naming each dropped column, from pg_stat_statements):")
            switch details.readerSampling {
            case false?:
                lines.append("  sampling unavailable: " + cell(details.readerSamplingUnavailable ?? "unknown reason"))
            case nil:
                lines.append("  not sampled yet: a worker samples pg_stat_statements while the change is in flight")
            case true?:
                break
            }
            for reader in details.readers {
                var text = "\(reader.column): "
                if let seen = reader.lastSeenAt {
                    text += "last seen \(seen)"
                } else if let since = reader.windowStartedAt {
                    text += "not seen since \(since)"
                } else {
                    text += "no sample yet"
                }
                if !reader.applicationNames.isEmpty {
                    text += "; application names: \(reader.applicationNames.joined(separator: ", "))"
                }
                lines.append("  " + cell(text))
            }
            lines.append("  SELECT * names no column: such readers are invisible here; the application names help.")
        }

        lines.append("")
        if change.ready {
            lines.append("complete: would pass")
        } else if change.blockedBy.isEmpty {
            lines.append("complete: would refuse: the change is \(cell(change.phase))")
        } else {
            lines.append("complete: would refuse:")
            for reason in change.blockedBy { lines.append("  - " + cell(reason)) }
        }
        return lines.joined(separator: "\n")
    }
}
