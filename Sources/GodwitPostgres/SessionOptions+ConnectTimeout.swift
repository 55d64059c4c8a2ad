import Foundation

/// libpq's `connect_timeout` and `PGCONNECT_TIMEOUT`, which libpq applies only to a blocking
/// connect. Godwit connects without blocking (`PQconnectStartParams`, `PQconnectPoll`), so it
/// reads them itself, with libpq's meaning: whole seconds, zero or less waits as long as it
/// takes, and 1 counts as 2.
extension SessionOptions {
    /// The bound on one attempt to connect with `conninfo`: the string's own `connect_timeout`
    /// when it sets one (it wins over every other setting, as in libpq), else `connectTimeout`.
    /// Nil waits as long as it takes. Throws, in one line, on a value libpq would refuse, in
    /// the string or in `PGCONNECT_TIMEOUT`.
    public func connectBound(conninfo: String) throws -> Duration? {
        if case .failure(let error) = Self.environmentConnectTimeout { throw error }
        guard let given = (try? ConnectionString.options(conninfo))?["connect_timeout"], !given.isEmpty else {
            return connectTimeout
        }
        return try Self.connectTimeout(libpq: given, from: "connection option \"connect_timeout\"")
    }

    /// `PGCONNECT_TIMEOUT` from this process's environment, read once: the default of
    /// `connectTimeout` when set, as libpq takes it for the default of `connect_timeout`.
    static let environmentConnectTimeout: Result<Duration?, PostgresError>? = {
        guard let given = ProcessInfo.processInfo.environment["PGCONNECT_TIMEOUT"], !given.isEmpty else {
            return nil
        }
        return Result { () throws(PostgresError) in try connectTimeout(libpq: given, from: "PGCONNECT_TIMEOUT") }
    }()

    /// `connectTimeout`'s default: `PGCONNECT_TIMEOUT` when it is set and valid, else 10 s.
    static var defaultConnectTimeout: Duration? {
        switch environmentConnectTimeout {
        case .success(let bound)?: bound
        case .failure?, nil: .seconds(10)
        }
    }

    /// A `connect_timeout` value as libpq reads it: an integer with optional surrounding
    /// whitespace, in seconds; zero or less is no bound, and 1 is 2 (libpq's least, so that
    /// rounding never leaves almost no time). `source` names where it came from in the error.
    public static func connectTimeout(libpq value: String, from source: String) throws(PostgresError) -> Duration? {
        guard let seconds = Int32(value.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw PostgresError(code: .client, message: "invalid integer value \"\(value)\" for \(source)")
        }
        if seconds <= 0 { return nil }
        return .seconds(max(2, Int64(seconds)))
    }
}
