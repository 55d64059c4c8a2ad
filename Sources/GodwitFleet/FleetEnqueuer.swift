import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import Synchronization

/// `godwit fleet enqueue`: one batched job, parsed once, validated and enqueued in every
/// target's own queue.
///
/// Each target's enqueue is the ordinary `godwit job enqueue`, over a session of its own that
/// logs in with the target's connection string: the definition is checked against that
/// target's tables (nothing of the statement runs), and the job records that session's
/// search_path, under which its batches run. A schema target's session searches its schema
/// first, so a job file that names `items` means each tenant's own `items`. A target where the
/// job does not validate (or that cannot be reached) fails alone, with a one-line reason; the
/// others are enqueued all the same.
public struct FleetEnqueuer: Sendable {
    public var definition: BatchedJobDefinition
    /// The job file as given, for messages (`file:line: ...`).
    public var file: String
    /// Godwit's schema in every target (with the jobs' part, installed where missing).
    public var schema: QueueSchema
    /// Targets enqueued at once.
    public var parallel = 4
    public var connectTimeout: Duration = .seconds(10)

    public init(definition: BatchedJobDefinition, file: String, schema: QueueSchema) {
        self.definition = definition
        self.file = file
        self.schema = schema
    }

    /// How one target's enqueue ended.
    public struct Result: Sendable {
        public var target: FleetTarget
        /// The job in the target's queue; nil when it failed.
        public var jobID: Int64?
        /// One line: why it failed.
        public var error: String?
        /// What was accepted but is worth a look (`file:line: ...`).
        public var warnings: [String] = []
        /// The job was in the target's queue already, from the resumed run's earlier attempt
        /// (`lastAttempts`), and was not enqueued again.
        public var foundEnqueued = false
    }

    /// Enqueues on every target, `parallel` at a time; `onResult` is told of each as it ends.
    /// Returns the results in the targets' order.
    ///
    /// `lastAttempts` is for a resumed run: when each target's earlier attempt started (UTC,
    /// `YYYY-MM-DD HH:MM:SS`, as `fleet_targets.started_at` reads). That attempt may have
    /// enqueued the job and died before recording it, so a target whose queue holds a job of
    /// this name, not a shard, that this login enqueued since then (less a minute, for the
    /// servers' clocks) keeps that job instead of getting a second one.
    public func enqueue(
        on targets: [FleetTarget], lastAttempts: [String: String] = [:],
        onStart: @escaping @Sendable (FleetTarget) async -> Void = { _ in },
        onResult: @escaping @Sendable (Result) async -> Void = { _ in }
    ) async -> [Result] {
        await targets.concurrentMap(atMost: parallel) { target in
            await onStart(target)
            let result = await self.enqueue(on: target, unlessEnqueuedSince: lastAttempts[target.name])
            await onResult(result)
            return result
        }
    }

    /// Enqueues on one target, unless a job of this name that this login enqueued since
    /// `since` (see `enqueue(on:lastAttempts:)`) is in its queue already.
    public func enqueue(on target: FleetTarget, unlessEnqueuedSince since: String? = nil) async -> Result {
        var result = Result(target: target)
        let found = Mutex(false)
        do {
            var options = SessionOptions()
            options.applicationName = "godwit fleet enqueue"
            options.connectTimeout = connectTimeout
            let warnings = Mutex<[String]>([])
            result.jobID = try await Connection.withConnection(target.connection, options: options) { conn in
                if let schema = target.schema {
                    // The tenant's schema first, then what the login searches anyway.
                    try await conn.query(
                        """
                        SELECT pg_catalog.set_config('search_path',
                            pg_catalog.quote_ident($1) || ', ' || pg_catalog.current_setting('search_path'), false)
                        """, [schema])
                }
                try await installIfMissing(on: conn)
                if let since, let id = try await enqueued(since: since, on: conn) {
                    found.withLock { $0 = true }
                    return id
                }
                return try await definition.enqueue(
                    file: file, schema: self.schema, on: conn, warn: { line in warnings.withLock { $0.append(line) } })
            }
            result.warnings = warnings.withLock { $0 }
            result.foundEnqueued = found.withLock { $0 }
        } catch let error as any GodwitError {
            result.error = Self.oneLine(error.description)
        } catch {
            result.error = Self.oneLine(String(describing: error))
        }
        return result
    }

    /// The newest job of this definition's name in the queue, not a shard, that this login
    /// enqueued since `since` (UTC) less a minute; nil when there is none. Only columns that
    /// `grant_enqueue` lets a role read; every name and operator qualified, since the session
    /// searches the tenant's schema.
    private func enqueued(since: String, on conn: Connection) async throws -> Int64? {
        try await conn.query(
            """
            SELECT pg_catalog.max(id) AS id FROM \(schema.qualified("jobs"))
            WHERE kind OPERATOR(pg_catalog.=) 'batched' AND name OPERATOR(pg_catalog.=) $1 AND parent_id IS NULL
                AND enqueued_by OPERATOR(pg_catalog.=) CURRENT_USER
                AND created_at OPERATOR(pg_catalog.>=) (($2::pg_catalog.timestamp AT TIME ZONE 'UTC')
                    OPERATOR(pg_catalog.-) '1 minute'::pg_catalog.interval)
            """, [definition.name, since]
        ).first?["id"].flatMap(Int64.init)
    }

    /// Installs (or upgrades) the queue's schema only when it is missing or older, as `job
    /// enqueue` does, so that a role with no more than `grant_enqueue` can enqueue.
    private func installIfMissing(on conn: Connection) async throws {
        guard !(try await schema.isCurrent(on: conn)) else { return }
        do {
            try await schema.install(on: conn)
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            throw FleetError(
                .targetsFailed,
                "the job queue's schema \(schema.quoted) is missing or older than this godwit's, and this login may not install it: start `godwit worker` once against this database, or enqueue as its owner; the server said: \(error.message)"
            )
        }
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
