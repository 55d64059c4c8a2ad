import GodwitQueue

extension BatchedJob {
    /// What a batched job's payload holds: the definition checked at enqueue (`enqueue_batched`),
    /// and a shard's bounds.
    struct Payload: Decodable {
        var table: String
        var key: String
        var statement: String
        /// The enqueuer's search_path when the job was checked; the statement runs under it.
        var searchPath: String?
        var rowsTotal: Int64?
        var batchSize: Int
        var targetBatchMs: Int
        var pauseMs: Int
        var minBatchSize: Int
        var maxBatchSize: Int
        var lockTimeoutMs: Int
        var statementTimeoutMs: Int
        var maxAttempts: Int
        /// The longest wait on a batch's locks the size is steered by; absent in payloads made
        /// before the governor (the default then).
        var maxLockWaitMs: Int?
        /// The enqueuer's health query (`health-query`): the job holds while it is false or fails.
        var healthQuery: String?
        /// A shard of a parallel job covers the keys after `lower` (its first checkpoint, made
        /// at enqueue) up to and including `upper`; nil is no bound. As text, cast to the key's
        /// type by the server.
        var lower: String?
        var upper: String?
        /// Which shard of how many, for messages.
        var shard: Int?
        var shards: Int?

        static let defaultMaxLockWaitMs = 10

        /// The wait the batch size is steered by; nil (0) steers by duration alone.
        var maxLockWait: Duration? {
            let ms = maxLockWaitMs ?? Self.defaultMaxLockWaitMs
            return ms > 0 ? .milliseconds(ms) : nil
        }

        enum CodingKeys: String, CodingKey {
            case table, key, statement
            case searchPath = "search_path"
            case rowsTotal = "rows_total"
            case batchSize = "batch_size"
            case targetBatchMs = "target_batch_ms"
            case pauseMs = "pause_ms"
            case minBatchSize = "min_batch_size"
            case maxBatchSize = "max_batch_size"
            case lockTimeoutMs = "lock_timeout_ms"
            case statementTimeoutMs = "statement_timeout_ms"
            case maxAttempts = "max_attempts"
            case maxLockWaitMs = "max_lock_wait_ms"
            case healthQuery = "health_query"
            case lower, upper, shard, shards
        }

        /// Checks what a hand-made payload could get wrong before anything of it reaches SQL.
        func check(job: Int64) throws {
            func fail(_ message: String) -> InvalidPayload { InvalidPayload("job \(job) (batched): \(message)") }
            guard batchSize >= 1, minBatchSize >= 1, maxBatchSize >= minBatchSize,
                (minBatchSize...maxBatchSize).contains(batchSize)
            else { throw fail("batch sizes must satisfy 1 <= min_batch_size <= batch_size <= max_batch_size") }
            guard targetBatchMs >= 1, pauseMs >= 0, lockTimeoutMs >= 0, statementTimeoutMs >= 0, maxAttempts >= 1,
                (maxLockWaitMs ?? 0) >= 0
            else {
                throw fail(
                    "target_batch_ms and max_attempts must be positive, and pauses, timeouts and max_lock_wait_ms not negative"
                )
            }
            if let healthQuery, healthQuery.contains(";") {
                throw fail("the health query must be one query with no \";\" in it")
            }
        }
    }
}
