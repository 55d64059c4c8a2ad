import GodwitPostgres

/// A job this worker has claimed: what the handler needs, and the lease that fences its writes.
public struct ClaimedJob: Sendable {
    public var id: Int64
    public var kind: JobKind
    public var name: String
    /// The payload as JSON text.
    public var payload: String
    /// This attempt's number, from 1.
    public var attempt: Int
    public var maxAttempts: Int
    /// The token of this claim. Every write for the job requires it to be current.
    public var leaseToken: Int64
    /// The role that enqueued the job: the job runs with its rights.
    public var enqueuedBy: String
    /// Seconds from when the job was due (enqueued, or its retry became due) to this claim.
    public var waitedSeconds: Double

    public init(
        id: Int64, kind: JobKind, name: String, payload: String, attempt: Int, maxAttempts: Int, leaseToken: Int64,
        enqueuedBy: String, waitedSeconds: Double = 0
    ) {
        self.enqueuedBy = enqueuedBy
        self.waitedSeconds = waitedSeconds
        self.id = id
        self.kind = kind
        self.name = name
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseToken = leaseToken
    }
}
