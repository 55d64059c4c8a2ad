import GodwitPostgres

/// A pause or cancel requested of a running job (the `control` column), which its worker sees
/// at the next heartbeat and the job obeys at its next checkpoint.
public enum JobControl: String, Sendable, Codable, CaseIterable {
    case pause, cancel

    /// The interruption a running job's checkpoint raises for this request.
    var interruption: JobInterruption {
        switch self {
        case .pause: .paused
        case .cancel: .cancelled
        }
    }

    /// The `control` column as read: nil when nothing is requested. A request this build does
    /// not know is an error naming the job, never silently none.
    public init?(column text: String?, job id: Int64) throws {
        guard let text else { return nil }
        guard let control = JobControl(rawValue: text) else {
            throw PostgresError(
                code: .client,
                message: "job \(id) has control \"\(text)\", which this godwit does not know: upgrade godwit")
        }
        self = control
    }
}

/// What a person (`godwit job pause`, the dashboard's buttons) asks of a job: each calls the
/// queue's SQL function of the same name, `<schema>.pause(id)` and so on.
public enum JobAction: String, Sendable, CaseIterable {
    case pause, resume, cancel, retry
}
