/// One committed or failed batch of a batched job, as `<schema>.batches` keeps it.
public struct BatchRecord: Sendable, Equatable {
    /// The batch's number in its job (a failed attempt has the number of the batch it tried).
    public var seq: Int64
    public var rows: Int
    public var batchSize: Int
    public var durationMS: Double
    /// The server's error for a failed attempt; nil for a committed batch.
    public var error: String?
    /// Rows the batch's statement changed (0 for a failed attempt, whose changes rolled back).
    public var rowsChanged: Int64
    /// Sessions that waited on the batch's locks as it committed, and the longest wait.
    public var lockWaiters: Int
    public var lockWaitMS: Double

    public init(
        seq: Int64, rows: Int, batchSize: Int, durationMS: Double, error: String?, rowsChanged: Int64 = 0,
        lockWaiters: Int = 0, lockWaitMS: Double = 0
    ) {
        self.seq = seq
        self.rows = rows
        self.batchSize = batchSize
        self.durationMS = durationMS
        self.error = error
        self.rowsChanged = rowsChanged
        self.lockWaiters = lockWaiters
        self.lockWaitMS = lockWaitMS
    }
}
