/// What a worker tells whoever watches it (the metrics of `godwit worker --http`).
///
/// Calls come from the worker's tasks as things happen; an observer must return quickly and
/// never block (record a number, nothing more). Every method has an empty default.
public protocol WorkerObserver: Sendable {
    /// A job was claimed and starts an attempt, `waited` after it was due.
    func jobStarted(kind: JobKind, waited: Duration)
    /// An attempt ended, how.
    func jobFinished(kind: JobKind, outcome: JobOutcome.Label, duration: Duration)
    /// Jobs of dead workers put back in the queue by this worker.
    func jobsRescued(_ count: Int)
    /// An attempt lost its lease (another worker took the job over).
    func leaseLost(kind: JobKind)
}

extension WorkerObserver {
    public func jobStarted(kind: JobKind, waited: Duration) {}
    public func jobFinished(kind: JobKind, outcome: JobOutcome.Label, duration: Duration) {}
    public func jobsRescued(_ count: Int) {}
    public func leaseLost(kind: JobKind) {}
}

/// What a worker is doing, for a health check.
public struct WorkerStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case starting, running, draining, stopped
    }

    public var state: State
    public var runningJobs: Int
    public var workerID: String

    public init(state: State, runningJobs: Int, workerID: String) {
        self.state = state
        self.runningJobs = runningJobs
        self.workerID = workerID
    }
}
