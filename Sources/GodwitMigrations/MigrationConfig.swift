import Foundation
import GodwitPostgres
import TOMLKit

/// The `[migrate]` settings of a `sqlx.toml`, read as sqlx 0.9 reads them.
///
/// sqlx-cli reads `sqlx.toml` from the current directory when it exists, or the file given
/// with `--config`; without either, every setting has its default. A flag given on the
/// command line (`--source`, `-r`, `--sequential`...) wins over the file, and the file over
/// the default. Keys outside `[migrate]` (`[common]`, `[macros]`) configure other parts of
/// sqlx and are not read here; an unknown key inside `[migrate]` is an error, as in sqlx, so
/// that a misspelt `table-name` cannot silently select the default ledger. A section that is
/// none of sqlx's (`[migrat]`, `[migrations]`) is a warning naming the file and line: its
/// settings would otherwise be dropped in silence, but another tool may share the file.
public struct MigrationConfig: Sendable, Equatable {
    /// How `migrate add` picks the kind of a new migration.
    public enum DefaultMigrationType: String, Sendable {
        case inferred, simple, reversible
    }

    /// How `migrate add` picks the version of a new migration.
    public enum DefaultVersioning: String, Sendable {
        case inferred, timestamp, sequential
    }

    /// Schemas created (`CREATE SCHEMA IF NOT EXISTS`, under the migration lock) before the
    /// ledger table, so that the ledger can live in one of them.
    public var createSchemas: [String]
    /// The ledger table as SQL text: `_sqlx_migrations`, or schema-qualified and quoted as
    /// the user wrote it (`accounts._sqlx_migrations`, `"Tenant"."ledger"`).
    public var tableName: String
    /// The folder of migrations, relative to the working directory (as for sqlx-cli), when set.
    public var migrationsDir: String?
    /// Characters removed from a file's text before it is hashed.
    public var ignoredChars: Set<Unicode.Scalar>
    public var defaultMigrationType: DefaultMigrationType
    public var defaultVersioning: DefaultVersioning
    /// The file the settings came from; nil for the defaults.
    public var path: String?
    /// What the file holds that is not read, one line each, naming the file and line: a
    /// top-level section none of sqlx's.
    public var warnings: [String] = []

    /// sqlx 0.9's top-level sections.
    static let knownSections = ["common", "drivers", "macros", "migrate"]

    public static let defaultTableName = "_sqlx_migrations"

    public init(
        createSchemas: [String] = [], tableName: String = MigrationConfig.defaultTableName,
        migrationsDir: String? = nil, ignoredChars: Set<Unicode.Scalar> = [],
        defaultMigrationType: DefaultMigrationType = .inferred, defaultVersioning: DefaultVersioning = .inferred,
        path: String? = nil
    ) {
        self.createSchemas = createSchemas
        self.tableName = tableName
        self.migrationsDir = migrationsDir
        self.ignoredChars = ignoredChars
        self.defaultMigrationType = defaultMigrationType
        self.defaultVersioning = defaultVersioning
        self.path = path
    }

    /// Every setting at its default, as without a `sqlx.toml`.
    public static let `default` = MigrationConfig()

    /// The file named by `--config`, else `sqlx.toml` in `directory` when there is one, else
    /// the defaults. A `--config` file that does not exist is an error, as in sqlx-cli.
    ///
    /// `directory` is the working directory: a relative `--config` is opened inside it, and
    /// `sqlx.toml` looked for there. Messages name the file as the person knows it: the
    /// `--config` path as given, `sqlx.toml` for the working directory's.
    public static func resolve(configPath: String?, directory: String = FileManager.default.currentDirectoryPath)
        throws -> MigrationConfig
    {
        let base = WorkingDirectory(directory)
        if let configPath {
            guard FileManager.default.fileExists(atPath: base.resolve(configPath)) else {
                throw MigrationError(.invalidConfig, "\(configPath): no such config file (given with --config)")
            }
            return try load(path: base.resolve(configPath), shown: configPath)
        }
        let implicit = base.resolve("sqlx.toml")
        guard FileManager.default.fileExists(atPath: implicit) else { return .default }
        return try load(path: implicit, shown: "sqlx.toml")
    }

    /// Reads one `sqlx.toml` at `path`; `shown` names it in errors, warnings and `path` (the
    /// path as the person gave it), `path` itself by default.
    public static func load(path: String, shown: String? = nil) throws -> MigrationConfig {
        let shown = shown ?? path
        // A FileHandle, not FileManager.contents, so that `--config /dev/null` (sqlx's way to
        // bypass the file) reads as empty.
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.readToEnd() ?? Data() else {
            throw MigrationError(.invalidConfig, "\(shown): cannot read the config file")
        }
        guard let text = String(validating: [UInt8](data), as: UTF8.self) else {
            throw MigrationError(.invalidConfig, "\(shown): the config file is not valid UTF-8")
        }
        return try parse(text, path: shown)
    }

    /// Parses the text of a `sqlx.toml`; `path` names it in errors.
    public static func parse(_ text: String, path: String) throws -> MigrationConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw MigrationError(
                .invalidConfig, "\(path):\(error.source.begin.line): \(error.description)")
        }
        var config = MigrationConfig(path: path)
        let locate = KeyLocator(text: text)
        for key in root.keys.sorted() where !knownSections.contains(key) {
            config.warnings.append(
                "\(path):\(locate.sectionLine(of: key)): unknown section `\(key)` is ignored (sqlx.toml's sections: \(knownSections.joined(separator: ", ")))"
            )
        }
        guard let value = root["migrate"] else { return config }
        guard let migrate = value.table else {
            throw MigrationError(.invalidConfig, "\(path):\(locate.line(of: "migrate")): `migrate` must be a table")
        }
        func fail(_ key: String, _ message: String) -> MigrationError {
            MigrationError(.invalidConfig, "\(path):\(locate.line(of: key)): \(message)")
        }
        for key in migrate.keys.sorted() {
            let item = migrate[key]!
            switch key {
            case "create-schemas":
                guard let array = item.array else {
                    throw fail(key, "`create-schemas` must be an array of schema names")
                }
                config.createSchemas = []
                for element in array {
                    guard let name = element.string, SQLName.isValid(name, parts: 1...1) else {
                        throw fail(
                            key, "`create-schemas` holds \(element.debugDescription), which is not a schema name")
                    }
                    // sqlx keeps them in a set, so each is created once, in sorted order.
                    if !config.createSchemas.contains(name) { config.createSchemas.append(name) }
                }
                config.createSchemas.sort()
            case "table-name":
                guard let name = item.string, SQLName.isValid(name, parts: 1...2) else {
                    throw fail(
                        key,
                        "`table-name` must be a table name, optionally schema-qualified and quoted (foo._sqlx_migrations); got \(item.debugDescription)"
                    )
                }
                config.tableName = name
            case "migrations-dir":
                guard let dir = item.string, !dir.isEmpty else { throw fail(key, "`migrations-dir` must be a path") }
                config.migrationsDir = dir
            case "ignored-chars":
                guard let array = item.array else {
                    throw fail(key, "`ignored-chars` must be an array of one-character strings, e.g. [\"\\r\"]")
                }
                for element in array {
                    guard let string = element.string, string.unicodeScalars.count == 1,
                        let scalar = string.unicodeScalars.first
                    else {
                        throw fail(
                            key, "`ignored-chars` holds \(element.debugDescription), which is not a single character")
                    }
                    config.ignoredChars.insert(scalar)
                }
            case "defaults":
                guard let defaults = item.table else { throw fail(key, "`migrate.defaults` must be a table") }
                for name in defaults.keys.sorted() {
                    let setting = defaults[name]!.string
                    switch name {
                    case "migration-type":
                        guard let setting, let parsed = DefaultMigrationType(rawValue: setting) else {
                            throw fail(name, "`migration-type` must be \"inferred\", \"simple\" or \"reversible\"")
                        }
                        config.defaultMigrationType = parsed
                    case "migration-versioning":
                        guard let setting, let parsed = DefaultVersioning(rawValue: setting) else {
                            throw fail(
                                name, "`migration-versioning` must be \"inferred\", \"timestamp\" or \"sequential\"")
                        }
                        config.defaultVersioning = parsed
                    default:
                        throw fail(
                            name, "unknown key `migrate.defaults.\(name)` (known: migration-type, migration-versioning)"
                        )
                    }
                }
            default:
                throw fail(
                    key,
                    "unknown key `migrate.\(key)` (known: create-schemas, table-name, migrations-dir, ignored-chars, defaults)"
                )
            }
        }
        return config
    }

    /// The folder to read: `--source` when given, else `migrations-dir`, else `migrations`.
    public func migrationsDirectory(flag: String?) -> String {
        flag ?? migrationsDir ?? "migrations"
    }
}

/// SQL names as sqlx's settings hold them: interpolated into SQL as written, so only plain or
/// double-quoted identifiers are accepted, never arbitrary SQL.
enum SQLName {
    static func isValid(_ text: String, parts allowed: ClosedRange<Int>) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        var parts = 0
        while true {
            guard index < scalars.count else { return false }
            if scalars[index] == "\"" {
                index += 1
                var empty = true
                while true {
                    guard index < scalars.count else { return false }
                    if scalars[index] == "\"" {
                        if index + 1 < scalars.count, scalars[index + 1] == "\"" {
                            index += 2
                            empty = false
                            continue
                        }
                        index += 1
                        break
                    }
                    if scalars[index].value == 0 { return false }
                    empty = false
                    index += 1
                }
                if empty { return false }
            } else {
                let first = scalars[index]
                guard first == "_" || first.properties.isAlphabetic else { return false }
                index += 1
                while index < scalars.count,
                    scalars[index] == "_" || scalars[index] == "$"
                        || scalars[index].properties.isAlphabetic || ("0"..."9").contains(scalars[index])
                {
                    index += 1
                }
            }
            parts += 1
            if index == scalars.count { return allowed.contains(parts) }
            guard scalars[index] == "." else { return false }
            index += 1
        }
    }
}

/// Finds the line a key is written on, for error messages (TOMLKit reports lines only for
/// syntax errors).
private struct KeyLocator {
    let lines: [Substring]

    init(text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    func line(of key: String) -> Int {
        for (index, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            for form in [key, "\"\(key)\"", "'\(key)'"] where trimmed.hasPrefix(form) {
                let rest = trimmed.dropFirst(form.count).trimmingCharacters(in: .whitespaces)
                if rest.hasPrefix("=") { return index + 1 }
            }
            if trimmed.hasPrefix("[") && trimmed.contains(key) { return index + 1 }
        }
        return 1
    }

    /// The line of a top-level key: its table header (`[key]`, `[key.sub]`, `[[key]]`) or a
    /// `key = ...` / `key.sub = ...` line, whichever comes first. Whole names only, so
    /// `migrat` is not found on `[migrate]`.
    func sectionLine(of key: String) -> Int {
        for (index, line) in lines.enumerated() {
            var trimmed = Substring(line.trimmingCharacters(in: .whitespaces))
            let header = trimmed.hasPrefix("[")
            while trimmed.hasPrefix("[") { trimmed = trimmed.dropFirst().drop(while: { $0 == " " }) }
            for form in [key, "\"\(key)\"", "'\(key)'"] where trimmed.hasPrefix(form) {
                let next = trimmed.dropFirst(form.count).drop(while: { $0 == " " || $0 == "\t" }).first
                if next == "." || (header ? next == "]" : next == "=") { return index + 1 }
            }
        }
        return 1
    }
}
