import ArgumentParser
import Foundation
import GodwitMigrations
import GodwitPostgres

extension Migrate {
    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept an applied file that changed only in line endings, BOM or trailing whitespace.",
            discussion: """
                Shows, for each applied migration whose file no longer has the ledger's checksum, \
                what differs; with --yes it rewrites the ledger's checksum to the file's, so that \
                sqlx and Godwit accept the file again. A change of content is refused, and nothing \
                is rewritten. The ledger keeps no text, so without --applied the file's variants \
                (CRLF or LF, with or without a BOM, trailing whitespace, final newline) are \
                hashed to find the one that was applied; --applied FILE compares the text as it \
                was applied (from version control) with the file and prints the diff.

                Example: godwit migrate repair --version 3 --applied <(git show v1.0:migrations/3_x.sql) --yes
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var sourceOptions: SourceOptions

        @Option(help: "Only this applied migration.")
        var version: Int64?

        @Option(help: ArgumentHelp("The migration's text as it was applied (needs --version).", valueName: "file"))
        var applied: String?

        @Flag(help: "Rewrite the ledger's checksums (without it, only show the differences).")
        var yes = false

        func validate() throws {
            if applied != nil && version == nil { throw ValidationError("--applied needs --version") }
        }

        func run() async throws {
            try await withCLIErrors {
                let logger = makeLogger(sourceOptions.logLevel)
                let migrator = try sourceOptions.migrator(logger: logger)
                var appliedText: [UInt8]?
                if let applied {
                    guard let data = FileManager.default.contents(atPath: Console.current.opened(applied)) else {
                        throw CLIError("\(applied): cannot read the file given with --applied")
                    }
                    appliedText = [UInt8](data)
                }
                try await connection.withConnection(logger: logger) { conn in
                    let mismatches = try await migrator.checksumMismatches(
                        on: conn, version: version, appliedText: appliedText)
                    guard !mismatches.isEmpty else {
                        output("ok: every applied migration's file has the checksum in the ledger")
                        return
                    }
                    for mismatch in mismatches {
                        output(
                            "migration \(mismatch.version) (\(mismatch.path)): the ledger has checksum \(mismatch.appliedChecksum.hexEncoded), the file \(mismatch.fileChecksum.hexEncoded)"
                        )
                        for difference in mismatch.drift?.differences ?? [] { output("  \(difference)") }
                        for line in mismatch.contentDiff { output("  \(line)") }
                    }
                    if let refused = mismatches.first(where: { !$0.repairable }) {
                        throw Migrator.contentChanged(refused, hadAppliedText: appliedText != nil)
                    }
                    guard yes else {
                        output("nothing rewritten: run again with --yes to set these checksums to the files'")
                        return
                    }
                    for repaired in try await migrator.repair(on: conn, version: version, appliedText: appliedText) {
                        output("Repaired \(repaired.version)/\(repaired.description): checksum set to the file's")
                    }
                }
            }
        }
    }
}
