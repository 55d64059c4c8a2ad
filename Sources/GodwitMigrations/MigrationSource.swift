import Foundation
import GodwitPostgres

/// The migrations of one folder, resolved with sqlx's rules.
///
/// A file is a migration when its name splits once on `_` into an integer version and a rest
/// that ends in `.sql`; anything else is ignored, as sqlx ignores it. The description is the
/// rest without its suffix, with `_` turned into spaces. Unlike sqlx, two files that claim the
/// same version (other than an up or simple file with its down) are an error naming both,
/// since sqlx would apply only one of them.
///
/// As sqlx does, it accepts a `.down.sql` with no up file (never applied; reverted when its
/// version is in the ledger) and a simple `V_x.sql` beside a `V_x.down.sql` (revert runs the
/// down); the first gets a warning in `warnings`, saying why.
///
/// Where sqlx is silent, Godwit says something, and refuses only what would otherwise apply
/// the wrong thing:
/// - a missing folder is an error (`missingSource`), as for sqlx, which canonicalizes the path:
///   a misspelt `--source` must not report success with nothing applied;
/// - a file that looks like a migration but that sqlx would skip (`1.sql`,
///   `2024-01-01-x.sql`: a `.sql` name that starts with a digit and has no `_` version
///   separator), and a directory named `*.sql`, are warnings: sqlx ignores them too, so
///   refusing would make one folder fail under Godwit and pass under sqlx;
/// - a migration name whose symbolic link leads nowhere (dangling, or a loop) is an error: a
///   migration whose SQL cannot be read;
/// - an empty migration (no bytes, or only whitespace) is almost always a file saved before its
///   SQL was written, and applying it would record it in the ledger as done: `run` and `revert`
///   refuse to run one (`Migration.refuseIfEmpty`). One applied already (sqlx applies them)
///   stays as it is, so a folder adopted from sqlx still runs.
public struct MigrationSource: Sendable {
    /// Every migration file, sorted by version; an up sorts before its down.
    public let migrations: [Migration]
    public let directory: String
    /// Things sqlx accepts that deserve a person's attention, one line each, naming the file.
    public private(set) var warnings: [String]

    public init(migrations: [Migration], directory: String) {
        self.migrations = migrations.sorted {
            ($0.version, $0.kind == .down ? 1 : 0) < ($1.version, $1.kind == .down ? 1 : 0)
        }
        self.directory = directory
        var warnings: [String] = []
        for down in self.migrations where down.kind == .down {
            guard !self.migrations.contains(where: { $0.version == down.version && $0.kind != .down }) else { continue }
            warnings.append(
                "\(down.path) has no up file: it is never applied, but `migrate revert` runs it if version \(down.version) is in the ledger, and while it is there neither sqlx nor Godwit notices that the applied migration's file is gone"
            )
        }
        self.warnings = warnings
    }

    /// Reads `directory`; a missing folder is an error naming it. Checksums leave out
    /// `ignoredChars` (sqlx.toml's `ignored-chars`).
    ///
    /// A relative `directory` is opened inside `base`, and every message and migration path
    /// names it as given (`migrations/1_a.sql`).
    public static func load(
        directory: String, ignoredChars: Set<Unicode.Scalar> = [], relativeTo base: WorkingDirectory = .process
    ) throws -> MigrationSource {
        let manager = FileManager.default
        let opened = base.resolve(directory)
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: opened, isDirectory: &isDirectory) else {
            throw MigrationError(.missingSource, "migrations folder \(directory) does not exist")
        }
        guard isDirectory.boolValue else {
            throw MigrationError(.invalidSource, "\(directory) is not a directory")
        }
        var files: [(name: String, contents: [UInt8])] = []
        var ignored: [String] = []
        for name in try manager.contentsOfDirectory(atPath: opened).sorted() {
            let path = (directory as NSString).appendingPathComponent(name)
            let openedPath = (opened as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard manager.fileExists(atPath: openedPath, isDirectory: &isDir) else {
                // fileExists follows links, so only a link that leads nowhere gets here.
                if try parseFileName(name, path: path) != nil {
                    throw MigrationError(
                        .invalidSource,
                        "\(path) is a symbolic link that leads nowhere (its target is missing, or the links loop); fix or remove it"
                    )
                }
                if looksLikeMigration(name) { ignored.append(notAMigrationWarning(path)) }
                continue
            }
            if isDir.boolValue {
                if name.lowercased().hasSuffix(".sql") {
                    ignored.append("\(path) is a directory, not a migration file; it is ignored, as by sqlx")
                }
                continue
            }
            // Only files that name a migration are read; the rest are ignored, as by sqlx.
            guard try parseFileName(name, path: path) != nil else {
                if looksLikeMigration(name) { ignored.append(notAMigrationWarning(path)) }
                continue
            }
            guard let data = manager.contents(atPath: openedPath) else {
                throw MigrationError(.invalidSource, "\(path): cannot read the file")
            }
            files.append((name, [UInt8](data)))
        }
        var source = try MigrationSource(files: files, directory: directory, ignoredChars: ignoredChars)
        source.warnings = ignored + source.warnings
        return source
    }

    /// A name sqlx skips that was probably meant as a migration: `.sql` (in any case) after
    /// a leading digit, as in `1.sql` or `2024-01-01-x.sql`.
    static func looksLikeMigration(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("0"..."9").contains(first) else { return false }
        return name.lowercased().hasSuffix(".sql")
    }

    private static func notAMigrationWarning(_ path: String) -> String {
        "\(path) is not read: a migration's name is <version>_<description>.sql (e.g. 20240101120000_create_users.sql); sqlx ignores it too"
    }

    /// Builds a source from file names and contents (as a migrate job carries them), with the
    /// same rules and checks as reading a folder.
    public init(
        files: [(name: String, contents: [UInt8])], directory: String, ignoredChars: Set<Unicode.Scalar> = []
    ) throws {
        var migrations: [Migration] = []
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file.name)
            guard let parsed = try Self.parseFileName(file.name, path: path) else { continue }
            guard String(validating: file.contents, as: UTF8.self) != nil else {
                throw MigrationError(.invalidSource, "\(path): the file is not valid UTF-8")
            }
            // libpq sends SQL as a C string: everything after a NUL would be dropped without
            // a word, and the migration recorded as applied.
            if let nul = file.contents.firstIndex(of: 0) {
                let line = file.contents[..<nul].count(where: { $0 == UInt8(ascii: "\n") }) + 1
                throw MigrationError(
                    .invalidSource,
                    "\(path):\(line): the file contains a NUL byte, which PostgreSQL cannot take (the SQL after it would be silently dropped); remove it",
                    version: parsed.version)
            }
            migrations.append(
                Migration(
                    version: parsed.version, description: parsed.description, kind: parsed.kind,
                    contents: file.contents, path: path, ignoredChars: ignoredChars))
        }
        self.init(migrations: migrations, directory: directory)
        try validate()
    }

    /// Splits a file name the way sqlx does; nil for a file that is not a migration.
    public static func parseFileName(
        _ name: String, path: String? = nil
    ) throws -> (version: Int64, description: String, kind: Migration.Kind)? {
        guard let underscore = name.firstIndex(of: "_") else { return nil }
        let prefix = name[..<underscore]
        let rest = String(name[name.index(after: underscore)...])
        guard rest.hasSuffix(".sql") else { return nil }
        guard let version = Int64(prefix) else {
            // All digits, yet no Int64: sqlx would fail to parse it too, but the name is right;
            // the number is what the ledger's bigint cannot hold.
            let negative = prefix.hasPrefix("-")
            let digits = prefix.drop { $0 == "-" || $0 == "+" }
            if prefix.count - digits.count <= 1, !digits.isEmpty,
                digits.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) })
            {
                throw MigrationError(
                    .invalidSource,
                    "\(path ?? name): version \(prefix) is too \(negative ? "small" : "large"): the ledger's version is a bigint, from \(Int64.min) to \(Int64.max) (a UTC timestamp such as 20240101120000 fits)"
                )
            }
            throw MigrationError(
                .invalidSource,
                "\(path ?? name): the name must start with an integer version and `_` (e.g. 20240101120000_create_users.sql)"
            )
        }
        let kind = Migration.Kind(fileNameRest: rest)
        var stem = Substring(rest)
        // sqlx trims the suffix repeatedly (`trim_end_matches`), so `x.sql.sql` describes as `x`.
        while stem.hasSuffix(kind.suffix) { stem = stem.dropLast(kind.suffix.count) }
        return (version, stem.replacingOccurrences(of: "_", with: " "), kind)
    }

    private func validate() throws {
        var byVersion: [Int64: [Migration]] = [:]
        for migration in migrations { byVersion[migration.version, default: []].append(migration) }
        for (version, files) in byVersion.sorted(by: { $0.key < $1.key }) {
            let kinds = files.map(\.kind)
            // sqlx also takes a lone down, and a simple file with a down.
            let accepted: [[Migration.Kind]] = [[.simple], [.up], [.up, .down], [.down], [.simple, .down]]
            let valid = accepted.contains(kinds)
            guard !valid else { continue }
            let names = files.map { ($0.path as NSString).lastPathComponent }
            throw MigrationError(
                .invalidSource,
                "duplicate migration version \(version): \(names.joined(separator: " and ")) in \(directory)",
                version: version)
        }
    }

    /// The files that apply: simple and up migrations, in version order.
    public var upMigrations: [Migration] { migrations.filter { $0.kind != .down } }

    /// The down file of `version`, if it has one.
    public func down(for version: Int64) -> Migration? {
        migrations.first { $0.version == version && $0.kind == .down }
    }

    public func up(for version: Int64) -> Migration? {
        migrations.first { $0.version == version && $0.kind != .down }
    }

    public func contains(version: Int64) -> Bool { migrations.contains { $0.version == version } }
}
