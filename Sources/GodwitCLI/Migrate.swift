import ArgumentParser
import Foundation
import GodwitBackups
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, apply, revert and inspect sqlx-compatible migrations.",
        subcommands: [
            Add.self, Run.self, Revert.self, Info.self, Verify.self, Lint.self, Check.self, Baseline.self, Repair.self,
        ]
    )
}

/// Options every `migrate` subcommand shares.
struct SourceOptions: ParsableArguments {
    @OptionGroup var folder: MigrationFolderOptions

    /// `--source`, when given.
    var sourceFlag: String? { folder.sourceFlag }

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    /// sqlx.toml's settings, as sqlx-cli 0.9 finds them; prints what the file holds that is
    /// not read (an unknown section) to stderr.
    func config() throws -> MigrationConfig {
        let config = try folder.resolvedConfig()
        for warning in config.warnings { printWarning(warning) }
        return config
    }

    /// The folder: `--source`, else the config's `migrations-dir`, else `migrations`. A
    /// config that cannot be read, and its warnings, are reported by `config()` in the
    /// commands that need it.
    var source: String {
        (try? folder.resolvedConfig()).map(folder.directory(in:)) ?? sourceFlag ?? "migrations"
    }

    /// A migrator over the folder with the config's table, schemas and ignored characters;
    /// prints the config's and the source's warnings (an unknown section, a lone .down.sql)
    /// to stderr.
    func migrator(logger: Logger, lockPolicy: LockTimeoutPolicy = .default) throws -> Migrator {
        try folder.migrator(config: try folder.resolvedConfig(), logger: logger, lockPolicy: lockPolicy)
    }
}

extension MigrationFolderOptions {
    /// A migrator over the folder under `config` (already read), with its table, schemas and
    /// ignored characters; prints the config's warnings (an unknown section), then the
    /// source's (names it does not read, a lone .down.sql) to stderr. `migrate` and `worker
    /// --migrate` set up their migrations through it alike.
    func migrator(config: MigrationConfig, logger: Logger, lockPolicy: LockTimeoutPolicy = .default) throws -> Migrator
    {
        for warning in config.warnings { printWarning(warning) }
        let migrator = try Migrator(
            directory: directory(in: config), relativeTo: Console.current.directory, logger: logger,
            lockPolicy: lockPolicy, config: config)
        for warning in migrator.source.warnings { printWarning(warning) }
        return migrator
    }
}

/// `warning: message` on stderr, its control characters escaped.
func printWarning(_ message: String) {
    let text = TerminalText.escaped(PrintedSecrets.scrub(message), keepingNewlines: true)
    Console.current.writeErr("warning: \(text)\n")
}

/// `message` on stderr, for what a person reads beside a command's output (stdout keeps
/// only what a script parses); scrubbed and escaped as `printWarning` is.
func printNote(_ message: String) {
    let text = TerminalText.escaped(PrintedSecrets.scrub(message), keepingNewlines: true)
    Console.current.writeErr("\(text)\n")
}

// swift-format-ignore: AvoidRetroactiveConformances
// swift-argument-parser reads --log-level into swift-log's own type; neither package will
// declare the conformance, so this module does, once.
extension Logger.Level: @retroactive ExpressibleByArgument {}

extension Migrate {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new migration file (or an up/down pair).",
            discussion: """
                The version is the UTC time (YYYYMMDDHHMMSS), or the next number when the folder is \
                numbered sequentially (0001, 0002, ...). The migration is reversible (.up.sql and \
                .down.sql) with -r, or when the newest existing migration is.

                Example: godwit migrate add -r create media table
                """)

        @OptionGroup var sourceOptions: SourceOptions

        @Flag(name: [.customShort("r"), .long], help: "Create an .up.sql and a .down.sql file.")
        var reversible = false

        @Flag(help: "Create a single .sql file, even if the newest migration is reversible.")
        var simple = false

        @Flag(help: "Use a UTC timestamp as the version.")
        var timestamp = false

        @Flag(help: "Use the next sequential number as the version.")
        var sequential = false

        @Argument(help: "What the migration does; spaces become underscores in the file name.")
        var description: [String]

        func validate() throws {
            if reversible && simple { throw ValidationError("--reversible and --simple exclude each other") }
            if timestamp && sequential { throw ValidationError("--timestamp and --sequential exclude each other") }
        }

        func run() async throws {
            try await withCLIErrors {
                // A flag wins over sqlx.toml's [migrate.defaults], which wins over inferring.
                let config = try sourceOptions.config()
                let fromConfig: MigrationScaffold.Versioning =
                    switch config.defaultVersioning {
                    case .inferred: .infer
                    case .timestamp: .timestamp
                    case .sequential: .sequential
                    }
                let typeFromConfig: MigrationScaffold.Reversibility =
                    switch config.defaultMigrationType {
                    case .inferred: .infer
                    case .simple: .simple
                    case .reversible: .reversible
                    }
                let versioning: MigrationScaffold.Versioning =
                    timestamp ? .timestamp : sequential ? .sequential : fromConfig
                let reversibility: MigrationScaffold.Reversibility =
                    reversible ? .reversible : simple ? .simple : typeFromConfig
                let files = try MigrationScaffold.create(
                    description: description.joined(separator: " "),
                    in: config.migrationsDirectory(flag: sourceOptions.sourceFlag),
                    relativeTo: Console.current.directory, versioning: versioning, reversibility: reversibility,
                    warn: printWarning)
                for file in files { output("Creating \(file)") }
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply all pending migrations.",
            discussion: """
                Takes sqlx's advisory lock, so concurrent runs (and a Rust service running \
                sqlx::migrate! at startup) apply each migration exactly once. Each migration and its \
                ledger row commit together unless the file starts with -- no-transaction.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions
        @OptionGroup var lockOptions: LockOptions

        @Option(help: "Apply migrations up to and including this version only.")
        var targetVersion: Int64?

        @Flag(
            help: ArgumentHelp(
                "Print what would be sent for each pending migration, and change nothing.",
                discussion:
                    "Each statement as it would be sent (a -- no-transaction file split as it runs), with the lock timeout that would apply."
            ))
        var dryRun = false

        @Flag(help: "Ignore applied migrations that are missing from the source folder.")
        var ignoreMissing = false

        @Flag(help: "Enqueue a migrate job carrying these files for a worker, instead of running here.")
        var enqueue = false

        @Flag(help: "Take a verified pg_dump backup first (into --backup-dir); no backup, no migration.")
        var backup = false

        @Option(help: "Where --backup writes its dump (when running here).")
        var backupDir = "backups"

        @OptionGroup var schemaOptions: SchemaOptions
        var schema: String { schemaOptions.schema }

        @Flag(help: "Refuse to run when migrate lint's trace flags a pending migration (for deploy pipelines).")
        var strict = false

        func validate() throws {
            if enqueue && dryRun { throw ValidationError("--enqueue and --dry-run exclude each other") }
        }

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger, lockPolicy: lockOptions.policy)
                let migration = SafeMigration(
                    migrator: migrator, databaseURL: try connection.resolvedURL(),
                    options: SafeMigration.Options(
                        targetVersion: targetVersion, ignoreMissing: ignoreMissing, dryRun: dryRun, strict: strict,
                        backups: backup
                            ? BackupManager(
                                directory: backupDir, schema: schema, workingDirectory: Console.current.directory)
                            : nil,
                        schema: schema))
                try await connection.withConnection(logger: logger) { conn in
                    do {
                        if enqueue {
                            let job = try await migration.enqueue(on: conn, onEvent: printSafeMigrationEvent)
                            // stdout carries the id alone, as `job enqueue` prints it, so that
                            // `id=$(godwit migrate run --enqueue)` feeds `godwit job watch $id`.
                            printNote(
                                "enqueued migrate job \(job.id) with \(job.fileCount) files; godwit job watch \(job.id) follows it"
                            )
                            output("\(job.id)")
                            return
                        }
                        try await migration.run(on: conn, onEvent: printSafeMigrationEvent)
                    } catch let refusal as SafeMigrationError {
                        // Each finding on its own line, then the refusal's.
                        for finding in refusal.findings { printError(finding.text) }
                        throw refusal
                    }
                }
            }
        }
    }

    struct Revert: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revert the newest applied migration, or all above --target-version.",
            discussion: "Every migration to revert needs a .down.sql; this is checked before anything runs.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions
        @OptionGroup var lockOptions: LockOptions

        @Option(help: "Revert every applied migration newer than this version (0 reverts all).")
        var targetVersion: Int64?

        @Flag(help: "Print what would be sent for each migration to revert, and change nothing.")
        var dryRun = false

        @Flag(help: "Ignore applied migrations that are missing from the source folder.")
        var ignoreMissing = false

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger, lockPolicy: lockOptions.policy)
                try await connection.withConnection(logger: logger) { conn in
                    let events = try await migrator.revert(
                        on: conn, targetVersion: targetVersion, dryRun: dryRun, ignoreMissing: ignoreMissing,
                        onEvent: printEvent)
                    if events.isEmpty { output("No migrations available to revert") }
                }
            }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every migration and whether it is installed, pending or changed.")

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case text, json
        }

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        @Option(help: "Output format: text (as sqlx) or json.")
        var format: Format = .text

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger)
                try await connection.withConnection(logger: logger) { conn in
                    let statuses = try await migrator.status(on: conn)
                    switch format {
                    case .text:
                        for status in statuses {
                            output("\(status.version)/\(status.state.rawValue) \(status.description)")
                            if status.state == .modified {
                                output("applied migration had checksum \(status.appliedChecksum?.hexEncoded ?? "")")
                                output("local migration has checksum \(status.localChecksum?.hexEncoded ?? "")")
                            }
                        }
                    case .json:
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                        let data = try encoder.encode(statuses.map(InfoRecord.init))
                        output(String(decoding: data, as: UTF8.self))
                    }
                }
            }
        }
    }
}

extension Migrate {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prove that every reversible migration's down undoes its up.",
            discussion: """
                In a scratch database created beside the one given (from template0, with its \
                encoding and locale, dropped afterwards; the role needs CREATEDB), applies the \
                migrations one by one; after each up it snapshots the \
                schema, runs the down, checks that the schema is as before the up, and applies the \
                up again. Reports the first migration whose down does not restore the schema, with \
                the difference. Simple migrations are reported as irreversible, not as failures. \
                It compares schema (pg_dump --schema-only), not data: the scratch database has no \
                rows, so a down that loses data passes when the schema comes back.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger)
                do {
                    let verifier = MigrationVerifier(source: migrator.source, config: migrator.config, logger: logger)
                    let steps = try await verifier.verify(
                        serverURL: try connection.resolvedURL()
                    ) { step in
                        switch step.outcome {
                        case .reversible: output("ok \(step.version)/\(step.description): down restores the schema")
                        case .irreversible:
                            output("-- \(step.version)/\(step.description): irreversible (no .down.sql)")
                        }
                    }
                    let reversible = steps.filter { $0.outcome == .reversible }.count
                    output(
                        "verified \(steps.count) migrations: \(reversible) reversible, \(steps.count - reversible) irreversible"
                    )
                } catch let failure as MigrationVerifier.Failure {
                    printError(failure.description)
                    throw ExitCode(1)
                }
            }
        }
    }
}

extension Migrate {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Exit 0 when the database has every migration and none was modified; else 1, a line per reason.",
            discussion: """
                The deploy gate: fails when a migration is pending, when an applied file was \
                modified since, when a migration is partially applied, and (unless \
                --ignore-missing) when an applied migration is missing from the folder. Reads only: \
                takes no lock and creates nothing.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        @Flag(help: "Do not count applied migrations that are missing from the source folder.")
        var ignoreMissing = false

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger)
                let check = try await connection.withConnection(logger: logger) { conn in
                    try await migrator.deployCheck(on: conn, ignoreMissing: ignoreMissing)
                }
                guard !check.passed else {
                    output("ok: \(check.statuses.count) migrations applied, none pending or modified")
                    return
                }
                for reason in check.reasons { output(reason.text) }
                throw ExitCode(1)
            }
        }
    }
}

/// What `migrate run` prints of a safe migration: lint warnings on stderr, the backup and the
/// migrator's events on stdout.
func printSafeMigrationEvent(_ event: SafeMigration.Event) {
    switch event {
    case .lintWarning(let finding):
        printWarning(
            "\(finding.file):\(finding.line): \(finding.rule): \(finding.message) (godwit migrate lint says more; --strict refuses)"
        )
    case .lintFailed(let error):
        printWarning("could not lint the pending migrations: \(error)")
    case .backup(let made):
        output("Backup \(made.file) (\(made.sizeBytes) bytes, sha256 \(made.sha256)) verified")
    case .migration(let event):
        printEvent(event)
    }
}

/// sqlx's line for an event; in a dry run, followed by what would be sent.
func printEvent(_ event: MigrationEvent) {
    output(event.line)
    if let plan = event.plan { output(plan.text) }
}

/// One element of `migrate info --format json`.
struct InfoRecord: Encodable {
    var version: Int64
    var description: String
    var status: String
    var reversible: Bool
    var noTransaction: Bool
    var checksum: String?
    var appliedChecksum: String?
    var installedOn: String?
    var executionTimeNs: Int64?
    var path: String?

    init(_ status: MigrationStatus) {
        version = status.version
        description = status.description
        self.status = status.state.rawValue
        reversible = status.reversible
        noTransaction = status.noTransaction
        checksum = status.localChecksum?.hexEncoded
        appliedChecksum = status.appliedChecksum?.hexEncoded
        installedOn = status.installedOn
        executionTimeNs = status.executionTime
        path = status.path
    }

    enum CodingKeys: String, CodingKey {
        case version, description, status, reversible, checksum, path
        case noTransaction = "no_transaction"
        case appliedChecksum = "applied_checksum"
        case installedOn = "installed_on"
        case executionTimeNs = "execution_time_ns"
    }
}
