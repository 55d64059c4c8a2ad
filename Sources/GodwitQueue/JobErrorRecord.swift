import GodwitPostgres

/// One attempt's error, from `<schema>.job_errors`: what `job show` lists and the job page shows.
///
/// The server's DETAIL (`detail`) may quote row values: it is read only when asked for and the
/// reader may see the job's details and read the column, and it stays out of the JSON.
public struct JobErrorRecord: Sendable, Encodable, Equatable {
    public var attempt: Int
    public var workerID: String?
    public var error: String
    /// When, ISO 8601.
    public var at: String
    /// Seconds from then to the database's `now()`.
    public var ago: Double
    /// The server's DETAIL, when it was asked for and may be read; nil otherwise.
    public var detail: String?

    enum CodingKeys: String, CodingKey {
        case attempt, error, at
        case workerID = "worker_id"
    }

    init(row: PostgresRow) throws {
        attempt = try row.int("attempt")
        workerID = row["worker_id"]
        error = try row.string("error")
        at = try row.string("at")
        ago = row["ago"].flatMap(Double.init) ?? 0
        detail = row["error_detail"]
    }
}
