import GodwitPostgres

/// An applied migration whose file no longer has the checksum the ledger stores, and why.
public struct ChecksumMismatch: Sendable, Equatable {
    public var version: Int64
    public var description: String
    public var path: String
    public var appliedChecksum: [UInt8]
    public var fileChecksum: [UInt8]
    /// The whitespace-only differences, or nil when the content changed (or no variant of the
    /// file explains the stored checksum).
    public var drift: ChecksumDrift?
    /// With the applied text given: the line diff of a change of content.
    public var contentDiff: [String]

    public var repairable: Bool { drift != nil }
}

extension Migrator {
    /// Every applied migration (or only `version`) whose file's checksum differs from the
    /// ledger's, each with what differs. Reads only.
    ///
    /// `appliedText`, the file as it was applied (from version control), is compared with
    /// the file line by line; it must have the stored checksum. Without it, variants of the
    /// file are hashed (see `ChecksumDrift`).
    public func checksumMismatches(
        on connection: Connection, version: Int64? = nil, appliedText: [UInt8]? = nil
    ) async throws -> [ChecksumMismatch] {
        let applied = try await ledger.applied(on: connection)
        if let version, !applied.contains(where: { $0.version == version }) {
            throw MigrationError(
                .versionNotPresent, "migration \(version) is not in \(ledger.table), so there is nothing to repair",
                version: version)
        }
        var mismatches: [ChecksumMismatch] = []
        for row in applied where row.success && (version == nil || row.version == version) {
            guard let local = source.up(for: row.version), local.checksum != row.checksum else { continue }
            var mismatch = ChecksumMismatch(
                version: row.version, description: row.description, path: local.path, appliedChecksum: row.checksum,
                fileChecksum: local.checksum, drift: nil, contentDiff: [])
            if let appliedText {
                let matches =
                    Migration.checksum(of: appliedText) == row.checksum
                    || Migration.checksum(of: appliedText, ignoring: config.ignoredChars) == row.checksum
                guard matches else {
                    throw MigrationError(
                        .contentChanged,
                        "the applied text given does not have the checksum \(ledger.table) stores for migration \(row.version) (\(row.checksum.hexEncoded)): it is not what was applied",
                        version: row.version)
                }
                let compared = ChecksumDrift.compare(applied: appliedText, file: local.contents)
                mismatch.drift = compared.drift
                mismatch.contentDiff = compared.contentDiff
            } else {
                mismatch.drift = ChecksumDrift.explain(
                    stored: row.checksum, file: local.contents, ignoredChars: config.ignoredChars)
            }
            mismatches.append(mismatch)
        }
        return mismatches
    }

    /// Rewrites the ledger's checksum of each mismatch to the file's, so that sqlx and Godwit
    /// accept the file again, when every one of them differs only in whitespace.
    ///
    /// Under the migration lock, in one transaction: when any mismatch is a change of content
    /// (or unexplained), nothing is rewritten.
    @discardableResult
    public func repair(
        on connection: Connection, version: Int64? = nil, appliedText: [UInt8]? = nil
    ) async throws -> [ChecksumMismatch] {
        try await withLock(on: connection, dryRun: false) {
            let mismatches = try await checksumMismatches(on: connection, version: version, appliedText: appliedText)
            if let refused = mismatches.first(where: { !$0.repairable }) {
                throw Self.contentChanged(refused, hadAppliedText: appliedText != nil)
            }
            guard !mismatches.isEmpty else { return [] }
            try await connection.withTransaction { connection in
                for mismatch in mismatches {
                    try await ledger.setChecksum(mismatch.fileChecksum, version: mismatch.version, on: connection)
                }
            }
            return mismatches
        }
    }

    /// The refusal for a mismatch that is not whitespace only.
    public static func contentChanged(_ mismatch: ChecksumMismatch, hadAppliedText: Bool) -> MigrationError {
        let why =
            hadAppliedText
            ? "its content changed since it was applied (see the diff)"
            : "no variant of the file in line endings, byte-order mark or trailing whitespace has the stored checksum, so its content changed since it was applied (give the applied text with --applied FILE to see the diff)"
        return MigrationError(
            .contentChanged,
            "migration \(mismatch.version) (\(mismatch.path)) cannot be repaired: \(why); nothing was rewritten",
            version: mismatch.version)
    }
}
