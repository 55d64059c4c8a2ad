import GodwitPostgres

/// A backup that cannot be taken, verified or restored. The message says what failed and names
/// the file.
public struct BackupError: GodwitError {
    /// What kind of failure, for callers that react to one (the message is for people).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// The file is not there.
        public static let missingFile = Code("missing file")
        /// The file or its folder cannot be created, written or read.
        public static let io = Code("i/o")
        /// The file or its folder is not this user's alone: another user owns it, or group or
        /// others may write to it, so its contents could be changed or swapped.
        public static let untrusted = Code("untrusted")
        /// pg_dump failed.
        public static let dumpFailed = Code("dump failed")
        /// pg_restore cannot read the file to its end: not a custom-format dump, damaged or
        /// truncated.
        public static let damaged = Code("damaged")
        /// The file's SHA-256 is not the one recorded when it was taken: it changed since.
        public static let checksumMismatch = Code("checksum mismatch")
        /// The restore failed; it ran in one transaction, so nothing was changed.
        public static let restoreFailed = Code("restore failed")
        /// A restore was refused: a batched job on the schemas it replaces is running, or
        /// queued with a checkpoint, and would go on from a checkpoint ahead of the data.
        public static let jobsRunning = Code("batched jobs running")
    }

    public var code: Code
    /// The backup file concerned.
    public var file: String
    public var message: String

    public init(_ code: Code, file: String, _ message: String) {
        self.code = code
        self.file = file
        self.message = message
    }

    public var description: String { message }
}
