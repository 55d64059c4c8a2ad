/// An error from PostgreSQL or from talking to it.
///
/// Carries what a person needs to act: the SQLSTATE, the server's message, detail and hint,
/// and the 1-based character position of the error in the statement when the server gives one.
public struct PostgresError: GodwitError {
    /// What kind of failure this is, independent of the message text.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }

        /// The connection could not be opened.
        public static let connectionFailed = Code("connectionFailed")
        /// An open connection broke (server restart, network, admin shutdown).
        public static let connectionLost = Code("connectionLost")
        /// The server answered a statement with an error; see `sqlState`.
        public static let server = Code("server")
        /// The connection was already closed by this process.
        public static let closed = Code("closed")
        /// libpq refused the request (bad parameters, protocol state).
        public static let client = Code("client")

        public var description: String { raw }
    }

    public var code: Code
    public var sqlState: String?
    public var severity: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// 1-based character position in the statement text, as the server reports it.
    public var position: Int?
    /// The server's context line (for errors inside functions).
    public var context: String?
    /// For a script of several statements: how many statements completed before this error,
    /// which is the 0-based index of the statement that failed.
    public var statementIndex: Int?

    public init(
        code: Code, message: String, sqlState: String? = nil, severity: String? = nil,
        detail: String? = nil, hint: String? = nil, position: Int? = nil, context: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.severity = severity
        self.detail = detail
        self.hint = hint
        self.position = position
        self.context = context
    }

    /// One line: the message, then SQLSTATE, detail and hint where present.
    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail, !detail.isEmpty { text += "; detail: \(detail)" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        return text
    }

    /// The description without the DETAIL: what may be shown to roles that may not see the
    /// rows an error is about (PostgreSQL's details quote row values: "Failing row contains
    /// (...)", "Key (id)=(...) already exists").
    public var summary: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        return text
    }

    /// True for failures that are worth trying again: the connection broke, or the server
    /// reports a serialization failure, deadlock, lock or statement timeout, or shutdown.
    ///
    /// A failure to connect counts only when it may go away by itself (the server is starting,
    /// restarting or unreachable), not when it will not (authentication, a missing database or
    /// role, a refused `pg_hba.conf` entry).
    public var isTransient: Bool {
        if code == .connectionLost { return true }
        if code == .connectionFailed { return isRetryableConnect }
        guard let sqlState else { return false }
        switch sqlState {
        case "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001",
            "08004":
            return true
        default:
            return false
        }
    }
}

/// A NOTICE, WARNING or other non-error message the server sent during a statement.
public struct PostgresNotice: Sendable, Equatable {
    public var severity: String
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?
}

/// A message received on a channel the connection LISTENs on.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// Process id of the server backend that sent it.
    public var senderPID: Int32
}
