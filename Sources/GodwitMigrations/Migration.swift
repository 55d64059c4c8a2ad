import Crypto
import Foundation
import GodwitPostgres

/// One migration file, as sqlx resolves it.
public struct Migration: Sendable, Equatable {
    /// Which file of a migration this is; the suffix decides.
    public enum Kind: String, Sendable, Codable {
        /// `V_description.sql`: applied, never reverted.
        case simple
        /// `V_description.up.sql`
        case up
        /// `V_description.down.sql`
        case down

        /// The file-name suffix sqlx gives this kind.
        public var suffix: String {
            switch self {
            case .simple: ".sql"
            case .up: ".up.sql"
            case .down: ".down.sql"
            }
        }

        /// The word sqlx prints for it: `migrate` or `revert`.
        public var label: String { self == .down ? "revert" : "migrate" }

        /// The kind a file name (after the version and `_`) denotes.
        public init(fileNameRest rest: String) {
            if rest.hasSuffix(".up.sql") {
                self = .up
            } else if rest.hasSuffix(".down.sql") {
                self = .down
            } else {
                self = .simple
            }
        }
    }

    public var version: Int64
    public var description: String
    public var kind: Kind
    /// The file's bytes exactly as on disk.
    public var contents: [UInt8]
    /// SHA-384 of `contents` (less the config's `ignored-chars`), as stored in the ledger's
    /// `checksum`.
    public var checksum: [UInt8]
    /// The file begins with `-- no-transaction`.
    public var noTransaction: Bool
    /// Where the file was read from, for error messages.
    public var path: String

    public init(
        version: Int64, description: String, kind: Kind, contents: [UInt8], path: String,
        ignoredChars: Set<Unicode.Scalar> = []
    ) {
        self.version = version
        self.description = description
        self.kind = kind
        self.contents = contents
        self.checksum = Migration.checksum(of: contents, ignoring: ignoredChars)
        // sqlx tests the raw text, so a byte-order mark before the directive hides it there;
        // matching that keeps one file behaving the same under both tools.
        self.noTransaction = contents.starts(with: Array("-- no-transaction".utf8))
        self.path = path
    }

    /// SHA-384 of the raw bytes: no normalisation of line endings, BOM or directives.
    public static func checksum(of bytes: [UInt8]) -> [UInt8] {
        Array(SHA384.hash(data: bytes))
    }

    /// sqlx 0.9's checksum with `ignored-chars`: SHA-384 of the file's UTF-8 text with every
    /// occurrence of those characters (Unicode scalars, so `"\r"` drops each CR and
    /// `"\uFEFF"` a byte-order mark) left out. With none ignored it is the raw bytes' hash.
    public static func checksum(of bytes: [UInt8], ignoring ignored: Set<Unicode.Scalar>) -> [UInt8] {
        guard !ignored.isEmpty else { return checksum(of: bytes) }
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars where !ignored.contains(scalar) {
            kept.append(contentsOf: String(scalar).utf8)
        }
        return checksum(of: kept)
    }

    /// The SQL to send to the server: the file's text without a UTF-8 byte-order mark, which
    /// PostgreSQL would reject as a syntax error. The checksum still covers the mark.
    public var sql: String {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let body = contents.starts(with: bom) ? contents.dropFirst(3) : contents[...]
        return String(decoding: body, as: UTF8.self)
    }

    /// Whether the file holds nothing but whitespace.
    public var isEmpty: Bool { contents.allSatisfy { [0x20, 0x09, 0x0A, 0x0D].contains($0) } }

    /// Throws when the file is empty: run, it would be recorded as done having done nothing,
    /// and it is almost always a file saved before its SQL was written.
    public func refuseIfEmpty() throws {
        guard isEmpty else { return }
        throw MigrationError(
            .invalidSource, "\(path): the migration is empty; write its SQL (or a comment saying why it does nothing)",
            version: version)
    }

    /// Lowercase hex of the checksum, as `sqlx migrate info` prints it.
    public var checksumHex: String { checksum.hexEncoded }
}
