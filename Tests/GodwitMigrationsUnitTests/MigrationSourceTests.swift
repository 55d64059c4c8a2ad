import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("Migration files, checksums and naming")
struct MigrationSourceTests {
    @Test(
        arguments: [
            ("20240101120000_create_users.sql", 20_240_101_120_000, "create users", Migration.Kind.simple),
            ("1_init.up.sql", 1, "init", .up),
            ("0001_init.down.sql", 1, "init", .down),
            ("42_a_b_c.sql", 42, "a b c", .simple),
            ("7_x.sql.sql", 7, "x", .simple),
            ("3_with.dots.up.sql", 3, "with.dots", .up),
            ("-5_negative.sql", -5, "negative", .simple),
        ] as [(String, Int64, String, Migration.Kind)])
    func parsesNamesLikeSqlx(name: String, version: Int64, description: String, kind: Migration.Kind) throws {
        let parsed = try #require(try MigrationSource.parseFileName(name))
        #expect(parsed.version == version)
        #expect(parsed.description == description)
        #expect(parsed.kind == kind)
    }

    @Test(arguments: ["README.md", "noseparator.sql", "1_notes.txt", "schema.sql", "1_init.sql.bak"])
    func ignoresFilesThatAreNotMigrations(name: String) throws {
        #expect(try MigrationSource.parseFileName(name) == nil)
    }

    @Test func aNonIntegerVersionIsAnErrorNamingTheFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("v1_init.sql", "SELECT 1;")
        let error = try #require(throws: MigrationError.self) { try MigrationSource.load(directory: dir.path) }
        #expect(error.code == .invalidSource)
        #expect(error.message.contains("v1_init.sql"))
        #expect(error.message.contains("integer version"))
    }

    /// A version of digits only that no bigint holds is too large (or small), not "not an
    /// integer": the name is right, the number is not.
    @Test(arguments: [
        ("99999999999999999999_x.sql", "version 99999999999999999999 is too large"),
        ("9223372036854775808_x.up.sql", "version 9223372036854775808 is too large"),
        ("-9223372036854775809_x.sql", "version -9223372036854775809 is too small"),
    ])
    func aVersionTooLargeForABigintIsSaidSoNamingTheFile(name: String, expected: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(name, "SELECT 1;")
        let error = try #require(throws: MigrationError.self) { try MigrationSource.load(directory: dir.path) }
        #expect(error.code == .invalidSource)
        #expect(
            error.message.hasPrefix("\(dir.path)/\(name): \(expected): the ledger's version is a bigint"), "\(error)")
        #expect(!error.message.contains("integer version"))
        // The largest bigint is a version like any other.
        #expect(try MigrationSource.parseFileName("9223372036854775807_x.sql")?.version == Int64.max)
    }

    @Test(arguments: [
        ["1_a.sql", "1_b.sql"],
        ["1_a.up.sql", "1_a.down.sql", "1_b.sql"],
        ["5_a.up.sql", "5_b.up.sql"],
    ])
    func duplicateVersionsNameBothFiles(names: [String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for name in names { try dir.write(name, "SELECT 1;") }
        let error = try #require(throws: MigrationError.self) { try MigrationSource.load(directory: dir.path) }
        #expect(error.message.contains("duplicate migration version"))
        let simpleOrUp = names.filter { !$0.hasSuffix(".down.sql") }
        for name in simpleOrUp { #expect(error.message.contains(name)) }
    }

    @Test func aDownWithoutAnUpLoadsWithAWarning() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("9_drop.down.sql", "SELECT 1;")
        // sqlx accepts it; LoneDownTests has the rest.
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.warnings.first?.contains("9_drop.down.sql has no up file") == true)
    }

    @Test func loadsTheSampleSchemaInVersionOrder() throws {
        let source = try MigrationSource.load(directory: "migrations")
        let versions = source.upMigrations.map(\.version)
        #expect(versions == versions.sorted())
        #expect(versions.count >= 5)
        #expect(source.upMigrations.contains { $0.noTransaction })
        #expect(source.upMigrations.contains { source.down(for: $0.version) == nil })
    }

    // MARK: Checksums

    @Test(
        arguments: [
            ("lf", Array("CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n".utf8)),
            ("crlf", Array("CREATE TABLE a (id int);\r\nINSERT INTO a VALUES (1);\r\n".utf8)),
            ("bom", [0xEF, 0xBB, 0xBF] + Array("CREATE TABLE a (id int);\n".utf8)),
            ("directive", Array("-- no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n".utf8)),
        ] as [(String, [UInt8])])
    func checksumIsSHA384OfTheRawBytes(label: String, bytes: [UInt8]) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("1_\(label).sql", bytes: bytes)
        let source = try MigrationSource.load(directory: dir.path)
        let migration = try #require(source.migrations.first)
        #expect(migration.checksumHex == (try sha384sum(path)))
        #expect(migration.checksum.count == 48)
    }

    @Test func variantsOfOneScriptHaveDifferentChecksums() {
        let lf = Migration.checksum(of: Array("SELECT 1;\n".utf8))
        let crlf = Migration.checksum(of: Array("SELECT 1;\r\n".utf8))
        let bom = Migration.checksum(of: [0xEF, 0xBB, 0xBF] + Array("SELECT 1;\n".utf8))
        #expect(Set([lf, crlf, bom]).count == 3)
    }

    @Test func byteOrderMarkIsStrippedFromTheSQLButNotTheChecksum() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("SELECT 1;".utf8)
        let migration = Migration(version: 1, description: "x", kind: .simple, contents: bytes, path: "1_x.sql")
        #expect(migration.sql == "SELECT 1;")
        #expect(migration.checksum == Migration.checksum(of: bytes))
    }

    @Test(arguments: [
        ("-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);", true),
        ("-- no-transaction", true),
        ("\n-- no-transaction\n", false),
        ("-- No-Transaction\n", false),
        ("\u{FEFF}-- no-transaction\n", false),
        ("SELECT 1; -- no-transaction", false),
    ])
    func noTransactionOnlyAsTheFirstBytes(text: String, expected: Bool) {
        let migration = Migration(version: 1, description: "x", kind: .simple, contents: Array(text.utf8), path: "x")
        #expect(migration.noTransaction == expected)
    }

    // MARK: Lock key

    @Test(arguments: [
        ("postgres", Int64(368_907_709_894_077_238)),
        ("godwit", 3_203_711_558_174_670_386),
        ("media", 1_828_926_649_517_244_776),
    ])
    func lockKeyMatchesSqlx(database: String, key: Int64) {
        // 0x3d32ad9e * crc32(name), the values computed independently with Python's zlib.crc32.
        #expect(MigrationLock.key(forDatabase: database) == key)
    }

    // MARK: Durations as sqlx prints them

    @Test(arguments: [
        (Duration.zero, "0ns"),
        (.nanoseconds(999), "999ns"),
        (.microseconds(80), "80µs"),
        (.nanoseconds(410_922), "410.922µs"),
        (.nanoseconds(2_881_979), "2.881979ms"),
        (.milliseconds(12), "12ms"),
        (.milliseconds(1500), "1.5s"),
        (.seconds(3), "3s"),
    ])
    func durationsPrintLikeRust(duration: Duration, expected: String) {
        #expect(duration.rustDebugDescription == expected)
    }

    // MARK: a folder relative to a working directory

    /// A relative folder is read in the working directory given, and every path in the
    /// migrations and warnings names it as given.
    @Test func aRelativeFolderIsReadInTheWorkingDirectoryAndNamedAsGiven() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("db/1_a.sql", "SELECT 1;")
        try dir.write("db/2.sql", "SELECT 2;")
        let source = try MigrationSource.load(directory: "db", relativeTo: WorkingDirectory(dir.path))
        #expect(source.migrations.map(\.path) == ["db/1_a.sql"])
        #expect(source.warnings.first?.hasPrefix("db/2.sql is not read") == true, "\(source.warnings)")
        let missing = try #require(throws: MigrationError.self) {
            try MigrationSource.load(directory: "nope", relativeTo: WorkingDirectory(dir.path))
        }
        #expect(missing.message == "migrations folder nope does not exist")
        let files = try MigrationScaffold.create(
            description: "next", in: "db", relativeTo: WorkingDirectory(dir.path), versioning: .sequential)
        #expect(files == ["db/0002_next.sql"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/db/0002_next.sql"))
    }

    // MARK: migrate add

    @Test func addInfersSequentialFromTheNewestTwo() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("0001_a.sql", "SELECT 1;")
        try dir.write("0002_b.sql", "SELECT 1;")
        let files = try MigrationScaffold.create(description: "third one", in: dir.path)
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["0003_third_one.sql"])
    }

    @Test func addWithOneMigrationNumberedOneIsSequential() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "SELECT 1;")
        let files = try MigrationScaffold.create(description: "next", in: dir.path)
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["0002_next.sql"])
    }

    @Test func addUsesATimestampOtherwise() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("20240101000000_a.sql", "SELECT 1;")
        let now = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01 00:00:00 UTC
        let files = try MigrationScaffold.create(description: "add index", in: dir.path, now: now)
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["20260101000000_add_index.sql"])
        let contents = try String(contentsOfFile: files[0], encoding: .utf8)
        #expect(contents == "-- Add migration script here\n")
    }

    @Test func addIsReversibleWhenTheNewestMigrationIs() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "SELECT 1;")
        try dir.write("2_b.up.sql", "SELECT 1;")
        try dir.write("2_b.down.sql", "SELECT 1;")
        let files = try MigrationScaffold.create(description: "c", in: dir.path)
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["0003_c.up.sql", "0003_c.down.sql"])
        let simple = try MigrationScaffold.create(description: "d", in: dir.path, reversibility: .simple)
        #expect(simple.map { ($0 as NSString).lastPathComponent } == ["0004_d.sql"])
    }

    @Test func addExplicitFlagsWin() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("0001_a.sql", "SELECT 1;")
        try dir.write("0002_b.sql", "SELECT 1;")
        let now = Date(timeIntervalSince1970: 1_767_225_600)
        let files = try MigrationScaffold.create(
            description: "e", in: dir.path, versioning: .timestamp, reversibility: .reversible, now: now)
        #expect(
            files.map { ($0 as NSString).lastPathComponent } == [
                "20260101000000_e.up.sql", "20260101000000_e.down.sql",
            ])
        let seq = try MigrationScaffold.create(description: "f", in: dir.path, versioning: .sequential)
        #expect(
            seq.map { ($0 as NSString).lastPathComponent } == ["20260101000001_f.up.sql", "20260101000001_f.down.sql"])
    }

    /// Two `migrate add` in one second, or a clock behind the newest migration: the next free
    /// second after the newest version.
    @Test func addTakesTheNextFreeSecond() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("20260101000000_a.sql", "SELECT 1;")
        let now = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01 00:00:00 UTC
        var names: [String] = []
        for description in ["b", "c", "d"] {
            let files = try MigrationScaffold.create(
                description: description, in: dir.path, versioning: .timestamp, now: now)
            names += files.map { ($0 as NSString).lastPathComponent }
        }
        #expect(names == ["20260101000001_b.sql", "20260101000002_c.sql", "20260101000003_d.sql"])
        #expect(try MigrationSource.load(directory: dir.path).migrations.count == 4)
    }

    @Test(
        arguments: [
            (20_260_101_000_059, "20260101000100"),  // the second after :59 is the next minute
            (20_261_231_235_959, "20270101000000"),
            (20_991_231_120_000, "20991231120001"),  // a version far ahead of the clock
            (20_270_100_000_000, "20270100000001"),  // day 0 is not a real time: one more than it
            (99_999_999_999_999_999, "100000000000000000"),
        ] as [(Int64, String)])
    func theNextFreeSecondIsAfterTheNewestVersion(newest: Int64, expected: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("\(newest)_a.up.sql", "SELECT 1;")
        try dir.write("\(newest)_a.down.sql", "SELECT 1;")
        let source = try MigrationSource.load(directory: dir.path)
        let now = Date(timeIntervalSince1970: 1_767_225_600)
        #expect(MigrationScaffold.nextVersionPrefix(for: source, versioning: .timestamp, now: now) == expected)
        #expect(MigrationScaffold.nextVersionPrefix(for: source, versioning: .infer, now: now) == expected)
    }

    @Test(arguments: [
        ("CREATE TABLE n1 (x int);\n\0\nCREATE TABLE n2 (x int);", 2),
        ("-- no-transaction\nCREATE TABLE n1 (x int);\n\0\nCREATE TABLE n2 (x int);", 3),
        ("\0", 1),
    ])
    func aFileWithANulByteIsRefusedNamingFileAndLine(contents: String, line: Int) throws {
        for name in ["2_x.sql", "2_x.down.sql"] {
            var files = [(name: "2_x.up.sql", contents: Array("SELECT 1;".utf8))]
            if name == "2_x.sql" { files = [] }
            files.append((name: name, contents: Array(contents.utf8)))
            let error = #expect(throws: MigrationError.self) {
                try MigrationSource(files: files, directory: "migrations")
            }
            #expect(
                error?.message
                    == "migrations/\(name):\(line): the file contains a NUL byte, which PostgreSQL cannot take (the SQL after it would be silently dropped); remove it"
            )
            #expect(error?.version == 2)
        }
    }
}
