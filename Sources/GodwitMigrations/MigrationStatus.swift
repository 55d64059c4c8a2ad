/// One line of `godwit migrate info`.
public struct MigrationStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case installed
        case pending
        /// Applied, but the file changed since: sqlx's `installed (different checksum)`.
        case modified = "installed (different checksum)"
        /// Applied, and no file for it in the source.
        case missingFromSource = "installed (missing from source)"
        /// Applied, its up file gone and its `.down.sql` still there: present for run and
        /// check, as for sqlx, and revertible.
        case downOnly = "installed (only its down in the source)"
        /// The ledger row has `success = false`.
        case failed = "partially applied"
    }

    public var version: Int64
    public var description: String
    public var state: State
    public var reversible: Bool
    public var noTransaction: Bool
    public var localChecksum: [UInt8]?
    public var appliedChecksum: [UInt8]?
    public var installedOn: String?
    public var executionTime: Int64?
    public var path: String?
}
