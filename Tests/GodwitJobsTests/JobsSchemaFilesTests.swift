import Foundation
import GodwitBackups
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// The jobs part, split into files by concern (`Resources/jobs_*.sql`), installs exactly what
/// the single file it was cut from did: the same statements in the same order, and so the same
/// catalog. The single file is kept as released in `Fixtures/jobs_schema_single_file.sql`, so
/// that a database it installed (recorded as jobs version 1) reads as installed.
@Suite("The jobs part's files")
struct JobsSchemaFilesTests {
    /// The jobs part as one file, as it was before the split.
    static func singleFile() throws -> String {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/jobs_schema_single_file.sql")
        return try String(contentsOf: fixture, encoding: .utf8)
    }

    /// The SQL's statements without comments and blank lines: what the server is given to run.
    static func statements(_ sql: String) -> [String] {
        sql.split(separator: "\n").map { String($0) }.filter {
            !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("--")
        }
    }

    @Test func theFilesHoldTheSingleFilesStatementsInItsOrder() throws {
        let split = Self.statements(SchemaPart.jobs.install)
        let single = Self.statements(try Self.singleFile())
        #expect(single.count > 400, "read \(single.count) lines of the single file")
        // Compared apart from #expect, which would print both whole.
        let same = split == single
        let firstDifference = zip(split, single).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(
            same,
            "\(split.count) lines against \(single.count); first difference at line \(firstDifference?.offset ?? -1): \(firstDifference.map { "\($0.element.0) | \($0.element.1)" } ?? "")"
        )
    }

    @Test func aNewInstallFromTheFilesHasTheSingleFilesCatalog() async throws {
        let single = SchemaPart(owner: "jobs", requires: ["queue", "backups"], install: try Self.singleFile())
        try await withRoles(["split_enqueuer", "split_controller"]) { roles in
            try await withTestDatabase { fromFiles in
                try await withTestDatabase { fromSingle in
                    let files = try await fromFiles.connect()
                    try await QueueSchema.withJobs().install(on: files)
                    try await SchemaUpgradeTests.grant(roles[0], roles[1], on: files)
                    let one = try await fromSingle.connect()
                    try await QueueSchema(companions: [.backups, single]).install(on: one)
                    try await SchemaUpgradeTests.grant(roles[0], roles[1], on: one)
                    // Recorded alike: the jobs part at the version the single file was.
                    #expect(try await SchemaUpgradeTests.versions(files) == ["backups 1", "jobs 1", "queue 1"])
                    #expect(try await SchemaUpgradeTests.versions(one) == ["backups 1", "jobs 1", "queue 1"])
                    #expect(
                        try await QueueSchema.withJobs().isCurrent(on: one),
                        "a database the single file made reads as current")

                    let split = try await SchemaUpgradeTests.expectSameCatalog(fromFiles, fromSingle)
                    #expect(split.count > 50)
                    await files.close()
                    await one.close()
                }
            }
        }
    }
}
