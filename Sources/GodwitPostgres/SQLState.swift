/// A SQLSTATE: the five-character code of a PostgreSQL error, with names for the codes Godwit
/// acts on, as postgres-nio's `PostgresError.Code` names them.
///
/// The set is open (the server has hundreds of codes, and functions raise their own), so this is
/// a struct around the code rather than an enum: a code without a name here still compares and
/// prints. Write `SQLState.lockNotAvailable`, never `"55P03"`.
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The five characters, as the server sends them.
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The code itself, as `(SQLSTATE 55P03)` shows it.
    public var description: String { rawValue }

    // Class 08: connection exception.
    public static let connectionException = SQLState("08000")
    public static let sqlclientUnableToEstablishSqlconnection = SQLState("08001")
    public static let connectionDoesNotExist = SQLState("08003")
    public static let sqlserverRejectedEstablishmentOfSqlconnection = SQLState("08004")
    public static let connectionFailure = SQLState("08006")

    // Class 23: integrity constraint violation.
    public static let uniqueViolation = SQLState("23505")

    // Class 25: invalid transaction state.
    public static let activeSqlTransaction = SQLState("25001")

    // Class 3F: invalid schema name.
    public static let invalidSchemaName = SQLState("3F000")

    // Class 40: transaction rollback.
    public static let serializationFailure = SQLState("40001")
    public static let deadlockDetected = SQLState("40P01")

    // Class 42: syntax error or access rule violation.
    public static let syntaxError = SQLState("42601")
    public static let insufficientPrivilege = SQLState("42501")
    public static let undefinedColumn = SQLState("42703")
    public static let undefinedFunction = SQLState("42883")
    public static let undefinedTable = SQLState("42P01")
    public static let undefinedObject = SQLState("42704")

    // Class 55: object not in prerequisite state.
    public static let lockNotAvailable = SQLState("55P03")

    // Class 57: operator intervention.
    public static let queryCanceled = SQLState("57014")
    public static let adminShutdown = SQLState("57P01")
    public static let crashShutdown = SQLState("57P02")
    public static let cannotConnectNow = SQLState("57P03")

    // Godwit's own, raised by the queue's SQL functions.

    /// `GW001`: a job's lease is no longer the caller's (`batch_checkpoint`, `job_succeeded`,
    /// `batch_fence`); what the job did in that transaction is rolled back.
    public static let leaseLost = SQLState("GW001")
}
