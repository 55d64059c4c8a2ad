import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Runs one of the ops/ procedures with bash, against `url`, using the built executable.
func runOps(
    _ script: String, _ arguments: [String], url: String, environment extra: [String: String] = [:]
) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["ops/\(script)"] + arguments
    var environment = ProcessInfo.processInfo.environment
    environment["DATABASE_URL"] = url
    environment["GODWIT"] = GodwitProcess.executable
    environment.merge(extra) { _, new in new }
    process.environment = environment
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("ops-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    let handle = try FileHandle(forWritingTo: log)
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            process.waitUntilExit()
            continuation.resume()
        }
    }
    return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
}

@Suite("ops procedures")
struct OpsScriptTests {
    /// ops/package checks what it packs: the test build links the Swift runtime from the
    /// toolchain's folder, so packaging it is refused and no tarball is written. (A release
    /// build, which links it statically, passes the same check; ops/package builds one.)
    @Test func packagingRefusesABinaryThatNeedsTheToolchain() async throws {
        let out = try TemporaryDirectory()
        defer { out.delete() }
        let packaged = try await runOps(
            "package", [], url: "", environment: ["GODWIT_BIN": GodwitProcess.executable, "OUT": out.path])
        #expect(packaged.status == 1, "\(packaged.output)")
        #expect(packaged.output.contains("needs libraries a server without Swift does not have"), "\(packaged.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }

    @Test func migrateSafelyThenRollBackByRevertAndByRestore() async throws {
        let backups = try TemporaryDirectory()
        defer { backups.delete() }
        try await withTestDatabase { db in
            let migrated = try await runOps("migrate-safely", ["--backup-dir", backups.path], url: db.url)
            #expect(migrated.status == 0, "\(migrated.output)")
            #expect(migrated.output.contains("migrate-safely: done. Backup: \(backups.path)/backup-"))
            let conn = try await db.connect()
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 6)

            let reverted = try await runOps("rollback-migration", ["--backup-dir", backups.path], url: db.url)
            #expect(reverted.status == 0, "\(reverted.output)")
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 5)

            // A revert past the irreversible migration is refused, and says what to do instead.
            let refused = try await runOps("rollback-migration", ["--target-version", "0", "--backup-dir", backups.path], url: db.url)
            #expect(refused.status == 1)
            #expect(refused.output.contains("STOPPED: the revert failed. If the migration cannot be reverted: ops/rollback-migration --restore"))

            // The first backup was of the empty database: restoring it empties the schema.
            let first = try await conn.query("SELECT file FROM godwit.backups ORDER BY id LIMIT 1").first!.string("file")
            let restored = try await runOps("rollback-migration", ["--restore", first, "--backup-dir", backups.path], url: db.url)
            #expect(restored.status == 0, "\(restored.output)")
            #expect(try await conn.query("SELECT to_regclass('media') IS NULL AS gone").first?.bool("gone") == true)
            await conn.close()
        }
    }

    @Test func migrateSafelyStopsAtAFailureWithTheRollbackCommand() async throws {
        let backups = try TemporaryDirectory()
        let empty = try TemporaryDirectory()
        defer {
            backups.delete()
            empty.delete()
        }
        try await withTestDatabase { db in
            let result = try await runOps("migrate-safely", ["--backup-dir", backups.path, "--source", empty.path], url: db.url)
            #expect(result.status == 0, "an empty source migrates nothing: \(result.output)")
            let unreachable = try await runOps("migrate-safely", ["--backup-dir", backups.path], url: "postgres://postgres@127.0.0.1:1/x?connect_timeout=1")
            #expect(unreachable.status == 1)
            #expect(unreachable.output.contains("STOPPED: lint refused the pending migrations (above): nothing was changed"))
        }
    }

    @Test func migrateSafelyStopsAtALintFindingBeforeTheBackupWithNothingChanged() async throws {
        let backups = try TemporaryDirectory()
        let source = try TemporaryDirectory()
        defer {
            backups.delete()
            source.delete()
        }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE media (id bigint PRIMARY KEY, title text)")
            try "CREATE INDEX media_title ON media (title);\n".write(
                toFile: source.path + "/1_title_index.sql", atomically: true, encoding: .utf8)
            let refused = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path, "--lock-timeout", "1s"], url: db.url)
            #expect(refused.status == 1)
            #expect(refused.output.contains("non-concurrent-index"), "\(refused.output)")
            #expect(refused.output.contains("STOPPED: lint refused the pending migrations (above): nothing was changed"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).isEmpty)
            #expect(try await conn.query("SELECT to_regclass('_sqlx_migrations') IS NULL AS none").first?.bool("none") == true)

            // Accepted with a reason, it runs, under the lock timeout given.
            try "-- godwit:allow non-concurrent-index media is tiny\nCREATE INDEX media_title ON media (title);\n".write(
                toFile: source.path + "/1_title_index.sql", atomically: true, encoding: .utf8)
            let migrated = try await runOps(
                "migrate-safely", ["--backup-dir", backups.path, "--source", source.path, "--lock-timeout", "1s"], url: db.url)
            #expect(migrated.status == 0, "\(migrated.output)")
            #expect(try await conn.query("SELECT to_regclass('media_title') IS NOT NULL AS built").first?.bool("built") == true)
            await conn.close()
        }
    }
}
