import GodwitPostgres

/// A change that cannot be planned, started or aborted: one line naming the file and line
/// (plan, start) or the change (abort).
public struct ChangeError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// The live schema refuses the file: an unknown table or column, a bad type, an
        /// expression that does not type-check, no usable key, an overlapping change.
        public static let refused = Code("refused")
        /// No change of that name, or none in a phase that allows the command.
        public static let notFound = Code("not-found")
        public static let wrongPhase = Code("wrong-phase")
        /// The DDL could not take its locks within the retries.
        public static let lockTimeout = Code("lock-timeout")
        /// The session's role lacks `grant_change`'s rights, or (complete, abort) is not a
        /// member of the role that started the change.
        public static let notPermitted = Code("not-permitted")
    }

    public var code: Code
    /// The change file and its 1-based line, when the error is about one.
    public var file: String?
    public var line: Int?
    public var message: String

    public init(_ code: Code, file: String? = nil, line: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        switch (file, line) {
        case (let file?, let line?): return "\(file):\(line): \(message)"
        case (let file?, nil): return "\(file): \(message)"
        default: return message
        }
    }
}
