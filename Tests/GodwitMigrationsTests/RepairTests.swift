import Crypto
import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("migrate repair")
struct RepairTests {
    static let original = "CREATE TABLE users (\n    id int\n);\n"

    static func storedChecksum(_ url: String) async throws -> [UInt8] {
        let conn = try await Connection.connect(url)
        defer { Task { await conn.close() } }
        return try await conn.query("SELECT checksum FROM _sqlx_migrations WHERE version = 1").first?.bytes("checksum")
            ?? []
    }

    /// The file checked out again with CRLF and a BOM: repair shows it, changes nothing
    /// without --yes, and with --yes stores the file's checksum, so run accepts it.
    @Test(arguments: [
        (
            "\u{FEFF}" + original.replacingOccurrences(of: "\n", with: "\r\n"),
            [
                "  the applied file had LF line ends; the file now has CRLF",
                "  the file now begins with a byte-order mark, which the applied file did not have",
            ]
        ),
        (
            "CREATE TABLE users (  \n    id int\t\n);",
            [
                "  the file now has trailing whitespace on lines 1, 2",
                "  the applied file ended with a newline; the file does not",
            ]
        ),
    ])
    func aWhitespaceOnlyChangeIsShownAndRepairedWithYes(changed: String, differences: [String]) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("1_users.sql", Self.original)
        try await withTestDatabase { db in
            let base = ["--source", dir.path, "-D", db.url]
            #expect(try await GodwitCommand.run(["migrate", "run"] + base).status == 0)
            let before = try await Self.storedChecksum(db.url)
            try dir.write("1_users.sql", changed)
            #expect(try await GodwitCommand.run(["migrate", "run"] + base).status == 1)

            let shown = try await GodwitCommand.run(["migrate", "repair"] + base)
            #expect(shown.status == 0, "\(shown.stderr)")
            let fileChecksum = Array(SHA384.hash(data: Array(changed.utf8)))
            #expect(
                shown.stdout.split(separator: "\n").map(String.init) == [
                    "migration 1 (\(path)): the ledger has checksum \(before.hexEncoded), the file \(fileChecksum.hexEncoded)"
                ] + differences + ["nothing rewritten: run again with --yes to set these checksums to the files'"])
            #expect(try await Self.storedChecksum(db.url) == before)

            let repaired = try await GodwitCommand.run(["migrate", "repair", "--yes"] + base)
            #expect(repaired.status == 0, "\(repaired.stderr)")
            #expect(repaired.stdout.hasSuffix("Repaired 1/users: checksum set to the file's\n"))
            #expect(try await Self.storedChecksum(db.url) == fileChecksum)
            let run = try await GodwitCommand.run(["migrate", "run"] + base)
            #expect(run.status == 0 && run.stdout.isEmpty, "\(run.stderr)")
            let nothing = try await GodwitCommand.run(["migrate", "repair", "--yes"] + base)
            #expect(nothing.stdout == "ok: every applied migration's file has the checksum in the ledger\n")
        }
    }

    /// A change of content is refused, with --yes too, and with the applied text given the
    /// diff shows what changed.
    @Test func aChangeOfContentIsRefusedWithTheDiff() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("1_users.sql", Self.original)
        let applied = try dir.write("applied.txt", Self.original)
        try await withTestDatabase { db in
            let base = ["--source", dir.path, "-D", db.url]
            #expect(try await GodwitCommand.run(["migrate", "run"] + base).status == 0)
            let before = try await Self.storedChecksum(db.url)
            try dir.write("1_users.sql", "CREATE TABLE users (\r\n    id bigint\r\n);\r\n")

            let blind = try await GodwitCommand.run(["migrate", "repair", "--yes"] + base)
            #expect(blind.status == 1)
            #expect(
                blind.stderr.hasPrefix(
                    "error: migration 1 (\(path)) cannot be repaired: no variant of the file in line endings, byte-order mark or trailing whitespace has the stored checksum"
                ), "\(blind.stderr)")

            let withText = try await GodwitCommand.run(
                ["migrate", "repair", "--yes", "--version", "1", "--applied", applied] + base)
            #expect(withText.status == 1)
            #expect(withText.stdout.hasSuffix("  -2:     id int\n  +2:     id bigint\n"), "\(withText.stdout)")
            #expect(
                withText.stderr
                    == "error: migration 1 (\(path)) cannot be repaired: its content changed since it was applied (see the diff); nothing was rewritten\n"
            )
            #expect(try await Self.storedChecksum(db.url) == before)

            // A text that is not what was applied is refused too.
            try dir.write("applied.txt", "SELECT 1;\n")
            let wrong = try await GodwitCommand.run(
                ["migrate", "repair", "--version", "1", "--applied", applied] + base)
            #expect(wrong.status == 1)
            #expect(wrong.stderr.contains("it is not what was applied"), "\(wrong.stderr)")
        }
    }

    /// Adopting `ignored-chars` after the fact: the files are unchanged, their stored checksums
    /// are of the raw bytes; repair --yes stores the new rule's checksums.
    @Test func adoptingIgnoredCharsIsARepairOfUnchangedFiles() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let crlf = Self.original.replacingOccurrences(of: "\n", with: "\r\n")
        try dir.write("migrations/1_users.sql", crlf)
        try await withTestDatabase { db in
            let source = ["--source", dir.path + "/migrations"]
            #expect(try await GodwitCommand.run(["migrate", "run", "-D", db.url] + source).status == 0)
            let config = ["--config", try dir.write("sqlx.toml", "[migrate]\nignored-chars = [\"\\r\"]\n")]
            let shown = try await GodwitCommand.run(["migrate", "repair", "-D", db.url] + source + config)
            #expect(
                shown.stdout.contains(
                    "  the file is unchanged: its stored checksum was computed from its raw bytes, before sqlx.toml's ignored-chars were set"
                ), "\(shown.stdout)")
            #expect(
                try await GodwitCommand.run(["migrate", "repair", "--yes", "-D", db.url] + source + config).status == 0)
            let expected = Array(SHA384.hash(data: Array(Self.original.utf8)))
            #expect(try await Self.storedChecksum(db.url) == expected)
        }
    }
}
