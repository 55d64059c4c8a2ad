import GodwitPostgres

/// The states of a job, as in the `job_state` enum.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, paused, succeeded, failed, cancelled

    /// The states a job ends in: it runs no more unless someone retries it.
    public static let finished: Set<JobState> = [.succeeded, .failed, .cancelled]

    /// Whether the job has ended (see `finished`).
    public var isFinished: Bool { Self.finished.contains(self) }

    /// A state read from the database; one this build does not know is an error naming the
    /// job, never silently another state.
    public init(text: String, job id: Int64) throws {
        guard let state = JobState(rawValue: text) else {
            throw PostgresError(
                code: .client,
                message: "job \(id) is in state \"\(text)\", which this godwit does not know: upgrade godwit")
        }
        self = state
    }
}
