import Foundation
import GodwitPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// Creates new migration files with sqlx's naming and inference rules (`migrate add`).
public enum MigrationScaffold {
    public enum Versioning: Sendable {
        /// UTC `YYYYMMDDHHMMSS`.
        case timestamp
        /// One more than the newest version, as `{:04}`.
        case sequential
        /// Sequential when the two newest versions differ by 1, or the only one is 0 or 1;
        /// timestamp otherwise.
        case infer
    }

    public enum Reversibility: Sendable {
        case reversible
        case simple
        /// Reversible when the newest existing migration is.
        case infer
    }

    /// The version prefix of the next migration.
    ///
    /// A timestamp is the current UTC second, or, when a migration already has that version or
    /// a later one (two `migrate add` in one second, or a clock behind), the second after the
    /// newest version: versions stay unique and keep growing.
    public static func nextVersionPrefix(
        for source: MigrationSource, versioning: Versioning, now: Date = Date()
    ) -> String {
        let ups = source.upMigrations.map(\.version).sorted()
        let newest = source.migrations.map(\.version).max()
        switch versioning {
        case .timestamp:
            return timestamp(now, after: newest)
        case .sequential:
            return sequential((ups.last ?? 0) + 1)
        case .infer:
            if ups.count >= 2 {
                let last = ups[ups.count - 1]
                return last - ups[ups.count - 2] == 1 ? sequential(last + 1) : timestamp(now, after: newest)
            }
            if let only = ups.first, only == 0 || only == 1 { return sequential(only + 1) }
            return timestamp(now, after: newest)
        }
    }

    /// `now` as `YYYYMMDDHHMMSS`, or the second after `newest` when that is not earlier.
    static func timestamp(_ now: Date, after newest: Int64?) -> String {
        let stamp = timestamp(now)
        guard let newest, let value = Int64(stamp), value <= newest else { return stamp }
        let digits = Array(String(newest).utf8)
        if digits.count == 14 {
            func field(_ range: Range<Int>) -> Int32 { Int32(String(decoding: digits[range], as: UTF8.self)) ?? 0 }
            var parts = tm()
            parts.tm_year = field(0..<4) - 1900
            parts.tm_mon = field(4..<6) - 1
            parts.tm_mday = field(6..<8)
            parts.tm_hour = field(8..<10)
            parts.tm_min = field(10..<12)
            parts.tm_sec = field(12..<14)
            let seconds = timegm(&parts)
            // timegm normalises out-of-range fields (second 60, day 0); keep the result only
            // if it really is later.
            let next = timestamp(Date(timeIntervalSince1970: TimeInterval(seconds) + 1))
            if seconds != -1, let nextValue = Int64(next), nextValue > newest { return next }
        }
        return String(newest + 1)
    }

    public static func isReversible(_ reversibility: Reversibility, source: MigrationSource) -> Bool {
        switch reversibility {
        case .reversible: true
        case .simple: false
        case .infer: source.upMigrations.last.map { source.down(for: $0.version) != nil } ?? false
        }
    }

    /// Writes the new files and returns their paths. Refuses to overwrite an existing file.
    ///
    /// `warn` receives the folder's warnings (names it does not read, a lone down), as every
    /// command that reads the folder prints them. A relative `directory` is made inside
    /// `base`; the paths returned and the messages name it as given.
    public static func create(
        description: String, in directory: String, relativeTo base: WorkingDirectory = .process,
        versioning: Versioning = .infer, reversibility: Reversibility = .infer, now: Date = Date(),
        warn: (String) -> Void = { _ in }
    ) throws -> [String] {
        let trimmed = description.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else {
            throw MigrationError(.invalidSource, "the migration needs a description")
        }
        guard !trimmed.contains("/") else {
            throw MigrationError(.invalidSource, "the description \"\(trimmed)\" must not contain `/`")
        }
        try FileManager.default.createDirectory(atPath: base.resolve(directory), withIntermediateDirectories: true)
        let source = try MigrationSource.load(directory: directory, relativeTo: base)
        for warning in source.warnings { warn(warning) }
        let prefix = nextVersionPrefix(for: source, versioning: versioning, now: now)
        let stem = "\(prefix)_\(trimmed.replacingOccurrences(of: " ", with: "_"))"
        let files: [(String, String)] =
            isReversible(reversibility, source: source)
            ? [
                (stem + ".up.sql", "-- Add up migration script here\n"),
                (stem + ".down.sql", "-- Add down migration script here\n"),
            ]
            : [(stem + ".sql", "-- Add migration script here\n")]
        let version = Int64(prefix) ?? 0
        if source.contains(version: version) {
            throw MigrationError(
                .invalidSource, "a migration with version \(prefix) already exists in \(directory)", version: version)
        }
        var created: [String] = []
        for (name, contents) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            guard FileManager.default.createFile(atPath: base.resolve(path), contents: Data(contents.utf8)) else {
                throw MigrationError(.invalidSource, "\(path): cannot create the file")
            }
            created.append(path)
        }
        return created
    }

    private static func timestamp(_ date: Date) -> String {
        UTCTimestamp.format(date, "%Y%m%d%H%M%S")
    }

    private static func sequential(_ version: Int64) -> String {
        let digits = String(version)
        return digits.count >= 4 ? digits : String(repeating: "0", count: 4 - digits.count) + digits
    }
}
