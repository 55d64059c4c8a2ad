import GodwitPostgres

/// Why a migration command refused to act or failed, with the file, line and version concerned.
///
/// The `description` is the one line a person at the terminal sees.
public struct MigrationError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }

        /// The migrations folder does not exist (a misspelt `--source` or `migrations-dir`).
        public static let missingSource = Code("missingSource")
        /// The migrations folder holds a file that cannot be a migration.
        public static let invalidSource = Code("invalidSource")
        /// A `sqlx.toml` cannot be read, or holds a setting that is not valid.
        public static let invalidConfig = Code("invalidConfig")
        /// `baseline` was asked to record a version that the ledger already has.
        public static let alreadyApplied = Code("alreadyApplied")
        /// `repair` found a change of content, not of line endings, BOM or trailing whitespace.
        public static let contentChanged = Code("contentChanged")
        /// A ledger row has `success = false`: a previous run stopped half-way.
        public static let dirty = Code("dirty")
        /// An applied migration's file no longer has the checksum it was applied with.
        public static let modified = Code("modified")
        /// An applied migration has no file in the source.
        public static let missing = Code("missing")
        /// `--target-version` names a version the source does not have.
        public static let versionNotPresent = Code("versionNotPresent")
        /// `run --target-version` is older than what is already applied.
        public static let versionTooOld = Code("versionTooOld")
        /// `revert --target-version` is newer than what is applied.
        public static let versionTooNew = Code("versionTooNew")
        /// A migration to revert has no `.down.sql`.
        public static let notReversible = Code("notReversible")
        /// The SQL of a migration failed on the server.
        public static let execution = Code("execution")
        /// A migration could not take a lock within its lock timeout, every time it tried.
        public static let lockTimeout = Code("lockTimeout")
        /// A `-- no-transaction` migration ran, but an index it builds is INVALID.
        public static let invalidIndex = Code("invalidIndex")

        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The version concerned, when there is one.
    public var version: Int64?
    /// The server's error, for `.execution`.
    public var underlying: PostgresError?

    public init(_ code: Code, _ message: String, version: Int64? = nil, underlying: PostgresError? = nil) {
        self.code = code
        self.message = message
        self.version = version
        self.underlying = underlying
    }

    public var description: String { message }
}
