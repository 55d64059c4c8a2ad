import GodwitPostgres

/// A fleet command that cannot go on: one line naming the targets file and line, the target, or
/// the run.
public struct FleetError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// The targets (a file's line, or a row of `--targets-query`) are refused before
        /// anything runs: a duplicate name, a bad connection string, a schema name that is not
        /// an identifier, an empty fleet.
        public static let badTargets = Code("bad-targets")
        /// Options that cannot work together or with these targets (`--parallel 0`, a canary
        /// larger than the fleet).
        public static let badOptions = Code("bad-options")
        /// No run of that id in the control database, or one in a state the command refuses.
        public static let notFound = Code("not-found")
        public static let wrongState = Code("wrong-state")
        /// One or more targets did not succeed (the command's summary names them).
        public static let targetsFailed = Code("targets-failed")
    }

    public var code: Code
    /// The targets file and its 1-based line, when the error is about one.
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
