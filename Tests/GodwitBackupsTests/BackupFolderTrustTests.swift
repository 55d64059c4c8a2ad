import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A folder under `parent` that belongs to another user: `nobody`'s when the tests run as
/// root, else the root folder, which is root's.
func foldersOfAnotherUser(in parent: TemporaryDirectory) throws -> (path: String, owner: uid_t) {
    guard getuid() == 0 else { return ("/", 0) }
    let path = (parent.path as NSString).appendingPathComponent("theirs")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    #expect(chown(path, 65534, 65534) == 0)
    return (path, 65534)
}

func mode(of path: String) throws -> Int {
    try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
}

@Suite("backup folders and files must be the user's alone")
struct BackupFolderTrustTests {
    @Test func aFolderOfAnotherUserIsRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let (folder, owner) = try foldersOfAnotherUser(in: dir)
        let before = try FileManager.default.contentsOfDirectory(atPath: folder)
        try await withTestDatabase { db in
            let created = try await GodwitCommand.run(["backup", "create", "--dir", folder, "-D", db.url])
            #expect(created.status == 1)
            let expected = "error: refusing backup folder \(folder): it is owned by uid \(owner), not by this user"
            #expect(created.stderr.hasPrefix("\(expected) (uid \(geteuid()))"), "\(created.stderr)")
            #expect(created.stderr.split(separator: "\n").count == 1, "\(created.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == before)
    }

    @Test(arguments: [0o777, 0o1777, 0o770, 0o722])
    func aFolderOthersMayWriteToIsRefused(_ permissions: Int) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let folder = (dir.path as NSString).appendingPathComponent("shared")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        #expect(chmod(folder, mode_t(permissions)) == 0)
        try await withTestDatabase { db in
            let created = try await GodwitCommand.run(["backup", "create", "--dir", folder, "-D", db.url])
            #expect(created.status == 1)
            let octal = String(permissions, radix: 8)
            #expect(
                created.stderr.hasPrefix(
                    "error: refusing backup folder \(folder): group or others may write to it (mode \(octal.count < 4 ? "0" + octal : octal)"
                ), "\(created.stderr)")
            #expect(created.stderr.split(separator: "\n").count == 1, "\(created.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == [])
    }

    /// A backup taken, then its folder or the file opened to others, or the file given away:
    /// verify and restore refuse it, naming what is wrong.
    @Test(arguments: ["folder 0777", "file 0666", "file 0620"] + (getuid() == 0 ? ["file of another user"] : []))
    func verifyAndRestoreRefuseAFileOthersCouldHaveChanged(_ change: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withTestDatabase { db in
            let created = try await GodwitCommand.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            let expected: String
            switch change {
            case "folder 0777":
                #expect(chmod(dir.path, 0o777) == 0)
                expected = "error: refusing backup folder \(dir.path): group or others may write to it (mode 0777)"
            case "file of another user":
                #expect(chown(file, 65534, 65534) == 0)
                expected = "error: refusing backup file \(file): it is owned by uid 65534"
            default:
                let permissions = Int(change.dropFirst("file ".count), radix: 8) ?? 0
                #expect(chmod(file, mode_t(permissions)) == 0)
                expected =
                    "error: refusing backup file \(file): group or others may write to it (mode \(change.dropFirst(5)))"
            }
            for command in [["backup", "verify", file], ["backup", "restore", file, "--yes"]] {
                let output = try await GodwitCommand.run(command + ["-D", db.url])
                #expect(output.status == 1, "\(command)")
                #expect(output.stderr.hasPrefix(expected), "\(command): \(output.stderr)")
                #expect(output.stderr.split(separator: "\n").count == 1, "\(command): \(output.stderr)")
            }
        }
    }

    /// The file restored is the file verified: a backup swapped for another one (renamed over
    /// it, as a user who could write to the folder would) after verification, just as
    /// pg_restore starts, changes nothing.
    @Test func aFileSwappedAfterVerificationIsNotWhatIsRestored() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let fakes = try TemporaryDirectory(prefix: "godwit-fake-bin")
        defer { fakes.delete() }
        let realRestore = await ClientProgram.path(of: "pg_restore")
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute("CREATE TABLE t (label text); INSERT INTO t VALUES ('original');")
            let original = try await GodwitCommand.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(original.status == 0, "\(original.stderr)")
            let file = String(original.stdout.split(separator: " ").first ?? "")
            try await conn.execute("UPDATE t SET label = 'swapped in'")
            let other = try await GodwitCommand.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(other.status == 0, "\(other.stderr)")
            let swapIn = String(other.stdout.split(separator: " ").first ?? "")
            try await conn.execute("UPDATE t SET label = 'current'")

            // The pg_restore that feeds psql renames the other backup over the verified one first.
            try fakes.writeProgram(
                "pg_restore",
                """
                case " $* " in *" --single-transaction "*) cp "$SWAP_IN" "$SWAP_IN.tmp" && mv -f "$SWAP_IN.tmp" "$SWAP_OVER" ;; esac
                exec '\(realRestore)' "$@"
                """)
            let restored = try await GodwitCommand.run(
                ["backup", "restore", file, "--yes", "-D", db.url],
                environment: ["GODWIT_PG_BIN": fakes.path, "SWAP_IN": swapIn, "SWAP_OVER": file])
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(try await conn.query("SELECT label FROM t").first?.string("label") == "original")
            await conn.close()
        }
    }

    /// pg_dump writes to the file godwit created and opened: it is never given the path.
    @Test func pgDumpIsNeverGivenThePath() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let fakes = try TemporaryDirectory(prefix: "godwit-fake-bin")
        defer { fakes.delete() }
        let realDump = await ClientProgram.path(of: "pg_dump")
        let arguments = (fakes.path as NSString).appendingPathComponent("pg_dump.argv")
        try fakes.writeProgram(
            "pg_dump",
            """
            printf '%s\\n' "$@" > '\(arguments)'
            exec '\(realDump)' "$@"
            """)
        try await withTestDatabase { db in
            let created = try await GodwitCommand.run(
                ["backup", "create", "--dir", dir.path, "-D", db.url], environment: ["GODWIT_PG_BIN": fakes.path])
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            let argv = try String(contentsOfFile: arguments, encoding: .utf8)
            #expect(!argv.contains(dir.path), "\(argv)")
            #expect(try mode(of: file) == 0o600)
            let verified = try await GodwitCommand.run(["backup", "verify", file, "-D", db.url])
            #expect(verified.status == 0, "\(verified.stderr)")
            #expect(verified.stdout.contains("matches the one recorded"), "\(verified.stdout)")
        }
    }
}
