import ArgumentParser
import Foundation
import GodwitChanges
import GodwitMigrations
import GodwitPostgres
import Logging

extension Migrate {
    struct Lint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find migrations that would block a live database or break the running application.",
            discussion: """
                Lints the pending migrations of --source (those not in _sqlx_migrations), or the \
                FILEs given. With a database, the migrations RUN, in a scratch database beside it \
                that has its schema and no data, inside a transaction that is rolled back, and what \
                PostgreSQL does there decides: the locks taken, tables rewritten, constraints \
                validated, tables dropped. The target is only read.

                The migrations run as a role made for the lint, which owns the scratch database and \
                nothing else: not with the rights of the database URL's role. A migration that acts \
                outside the database (COPY ... PROGRAM, lo_import/lo_export, ALTER SYSTEM, dblink, \
                pg_terminate_backend) is a finding and is not run at all; a statement the role may \
                not run (CREATE ROLE, an untrusted extension) is judged by its text, with a note. \
                The URL's role needs CREATEDB and CREATEROLE (or to be a superuser), and the server \
                must let the lint's role log in with a password (pg_hba.conf).

                To lint an untrusted branch (a pull request), give a database URL whose role is not \
                a superuser (CREATEDB and CREATEROLE, on a server that holds nothing else of value), \
                or no database at all: then only the static rules run, on the text, and nothing is \
                executed.

                Accept a finding with a comment on the line (or lines) right above its statement, \
                naming the rule and why it is safe there:

                    -- godwit:allow non-concurrent-index media has 40 rows

                Exit status: 0 without findings, 1 with at least one (or on an error).

                Example: godwit migrate lint -D postgres://localhost/app --format json
                """)

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case text, json
        }

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        @Option(help: "Output format: text or json.")
        var format: Format = .text

        @Option(
            help: ArgumentHelp(
                "Write a batched job file (jobs/*.sql format) into this folder for each whole-table UPDATE found.",
                valueName: "dir"))
        var writeJobs: String?

        @Option(
            help: ArgumentHelp(
                "Write a change file (changes/*.sql format, for godwit change) into this folder for each rename-column, column-type-rewrite, drop-column and set-not-null found.",
                valueName: "dir"))
        var writeChanges: String?

        @Argument(help: "Migration files to lint instead of the pending migrations of --source.")
        var files: [String] = []

        func run() async throws {
            var failed = false
            try await withCLIErrors {
                let url = try connection.optionalURL()
                let logger = makeLogger(sourceOptions.logLevel)
                // The folder is read once, and its warnings (names it does not read) printed
                // once, with or without a database; FILEs named alone read no folder.
                let migrator = files.isEmpty ? try sourceOptions.migrator(logger: logger) : nil
                var linter = MigrationLinter(
                    source: migrator?.source ?? MigrationSource(migrations: [], directory: sourceOptions.source),
                    connectTimeout: .milliseconds(Int(connection.connectTimeout * 1000)), logger: logger)
                // The schemas sqlx.toml's create-schemas makes before migrating, made in the trace too.
                linter.createSchemas = migrator?.config.createSchemas ?? []
                var migrations = try files.map {
                    try MigrationLinter.migration(atPath: $0, relativeTo: Console.current.directory)
                }
                if let migrator {
                    if url != nil {
                        migrations = try await connection.withConnection(logger: logger) { conn in
                            // Pending in sqlx.toml's ledger (table-name), not always _sqlx_migrations.
                            try await migrator.pendingMigrations(on: conn)
                        }
                    } else {
                        migrations = migrator.source.upMigrations
                    }
                }
                let report = try await linter.lint(migrations, databaseURL: url)
                var written = try writeJobFiles(report)
                written += try await writeChangeFiles(report, databaseURL: url, logger: logger)
                switch format {
                case .json:
                    output(try jsonReport(report))
                case .text:
                    if url == nil { output("note: no database given: static rules only") }
                    for finding in report.findings { output(finding.text) }
                    for allowed in report.allowed {
                        output("allowed \(allowed.rule) at \(allowed.file):\(allowed.line): \(allowed.reason ?? "")")
                    }
                    for note in report.notes { output("note: \(note.text)") }
                    for unused in report.unusedAllows {
                        output(
                            "note: -- godwit:allow \(unused.rule) at \(unused.file):\(unused.line) accepts no finding")
                    }
                    for path in written { output("wrote \(path)") }
                    let count = report.findings.count
                    output(
                        "\(count == 0 ? "no" : String(count)) finding\(count == 1 ? "" : "s") in \(migrations.count) migration\(migrations.count == 1 ? "" : "s")"
                            + (report.allowed.isEmpty ? "" : " (\(report.allowed.count) allowed)"))
                }
                failed = !report.findings.isEmpty
            }
            if failed { throw ExitCode(1) }
        }

        /// One JSON object: `{"mode", "findings", "allowed", "notes"}`.
        private func jsonReport(_ report: LintReport) throws -> String {
            struct Output: Encodable {
                var mode: String
                var findings: [LintFinding]
                var allowed: [LintFinding]
                var notes: [LintReport.Note]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let mode = report.mode == .trace ? "trace" : "static"
            let data = try encoder.encode(
                Output(mode: mode, findings: report.findings, allowed: report.allowed, notes: report.notes))
            return String(decoding: data, as: UTF8.self)
        }

        /// The batched job files for the whole-table UPDATEs found (not those allowed), named as
        /// `--write-jobs` was given (relative to the working directory, when it is).
        private func writeJobFiles(_ report: LintReport) throws -> [String] {
            guard let writeJobs else { return [] }
            try FileManager.default.createDirectory(
                atPath: Console.current.opened(writeJobs), withIntermediateDirectories: true)
            var written: [String] = []
            for finding in report.findings {
                guard let text = BatchedJobFile.text(for: finding) else { continue }
                let path = (writeJobs as NSString).appendingPathComponent(BatchedJobFile.fileName(for: finding))
                guard FileManager.default.createFile(atPath: Console.current.opened(path), contents: Data(text.utf8))
                else {
                    throw CLIError("cannot write \(path)")
                }
                written.append(path)
            }
            return written
        }
    }
}

extension Migrate.Lint {
    /// The change files for the findings a `godwit change` replaces (not those allowed), each
    /// read back with `ChangeDefinition.parse` before it is written, and named after what it
    /// changes (`rename_media_title.sql`; `_2` and on when two findings would share a name). A
    /// rename's type is read from the target's catalog when a database was given; the file says
    /// when it could not be. Returns the paths, as `--write-changes` was given, each with what
    /// to edit before use.
    fileprivate func writeChangeFiles(
        _ report: LintReport, databaseURL: String?, logger: Logger
    ) async throws -> [String] {
        guard let writeChanges else { return [] }
        let findings = report.findings.filter { $0.columnChange != nil && $0.table != nil }
        var types: [Int: String] = [:]
        if let databaseURL, findings.contains(where: { if case .rename = $0.columnChange { true } else { false } }) {
            // The table as the migration names it resolves through the login's own search_path,
            // as the migration itself would: so this session keeps it, and names pg_catalog's
            // functions qualified.
            try await Connection.withConnection(
                databaseURL, retryingFor: .milliseconds(Int(connection.connectTimeout * 1000))
            ) { conn in
                for (index, finding) in findings.enumerated() {
                    guard case .rename(let column, _) = finding.columnChange, let table = finding.table else {
                        continue
                    }
                    types[index] = try await LintChangeFile.columnType(table: table, column: column, on: conn)
                }
            }
        }
        try FileManager.default.createDirectory(
            atPath: Console.current.opened(writeChanges), withIntermediateDirectories: true)
        var written: [String] = []
        var used: Set<String> = []
        for (index, finding) in findings.enumerated() {
            guard let base = LintChangeFile.name(for: finding) else { continue }
            var name = base
            var suffix = 2
            while !used.insert(name).inserted {
                name = "\(base)_\(suffix)"
                suffix += 1
            }
            guard let text = LintChangeFile.text(for: finding, name: name, columnType: types[index]) else { continue }
            let path = (writeChanges as NSString).appendingPathComponent("\(name).sql")
            do {
                _ = try ChangeDefinition.parse(text, file: path)
            } catch {
                throw CLIError("the change file for \(finding.file):\(finding.line) does not read back: \(error)")
            }
            guard FileManager.default.createFile(atPath: Console.current.opened(path), contents: Data(text.utf8))
            else {
                throw CLIError("cannot write \(path)")
            }
            if case .rename(let column, _) = finding.columnChange, types[index] == nil {
                written.append("\(path) (replace TYPE_OF_\(column) with the column's type)")
            } else {
                written.append(path)
            }
        }
        return written
    }
}

extension ConnectionOptions {
    /// The database to lint against, or nil when none is given anywhere (lint then runs its
    /// static rules only). Looked for as every command does: the option, `DATABASE_URL`, `./.env`.
    fileprivate func optionalURL() throws -> String? {
        let environment = Console.current.environment["DATABASE_URL"]
        let given =
            databaseURL.flatMap { $0.isEmpty ? nil : $0 } ?? environment.flatMap { $0.isEmpty ? nil : $0 }
            ?? (noDotenv ? nil : DotEnv.value(of: "DATABASE_URL", inFile: Console.current.opened(".env")))
        guard given != nil else { return nil }
        return try resolvedURL()
    }
}
