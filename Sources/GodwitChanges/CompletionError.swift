import GodwitPostgres

/// Why `godwit change complete` did not complete a change: one line naming the change, and
/// for a refusal every reason (`change_blockers`), so that one run says all that is missing.
public struct CompletionError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// Evidence is missing: `blockers` says which.
        public static let blocked = Code("blocked")
        /// The command itself is refused (no reason for a waiver, a name that cannot be a file).
        public static let refused = Code("refused")
        public static let notFound = Code("not-found")
        /// The change is completed or aborted already.
        public static let wrongPhase = Code("wrong-phase")
        /// The DDL could not take its locks within the retries.
        public static let lockTimeout = Code("lock-timeout")
        /// A statement of complete's transaction failed (it rolled back).
        public static let failed = Code("failed")
        /// The folded migration's file could not be written or put in place.
        public static let file = Code("file")
        /// The session's role lacks `grant_change`'s rights.
        public static let notPermitted = Code("not-permitted")
    }

    public var code: Code
    public var change: String
    public var message: String
    /// For `.blocked`: each reason, one line each, as `change_blockers` words them.
    public var blockers: [String]

    public init(_ code: Code, change: String, _ message: String, blockers: [String] = []) {
        self.code = code
        self.change = change
        self.message = message
        self.blockers = blockers
    }

    /// `change media_caption: complete refused, nothing was applied: ...`.
    public var description: String { "change \(change): \(message)" }
}
