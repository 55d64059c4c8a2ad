import ArgumentParser
import GodwitFleet
import GodwitMigrations
import GodwitPostgres
import Logging

extension FleetCommand {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The deploy gate across a fleet: exit 0 when every target has every migration, else 1.",
            discussion: """
                Every target must be at the folder's newest version with no migration modified, \
                partially applied or (unless --ignore-missing) missing from the folder; otherwise one line \
                per target that is not says why. Reads only, as migrate check, and needs no control \
                database (but for --targets-query, which runs on -D).
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var targetOptions: FleetTargetOptions
        @OptionGroup var folder: MigrationFolderOptions

        @Option(help: "At most this many targets read at once.")
        var parallel = 8

        @Flag(help: "Do not count applied migrations that are missing from the source folder.")
        var ignoreMissing = false

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .warning

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(logLevel)
                let config = try folder.resolvedConfig()
                let migrator = try folder.migrator(config: config, logger: logger)
                guard parallel >= 1 else {
                    throw FleetError(.badOptions, "--parallel \(parallel): at least 1 target must run at a time")
                }
                let fleet: FleetTargets
                if let fromFile = try targetOptions.fileTargets() {
                    fleet = fromFile
                } else {
                    fleet = try await targetOptions.load(control: connection, logger: logger)
                }
                var session = SessionOptions()
                session.applicationName = "godwit fleet"
                session.connectTimeout = .milliseconds(Int64((connection.connectTimeout * 1000).rounded()))
                let results = try await FleetDeployCheck(
                    migrator: migrator, parallel: parallel, sessionOptions: session, ignoreMissing: ignoreMissing
                ).check(fleet)
                let failing = results.filter { !$0.passed }
                let newest = migrator.source.upMigrations.last.map { "version \($0.version)" } ?? "no migration"
                guard !failing.isEmpty else {
                    output("ok: \(results.count) targets at \(newest), none pending or modified")
                    return
                }
                for result in failing {
                    output(TerminalText.escaped(PrintedSecrets.scrub(result.line), keepingNewlines: false))
                }
                printError("\(failing.count) of \(results.count) targets are not at \(newest)")
                throw ExitCode(1)
            }
        }
    }
}
