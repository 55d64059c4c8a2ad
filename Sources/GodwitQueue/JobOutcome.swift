/// How an attempt ended, as the worker records it (`JobQueue.finish`).
public enum JobOutcome: Sendable {
    case succeeded(result: String?)
    /// Succeeded, and the success was recorded in the job's own transaction (an sql job's
    /// `job_succeeded`): nothing is left to write.
    case recorded(result: String?)
    /// Failed for good: no attempts left, or an error retrying cannot fix. `detail` is the
    /// server's DETAIL, stored apart (`last_error_detail`) since it may quote row values.
    case failed(error: String, result: String?, detail: String? = nil)
    /// Failed, and will run again after `delay`.
    case retry(error: String, delay: Duration, detail: String? = nil)
    /// Stopped at a checkpoint because someone paused it.
    case paused
    /// Stopped at a checkpoint because someone cancelled it.
    case cancelled
    /// The worker is shutting down: back to the queue, and the attempt does not count.
    case handBack

    /// An outcome without its particulars: what the metrics count by (`outcome` label).
    public enum Label: String, Sendable, CaseIterable {
        case succeeded, failed, retry, paused, cancelled
        case handedBack = "handed_back"
    }

    /// This outcome's label; a success recorded in the job's own transaction is a success.
    public var label: Label {
        switch self {
        case .succeeded, .recorded: .succeeded
        case .failed: .failed
        case .retry: .retry
        case .paused: .paused
        case .cancelled: .cancelled
        case .handBack: .handedBack
        }
    }
}
