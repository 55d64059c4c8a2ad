import ArgumentParser
import GodwitMigrations

extension Migrate {
    struct Baseline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record every migration up to a version as applied, without running it.",
            discussion: """
                Adopts a database whose schema already exists (made by hand, by another tool, or \
                restored): each migration up to --target-version gets its ledger row, with its \
                checksum and execution_time 0, as if sqlx had applied it. Refuses, recording \
                nothing, if any of those versions is already in the ledger. All rows are written \
                in one transaction under the migration lock.

                Example: godwit migrate baseline --target-version 20240101120000
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        @Option(help: "The newest migration to record as applied.")
        var targetVersion: Int64

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger)
                try await connection.withConnection(logger: logger) { conn in
                    try await migrator.baseline(on: conn, targetVersion: targetVersion, onEvent: printEvent)
                }
            }
        }
    }
}
