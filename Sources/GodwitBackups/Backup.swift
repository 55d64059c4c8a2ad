/// A verified `pg_dump` of the database, as recorded in `<schema>.backups`.
public struct Backup: Sendable, Codable, Equatable {
    /// The file's absolute path.
    public var file: String
    public var sizeBytes: Int64
    public var sha256: String
    public var database: String
    /// How many entries the dump's table of contents has (0 in `list`, which reads no file).
    public var entries: Int
    /// How many blocks of table data and large objects pg_restore read and decompressed in
    /// full when the backup was verified (0 in `list`).
    public var dataBlocks: Int
    public var createdAt: String
    /// Why it was taken (`BackupReason`); nil for backups recorded before queue schema step 4.
    public var reason: String?

    public init(
        file: String, sizeBytes: Int64, sha256: String, database: String, entries: Int, dataBlocks: Int,
        createdAt: String, reason: String? = nil
    ) {
        self.file = file
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.database = database
        self.entries = entries
        self.dataBlocks = dataBlocks
        self.createdAt = createdAt
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case file, sha256, database, entries, reason
        case sizeBytes = "size_bytes"
        case dataBlocks = "data_blocks"
        case createdAt = "created_at"
    }

    /// The command that restores this backup: `godwit backup restore /abs/file.dump --yes`,
    /// the path quoted for a POSIX shell when it needs to be.
    public var restoreCommand: String {
        "godwit backup restore \(shellQuoted(file)) --yes"
    }
}

/// `text` as one word for a POSIX shell: as it is when it has only safe characters, else in
/// single quotes (a quote inside becomes `'\''`).
func shellQuoted(_ text: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%")
    if !text.isEmpty, text.allSatisfy(safe.contains) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// What `BackupManager.verify` checked, and found sound.
public struct BackupVerification: Sendable, Codable, Equatable {
    /// How the file's SHA-256 was compared with the one recorded when it was taken.
    public enum Record: String, Sendable, Codable {
        /// It matched the record in `<schema>.backups`.
        case matched
        /// No record names this file (or there is no `<schema>.backups` table).
        case notRecorded = "not_recorded"
        /// No database was given to compare with.
        case notChecked = "not_checked"
    }

    /// The file's absolute path.
    public var file: String
    /// Every byte of the file was read: by pg_restore, and again for the SHA-256.
    public var sizeBytes: Int64
    public var sha256: String
    /// Entries in the table of contents.
    public var entries: Int
    /// Blocks of table data and large objects, each read and decompressed by pg_restore.
    public var dataBlocks: Int
    public var record: Record
    /// When the record the SHA-256 matched was made.
    public var recordedAt: String?
    /// The table the record was looked up in, quoted (`"godwit".backups`).
    public var recordTable: String

    enum CodingKeys: String, CodingKey {
        case file, sha256, entries, record
        case sizeBytes = "size_bytes"
        case dataBlocks = "data_blocks"
        case recordedAt = "recorded_at"
        case recordTable = "record_table"
    }

    /// One line saying what was checked, for people.
    public var summary: String {
        let comparison =
            switch record {
            case .matched: "matches the one recorded in \(recordTable) at \(recordedAt ?? "?")"
            case .notRecorded: "(no record of this file in \(recordTable) to compare with)"
            case .notChecked: "(not compared with a record: no database given)"
            }
        return
            "\(file): ok, \(entries) entries, \(dataBlocks) data blocks read and decompressed in full (\(sizeBytes) bytes), sha256 \(sha256) \(comparison)"
    }
}
