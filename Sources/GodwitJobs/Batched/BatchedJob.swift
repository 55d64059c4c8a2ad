import GodwitQueue

/// Runs batched data migrations (kind `batched`): keyset batches, each committed together with
/// its checkpoint, sized toward a target duration, throttled, resumable exactly where they
/// stopped.
///
/// An attempt checks the payload and makes the batch function in the enqueuer's session
/// (`BatchStatement`), reads the checkpoint it resumes from (`BatchProgress.start`), then runs
/// the batches (`BatchRunner`).
public struct BatchedJob: JobHandler {
    public let kind = JobKind.batched
    public var throttle: BatchThrottle
    public var schema: QueueSchema

    public init(throttle: BatchThrottle = BatchThrottle(), schema: QueueSchema = QueueSchema()) {
        self.throttle = throttle
        self.schema = schema
    }

    public func run(_ context: JobContext) async throws -> String? {
        let payload = try context.payload(as: Payload.self)
        try payload.check(job: context.job.id)
        return try await context.withSession { session in
            let statement = try await BatchStatement.prepare(
                for: payload, job: context.job, schema: schema, on: session)
            let checkpoint = try await context.pool.withConnection { [schema] connection in
                try await BatchProgress(schema: schema).start(job: context.job.id, payload: payload, on: connection)
            }
            var runner = BatchRunner(
                payload: payload, statement: statement, checkpoint: checkpoint, context: context, session: session,
                throttle: throttle, schema: schema)
            return try await runner.run()
        }
    }
}
