import GodwitPostgres
import GodwitQueue
import Logging

/// One attempt of one batched job: its batches in the enqueuer's session, the queue's
/// bookkeeping (progress, holds, history) over the worker's own connections.
struct BatchRunner {
    let payload: BatchedJob.Payload
    let statement: BatchStatement
    let context: JobContext
    /// The enqueuer's session, where the job's SQL runs.
    let session: Connection
    let throttle: BatchThrottle
    let schema: QueueSchema
    let clock = ContinuousClock()

    var controller: BatchSizeController
    /// The last key done, from the checkpoint; nil before the first batch.
    var cursor: String?
    var rowsDone: Int64
    var rowsChanged: Int64
    var batchesDone: Int64
    let rowsTotal: Int64?
    /// Recent batches (rows, wall seconds including pauses), for the rate.
    var recent: [(rows: Int, seconds: Double)] = []
    var holding: String?
    var lastHoldCheck: ContinuousClock.Instant?
    /// When a batch last saw another session using the table (holding it to write or lock rows,
    /// or waiting on the batch).
    var sharedSeenAt: ContinuousClock.Instant?
    /// How long the table counts as shared after the last sign of another session: an
    /// application's short transactions are caught by some batches' look at the lock table, not
    /// by every one.
    static let sharedMemory: Duration = .seconds(10)
    /// Until a batch has seen another session, the table counts as shared for this long after
    /// the attempt starts: one look at the lock table a batch can miss an application whose
    /// transactions are short, and the first batches are the ones that would grow too fast.
    static let aloneAfter: Duration = .seconds(1)
    /// When this attempt started.
    let startedAt = ContinuousClock.now
    /// The size reason last written to `job_progress.size_reason`, and when.
    var writtenReason: (text: String, at: ContinuousClock.Instant)?

    /// Starts from `checkpoint`, which `BatchProgress.start` read (and made, for a job that had
    /// no progress row); nothing here touches the database.
    init(
        payload: BatchedJob.Payload, statement: BatchStatement, checkpoint: BatchProgress.Checkpoint,
        context: JobContext, session: Connection, throttle: BatchThrottle, schema: QueueSchema
    ) {
        self.payload = payload
        self.statement = statement
        self.context = context
        self.session = session
        self.throttle = throttle
        self.schema = schema
        cursor = checkpoint.cursor
        rowsDone = checkpoint.rowsDone
        rowsChanged = checkpoint.rowsChanged
        batchesDone = checkpoint.batchesDone
        rowsTotal = checkpoint.rowsTotal
        controller = BatchSizeController(
            initial: checkpoint.batchSize ?? payload.batchSize,
            target: .milliseconds(payload.targetBatchMs), minimum: payload.minBatchSize,
            maximum: payload.maxBatchSize,
            maxLockWait: payload.maxLockWait)
    }

    /// The job's progress row, for the size and hold reasons.
    var progress: BatchProgress { BatchProgress(schema: schema) }
    /// The job's batch history, for failed attempts and trimming.
    var history: BatchHistory { BatchHistory(schema: schema) }

    /// `lock-timeout`: the longest a batch ever waits for a lock; nil (0) waits as long as it takes.
    var fullLockTimeout: Duration? { payload.lockTimeoutMs > 0 ? .milliseconds(payload.lockTimeoutMs) : nil }

    /// How long a batch first waits for another session's lock while it holds its own rows. Each
    /// wait of the application behind those rows lasts as long, so it is `max-lock-wait-ms` (or
    /// `lock-timeout` when shorter, or when the governor is off): a batch gives up fast, is
    /// halved and retried, instead of holding a convoy. Only at the minimum size, holding few
    /// rows, does it wait longer: twice as long each time, up to `lock-timeout`.
    var shortLockTimeout: Duration? {
        guard let bound = payload.maxLockWait else { return fullLockTimeout }
        return min(bound, fullLockTimeout ?? bound)
    }

    /// Runs batches until the table is done, holding, retrying and stopping as the job is
    /// asked; returns the job's result.
    mutating func run() async throws -> String? {
        let started = clock.now
        var lastLog = clock.now
        if let cursor {
            context.logger.info(
                "resuming batched job from its checkpoint",
                metadata: ["job": "\(context.job.id)", "cursor": "\(cursor)", "rows_done": "\(rowsDone)"])
        }
        while true {
            try context.checkpoint()
            if try await holdIfNeeded() { continue }
            let batchStarted = clock.now
            var attempt = 1
            var lockTimeout = shortLockTimeout
            let result: BatchResult
            while true {
                do {
                    result = try await runBatch(attempt: attempt, lockTimeout: lockTimeout)
                    break
                } catch var failure as BatchFailure {
                    (failure.first, failure.last) = await nextBounds()
                    try await recordFailedBatch(failure, attempt: attempt)
                    let bounds = "keys \(failure.first ?? "?")..\(failure.last ?? "?")"
                    // Gave up waiting for another session's lock under the short bound: not an
                    // attempt. Retry at once, halved; at the minimum size, wait twice as long.
                    if failure.isLockTimeout, let bound = lockTimeout, bound < fullLockTimeout ?? .seconds(Int64.max) {
                        if !controller.shrinkAfterLockTimeout(bound: bound) {
                            let longer = fullLockTimeout.map { min(bound * 2, $0) } ?? bound * 2
                            lockTimeout = longer
                            controller.waitLonger(bound: longer)
                        }
                        context.logger.debug(
                            "batch gave up waiting for a lock; retrying smaller",
                            metadata: [
                                "job": "\(context.job.id)", "batch": "\(batchesDone + 1)", "keys": "\(bounds)",
                                "next_size": "\(controller.size)",
                                "lock_timeout_ms": "\(Int(lockTimeout?.milliseconds ?? 0))",
                            ])
                        try await writeSizeReason(force: true)
                        try context.checkpoint()
                        continue
                    }
                    guard failure.retryable, attempt < payload.maxAttempts else {
                        throw JobFailure(
                            "batch \(batchesDone + 1) (\(bounds)) failed\(attempt > 1 ? " \(attempt) times" : ""): "
                                + "\(failure.error.summary); retry the job to resume from key \(cursor ?? "(start)")",
                            detail: failure.error.detail)
                    }
                    controller.shrinkAfterTimeout()
                    try await writeSizeReason(force: true)
                    let delay = Backoff(base: .milliseconds(100), max: .seconds(5)).delay(afterAttempt: attempt)
                    context.logger.warning(
                        "batch failed; retrying smaller",
                        metadata: [
                            "job": "\(context.job.id)", "batch": "\(batchesDone + 1)", "keys": "\(bounds)",
                            "attempt": "\(attempt)", "next_size": "\(controller.size)", "error": "\(failure.error)",
                        ])
                    try await sleepCheckingInterruptions(delay)
                    attempt += 1
                }
            }
            guard case .committed(let rows, _, let first, let last, let duration) = result else { break }
            if payload.pauseMs > 0 { try await sleepCheckingInterruptions(.milliseconds(payload.pauseMs)) }
            let wall = clock.now - batchStarted
            recent.append((rows, wall.seconds))
            if recent.count > 20 { recent.removeFirst() }
            if batchesDone % 100 == 0 { try await trimHistory() }
            try await writeSizeReason()
            if clock.now - lastLog >= throttle.progressLogInterval {
                lastLog = clock.now
                logProgress(first: first, last: last, rows: rows, duration: duration)
            }
        }
        let elapsed = (clock.now - started).seconds
        context.logger.info(
            "batched job finished",
            metadata: [
                "job": "\(context.job.id)", "rows_done": "\(rowsDone)", "rows_changed": "\(rowsChanged)",
                "batches": "\(batchesDone)",
            ])
        return
            #"{"rows_done": \#(rowsDone), "rows_changed": \#(rowsChanged), "batches": \#(batchesDone), "seconds": \#((elapsed * 1000).rounded() / 1000)}"#
    }
}
