import Foundation

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
public struct MigrationSource: Sendable {
    /// Every migration file, sorted by version; an up sorts before its down.
    public let migrations: [Migration]
    public let directory: String
    /// Things sqlx accepts that deserve a person's attention, one line each, naming the file.
    public let warnings: [String]

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

    /// Reads `directory`. A missing folder is an empty source, as for sqlx. Checksums leave
    /// out `ignoredChars` (sqlx.toml's `ignored-chars`).
    public static func load(directory: String, ignoredChars: Set<Unicode.Scalar> = []) throws -> MigrationSource {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            return MigrationSource(migrations: [], directory: directory)
        }
        guard isDirectory.boolValue else {
            throw MigrationError(.invalidSource, "\(directory) is not a directory")
        }
        var files: [(name: String, contents: [UInt8])] = []
        for name in try manager.contentsOfDirectory(atPath: directory).sorted() {
            let path = (directory as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            // Only files that name a migration are read; the rest are ignored, as by sqlx.
            guard try parseFileName(name, path: path) != nil else { continue }
            guard let data = manager.contents(atPath: path) else {
                throw MigrationError(.invalidSource, "\(path): cannot read the file")
            }
            files.append((name, [UInt8](data)))
        }
        return try MigrationSource(files: files, directory: directory, ignoredChars: ignoredChars)
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
