import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Testing

/// A database with three tables of data, the queue schema (whose `backups` table records
/// backups) and a recorded backup of it.
func withBackedUpDatabase(
    _ body: (TestDatabase, Connection, BackupManager, Backup, TemporaryDirectory) async throws -> Void
) async throws {
    let dir = try TemporaryDirectory()
    defer { dir.delete() }
    try await withTestDatabase { db in
        let conn = try await db.connect()
        try await BackupManager(directory: "/tmp").installSchema(on: conn)
        try await conn.execute(
            """
            CREATE TABLE accounts (id int PRIMARY KEY, secret text);
            INSERT INTO accounts SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 20000) g;
            CREATE TABLE events (id bigint, payload jsonb);
            INSERT INTO events SELECT g, jsonb_build_object('n', g, 'h', md5(g::text)) FROM generate_series(1, 5000) g;
            CREATE TABLE empty_one (id int);
            """)
        let manager = BackupManager(directory: dir.path)
        let backup = try await manager.create(databaseURL: db.url, reason: BackupReason.byHand, on: conn)
        try await body(db, conn, manager, backup, dir)
        await conn.close()
    }
}

enum Cut: String, CaseIterable, CustomTestStringConvertible {
    case half, ninetyPercent, oneByteShort

    func length(of size: Int) -> Int {
        switch self {
        case .half: size / 2
        case .ninetyPercent: size * 9 / 10
        case .oneByteShort: size - 1
        }
    }

    var testDescription: String { rawValue }
}

@Suite("backup verify")
struct VerifyTests {
    @Test(arguments: Cut.allCases)
    func aTruncatedDumpFailsVerification(_ cut: Cut) async throws {
        try await withBackedUpDatabase { db, conn, manager, backup, dir in
            let bytes = try #require(FileManager.default.contents(atPath: backup.file))
            let truncated = try dir.write(
                "truncated-\(cut.rawValue).dump", bytes: Array(bytes.prefix(cut.length(of: bytes.count))))
            // What verification used to check, the table of contents, is still readable.
            let list = try await ClientProgram.run("pg_restore", ["--list", truncated])
            #expect(list.succeeded, "the cut should leave the table of contents whole")

            let error = await #expect(throws: BackupError.self) { _ = try await manager.verify(file: truncated) }
            #expect(error?.code == .damaged)
            #expect(error?.file == truncated)
            #expect(
                error?.message.hasPrefix("backup \(truncated) failed verification") == true, "\(error?.message ?? "")")

            let output = try await GodwitCommand.run(["backup", "verify", truncated, "-D", db.url])
            #expect(output.status == 1)
            #expect(output.stdout.isEmpty)
            #expect(output.stderr.hasPrefix("error: backup \(truncated) failed verification"), "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
        }
    }

    @Test func aRecordedFileTruncatedInPlaceFails() async throws {
        try await withBackedUpDatabase { db, conn, manager, backup, dir in
            let bytes = try #require(FileManager.default.contents(atPath: backup.file))
            try Data(bytes.prefix(bytes.count - 1)).write(to: URL(fileURLWithPath: backup.file))
            await #expect(throws: BackupError.self) { _ = try await manager.verify(file: backup.file, on: conn) }
            let output = try await GodwitCommand.run(["backup", "verify", backup.file, "-D", db.url])
            #expect(output.status == 1)
            #expect(output.stderr.hasPrefix("error: backup \(backup.file) failed verification"), "\(output.stderr)")
        }
    }

    @Test func aValidArchiveWhoseBytesChangedFailsOnTheRecordedSHA256() async throws {
        try await withBackedUpDatabase { db, conn, manager, backup, dir in
            // Another dump, of changed data, in the recorded file's place: still a whole archive.
            try await conn.execute("UPDATE accounts SET secret = 'changed' WHERE id = 1")
            let (conninfo, environment) = try ClientProgram.connectionArguments(for: db.url)
            let redump = try await ClientProgram.run(
                "pg_dump",
                ["--format=custom", "--file=\(backup.file)", "--exclude-schema=godwit", "--dbname=\(conninfo)"],
                environment: environment)
            #expect(redump.succeeded, "\(redump.stderr)")

            // The file alone is sound...
            let alone = try await manager.verify(file: backup.file)
            #expect(alone.sha256 != backup.sha256)
            #expect(alone.record == .notChecked)
            // ...but it is not what was recorded.
            let error = await #expect(throws: BackupError.self) {
                _ = try await manager.verify(file: backup.file, on: conn)
            }
            #expect(error?.code == .checksumMismatch)
            #expect(error?.message.contains(backup.sha256) == true)
            #expect(error?.message.contains(alone.sha256) == true)

            let output = try await GodwitCommand.run(["backup", "verify", backup.file, "-D", db.url])
            #expect(output.status == 1)
            #expect(
                output.stderr.hasPrefix(
                    "error: backup \(backup.file) failed verification: its sha256 is \(alone.sha256)"),
                "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test func aGoodBackupPassesAndTheLineSaysWhatWasChecked() async throws {
        try await withBackedUpDatabase { db, conn, manager, backup, dir in
            let size = try #require(try FileManager.default.attributesOfItem(atPath: backup.file)[.size] as? Int)
            #expect(backup.sizeBytes == Int64(size))
            #expect(backup.dataBlocks == 3, "one block of data a table")

            let verification = try await manager.verify(file: backup.file, on: conn)
            #expect(verification.record == .matched)
            #expect(verification.dataBlocks == 3)
            #expect(verification.entries == backup.entries)
            #expect(verification.sha256 == backup.sha256)
            #expect(verification.recordedAt == backup.createdAt)

            let recorded = try await GodwitCommand.run(["backup", "verify", backup.file, "-D", db.url])
            #expect(recorded.status == 0, "\(recorded.stderr)")
            #expect(
                recorded.stdout
                    == "\(backup.file): ok, \(backup.entries) entries, 3 data blocks read and decompressed in full (\(size) bytes), sha256 \(backup.sha256) matches the one recorded in \"godwit\".backups at \(backup.createdAt)\n"
            )

            let offline = try await GodwitCommand.run(["backup", "verify", backup.file, "--no-dotenv"])
            #expect(offline.status == 0, "\(offline.stderr)")
            #expect(
                offline.stdout.hasSuffix("sha256 \(backup.sha256) (not compared with a record: no database given)\n"))

            // A copy is sound, but no record names it.
            let copy = (dir.path as NSString).appendingPathComponent("copy.dump")
            try FileManager.default.copyItem(atPath: backup.file, toPath: copy)
            let unrecorded = try await GodwitCommand.run(["backup", "verify", copy, "-D", db.url])
            #expect(unrecorded.status == 0, "\(unrecorded.stderr)")
            #expect(unrecorded.stdout.hasSuffix("(no record of this file in \"godwit\".backups to compare with)\n"))
        }
    }
}
