import Foundation
import GodwitPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// How a worker runs.
public struct WorkerConfiguration: Sendable {
    public var databaseURL: String
    public var schema = QueueSchema()
    /// Jobs run at once by this worker.
    public var concurrency = 4
    /// How often to look for jobs when no notification comes (lost notifications, jobs that
    /// became due).
    public var pollInterval: Duration = .seconds(5)
    /// A running job whose heartbeat is older than this is rescued by any worker.
    public var leaseTimeout: Duration = .seconds(30)
    /// How long starting up keeps trying to reach the database (a server that is starting).
    public var connectTimeout: Duration = .seconds(10)
    /// Exit once no job is running here, none is due within `pollInterval`, and no job of a
    /// dead worker awaits rescue.
    public var drain = false
    public var backoff = Backoff()
    /// Succeeded and cancelled jobs older than this are deleted.
    public var keepFinished: Duration = .seconds(7 * 86_400)
    public var workerID: String
    /// The godwit version this worker runs, as its row in `<schema>.workers` shows it.
    public var version: String?
    /// Rows of `<schema>.workers` stopped, or not seen, for this long are deleted.
    public var keepGoneWorkers: Duration = .seconds(86_400)
    /// How to log in as each enqueuer, by role (`--enqueuer-logins FILE`); a role without a
    /// line logs in with the worker's connection string, its user replaced and no password
    /// (see `EnqueuerSessions`).
    public var enqueuerLogins: [String: String] = [:]
    /// Work run on a timer while the worker runs (see `PeriodicTask`), each in a loop of its own.
    public var periodicTasks: [PeriodicTask] = []
    /// Whether the worker holds a connection that LISTENs for new jobs. Without one it finds
    /// them by polling every `pollInterval` (and when one of its own jobs ends).
    public var listens = true
    /// Whether the worker's sessions are counted against a connection budget (a fleet
    /// worker's): a job's session is closed when the job gives it back rather than kept for the
    /// next job of its role, so that the sessions open never outnumber the jobs running, and
    /// every session's close waits until the server's backend has exited
    /// (`SessionOptions.waitsForBackendExit`). The pool passed to the worker is the caller's
    /// to size.
    public var budgeted = false

    public init(databaseURL: String, workerID: String? = nil) {
        self.databaseURL = databaseURL
        self.workerID = workerID ?? Self.defaultWorkerID()
    }

    /// Heartbeats come three times a lease, and at least every 2 s so that pause and cancel
    /// requests are seen soon.
    public var heartbeatInterval: Duration { min(leaseTimeout / 3, .seconds(2)) }

    /// How the worker's sessions are opened. A session left idle inside a transaction (a worker
    /// stopped with SIGSTOP in the middle of a batch) is ended by the server after two leases,
    /// which releases the job's row so that another worker can rescue it.
    public var sessionOptions: SessionOptions {
        var options = SessionOptions()
        options.applicationName = "godwit worker"
        options.connectTimeout = connectTimeout
        options.idleInTransactionSessionTimeout = max(leaseTimeout * 2, .seconds(5))
        options.pinnedSearchPath = SessionOptions.catalogSearchPath
        options.waitsForBackendExit = budgeted
        return options
    }

    /// Sessions that log in as each job's enqueuer, with the worker's session options (the
    /// idle-in-transaction timeout included, so a stopped worker's batch releases its job) but
    /// the login's own search_path; up to `concurrency` sessions a role.
    public func makeEnqueuerSessions() -> EnqueuerSessions {
        EnqueuerSessions(
            workerURL: databaseURL, logins: enqueuerLogins, options: sessionOptions, maximumConnections: concurrency,
            connectRetry: .connecting(for: connectTimeout), keepsIdleSessions: !budgeted)
    }

    /// A pool that fits this worker: one connection per concurrent job for its bookkeeping (a
    /// batched job's progress row, holds and history), and four for claims, recorded outcomes,
    /// heartbeats, rescues and housekeeping. A job's own SQL runs in its enqueuer's sessions
    /// (`makeEnqueuerSessions`), never here.
    public func makePool() -> ConnectionPool {
        ConnectionPool(
            configuration: .init(
                conninfo: databaseURL, options: sessionOptions, maximumConnections: concurrency + 4,
                connectRetry: .connecting(for: connectTimeout)))
    }

    /// What this worker writes about itself in `<schema>.workers`.
    public var registration: WorkerRegistration {
        WorkerRegistration(
            id: workerID, host: ProcessInfo.processInfo.hostName,
            pid: Int(ProcessInfo.processInfo.processIdentifier), version: version, concurrency: concurrency)
    }

    static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        return
            "\(host):\(ProcessInfo.processInfo.processIdentifier):\(String(UInt16.random(in: 0...UInt16.max), radix: 16))"
    }
}

/// A job failure that carries a result to store with the failed job (a migrate job names the
/// migration that failed and the backup to restore).
public struct JobFailure: GodwitError {
    public var message: String
    public var resultJSON: String?
    public var transient: Bool
    /// The server's DETAIL, kept apart from `message`: it may quote row values, so it is stored
    /// where only the enqueuer, controllers and the owner can read it (`last_error_detail`).
    public var detail: String?

    public init(_ message: String, resultJSON: String? = nil, transient: Bool = false, detail: String? = nil) {
        self.message = message
        self.resultJSON = resultJSON
        self.transient = transient
        self.detail = detail
    }

    public var description: String { message }
    /// `transient` for a failure worth retrying as it is, `failed` otherwise.
    public var code: String { transient ? "transient" : "failed" }
}

/// `godwit worker`: claims jobs from the queue and runs them, until shutdown (or, when
/// draining, until nothing is left to run).
///
/// Its own connections come from a `ConnectionPool` with `search_path` pinned: claims, recorded
/// outcomes, heartbeats, rescues and housekeeping each lease one, and running jobs borrow one
/// briefly for their bookkeeping, so a long statement never holds up claims or heartbeats. A
/// job's SQL runs in sessions that log in as its enqueuer (`EnqueuerSessions`, a pool per
/// role). One more connection, of its own, LISTENs for new jobs.
///
/// Stopping follows swift-service-lifecycle: graceful shutdown (SIGTERM, or `shutdown()`) stops
/// claiming and lets running jobs stop at their next checkpoint and go back to the queue;
/// cancelling the task (the service group's `maximumGracefulShutdownDuration` passing) cancels
/// their statements at once, and they go back to the queue all the same.
public final class Worker: Service {
    public let configuration: WorkerConfiguration
    private let handlers: [JobKind: any JobHandler]
    private let logger: Logger
    private let queue: JobQueue
    private let pool: ConnectionPool
    private let sessions: EnqueuerSessions
    private let signals = JobSignals()
    private let wake = WakeSignal()
    private let running = Mutex<[Int64: ClaimedJob]>([:])
    private let completions = CompletionBatch()
    private let clock = ContinuousClock()
    private let observer: (any WorkerObserver)?
    private let phase = Mutex(WorkerStatus.State.starting)
    /// One wake-up per periodic task, in `configuration.periodicTasks`' order: rung when a job
    /// of a kind in the task's `wakeOn` ends here.
    private let periodicWakes: [WakeSignal]

    /// - Parameter pool: where the worker's connections come from; run it in the same service
    ///   group, before the worker (`configuration.makePool()` makes one that fits).
    /// - Parameter observer: told of every attempt, rescue and lost lease (metrics).
    public init(
        configuration: WorkerConfiguration, pool: ConnectionPool, handlers: [any JobHandler], logger: Logger,
        observer: (any WorkerObserver)? = nil
    ) {
        self.configuration = configuration
        self.observer = observer
        self.pool = pool
        self.sessions = configuration.makeEnqueuerSessions()
        self.handlers = Dictionary(handlers.map { ($0.kind, $0) }, uniquingKeysWith: { _, last in last })
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        self.queue = JobQueue(schema: configuration.schema)
        self.periodicWakes = configuration.periodicTasks.map { _ in WakeSignal() }
    }

    /// Asks the worker to stop as on SIGTERM: stop claiming, hand running jobs back at
    /// their next checkpoint, return.
    public func shutdown() {
        signals.beginShutdown()
        wake.wake()
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await self.serve()
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    private var stopping: Bool { signals.isShuttingDown || Task.isCancelled }

    /// Whether the worker is starting, running, draining (shutting down, or `drain` with
    /// nothing left) or stopped, and how many jobs it runs now.
    public var status: WorkerStatus {
        var state = phase.withLock { $0 }
        if state == .running && signals.isShuttingDown { state = .draining }
        return WorkerStatus(state: state, runningJobs: runningCount, workerID: configuration.workerID)
    }

    private func serve() async throws {
        // Installing is the first contact with the database: a server that is still starting
        // is waited for (up to the connect timeout), anything else fails the start at once. A
        // graceful shutdown meanwhile (SIGTERM) ends the wait, even inside a connect.
        do {
            try await cancelWhenGracefulShutdown {
                try await RetryPolicy.connecting(for: self.configuration.connectTimeout).run(onRetry: { error, _ in
                    self.logger.warning("cannot reach the database yet; retrying", metadata: ["error": "\(error)"])
                }) {
                    if self.signals.isShuttingDown { throw CancellationError() }
                    try await self.pool.withConnection { connection in
                        try await self.configuration.schema.install(on: connection)
                        let role = try await connection.query("SELECT session_user::text AS u").first?.string("u")
                        if let role { self.sessions.setWorkerRole(role) }
                        // Rows of workers gone for a day go at every start too, not only hourly: a
                        // worker that drains and exits may never reach its housekeeping loop.
                        try await self.queue.deleteGoneWorkers(
                            olderThan: self.configuration.keepGoneWorkers, on: connection)
                        try await self.queue.register(self.configuration.registration, on: connection)
                    }
                }
            }
        } catch is CancellationError where signals.isShuttingDown || Task.isShuttingDownGracefully {
            logger.notice("worker stopped before it reached the database")
            return
        }
        phase.withLock { $0 = .running }
        defer { phase.withLock { $0 = .stopped } }
        logger.info(
            "worker started",
            metadata: [
                "concurrency": "\(configuration.concurrency)",
                "kinds": "\(handlers.keys.sorted().map(\.rawValue).joined(separator: ","))",
            ])
        await withTaskGroup(of: Void.self) { background in
            if self.configuration.listens { background.addTask { await self.listenLoop() } }
            background.addTask { await self.heartbeatLoop() }
            background.addTask { await self.rescueLoop() }
            background.addTask { await self.housekeepingLoop() }
            background.addTask { await self.completions.flushLoop { await self.recordSuccesses($0) } }
            for (task, wake) in zip(self.configuration.periodicTasks, self.periodicWakes) {
                background.addTask { await self.periodicLoop(task, wake: wake) }
            }
            await self.dispatchLoop()
            background.cancelAll()
        }
        await markStopped()
        await sessions.close()
        logger.info("worker stopped")
    }

    /// Writes `stopped_at` in the worker's row: an orderly exit, which `godwit workers` shows as
    /// stopped rather than stale. Written even when the task was cancelled (shutdown timeout).
    private func markStopped() async {
        let id = configuration.workerID
        do {
            try await Task {
                try await self.pool.withConnection { try await self.queue.workerStopped(id, on: $0) }
            }.value
        } catch {
            logger.warning("could not mark this worker stopped in the workers table", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Claiming

    private var runningCount: Int { running.withLock { $0.count } }

    private func dispatchLoop() async {
        await withDiscardingTaskGroup { jobs in
            loop: while !stopping {
                let free = configuration.concurrency - runningCount
                // Whether the last claim came back short, so the queue holds nothing more that
                // is due; only then is it worth asking when the next job will be.
                var sawEverythingDue = false
                if free > 0 {
                    do {
                        let claimed = try await pool.withConnection {
                            try await self.queue.claim(limit: free, workerID: self.configuration.workerID, on: $0)
                        }
                        for job in claimed {
                            // A job this worker claims again (its own heartbeat was held up past
                            // the lease, and its rescue requeued it) takes the slot of the earlier
                            // attempt, which has lost its lease: it stops at its next checkpoint,
                            // and its fenced writes keep it harmless until then.
                            running.withLock { running in
                                if let earlier = running[job.id] {
                                    signals.set(.leaseLost, for: JobSignals.Attempt(earlier))
                                }
                                running[job.id] = job
                            }
                            jobs.addTask { await self.execute(job) }
                        }
                        sawEverythingDue = claimed.count < free
                        if !sawEverythingDue { continue }
                    } catch {
                        if stopping { break }
                        logger.warning("claiming failed; retrying", metadata: ["error": "\(error)"])
                        await wake.wait(timeout: .seconds(1))
                        continue
                    }
                }
                var timeout = configuration.pollInterval
                // Counted before asking when the next job is due: a job that ends while the
                // question is in flight may requeue itself (a retry) after the answer was read.
                // Outcomes are recorded before a job leaves `running`, so none running now
                // means the answer covers every requeue.
                let idleBeforeAsking = runningCount == 0
                // A job whose worker died is about to be rescued: drain waits for it. It asks
                // about such jobs before asking what is due, so that a rescue in between shows
                // in the second answer (asked the other way round, a rescue between the two
                // hid the job from both, and drain stopped with it queued). Not knowing (the
                // query failed) is no reason to stop either.
                var orphans: Result<Bool, any Error>?
                if configuration.drain && idleBeforeAsking && sawEverythingDue {
                    do {
                        orphans = .success(
                            try await pool.withConnection {
                                try await self.queue.hasExpiredLeases(
                                    leaseTimeout: self.configuration.leaseTimeout, on: $0)
                            })
                    } catch {
                        orphans = .failure(error)
                    }
                }
                if sawEverythingDue, let due = try? await nextDue() {
                    if let orphans, due.map({ $0 > timeout }) ?? true {
                        switch orphans {
                        case .success(false): break loop
                        case .success(true): break
                        case .failure(let error):
                            if stopping { break loop }
                            logger.warning(
                                "draining: cannot tell whether a dead worker's job awaits rescue; waiting",
                                metadata: ["error": "\(error)"])
                        }
                    }
                    if let due { timeout = min(timeout, max(due, .milliseconds(5))) }
                }
                await wake.wait(timeout: timeout)
            }
            if runningCount > 0 {
                logger.notice(
                    Task.isCancelled
                        ? "cancelled: stopping running jobs now"
                        : "shutting down: waiting for running jobs to reach a checkpoint",
                    metadata: ["running": "\(runningCount)"])
            }
            // The group waits for the running jobs; cancelling this task cancels them.
        }
    }

    /// How long until the next queued job is due; `.some(nil)` when nothing is queued.
    private func nextDue() async throws -> Duration?? {
        let seconds = try await pool.withConnection { try await self.queue.secondsUntilNextDue(on: $0) }
        return .some(seconds.map { .milliseconds(Int64($0 * 1000)) })
    }

    // MARK: Running one job

    private func execute(_ job: ClaimedJob) async {
        let started = clock.now
        var metadata: Logger.Metadata = [
            "job": "\(job.id)", "name": "\(job.name)", "kind": "\(job.kind)", "attempt": "\(job.attempt)",
        ]
        logger.info("job started", metadata: metadata)
        observer?.jobStarted(kind: job.kind, waited: .milliseconds(Int64(job.waitedSeconds * 1000)))
        let outcome = await attempt(job)
        let duration = clock.now - started
        metadata["duration"] = "\(duration.rustDebugDescription)"
        if let outcome {
            observer?.jobFinished(kind: job.kind, outcome: outcome.label, duration: duration)
        } else {
            observer?.leaseLost(kind: job.kind)
        }
        if case .succeeded(let result)? = outcome {
            // The slot frees at once; the success is recorded with others in one write.
            finished(job)
            wake.wake()
            let recorded = await completions.submit(job, result: result)
            logOutcome(.succeeded(result: result), recorded: recorded, metadata: metadata)
            wakePeriodicTasks(after: job.kind)
            return
        }
        if let outcome {
            // Recording the outcome must happen even when this task was cancelled (shutdown
            // timeout), so it runs in a task of its own that does not inherit cancellation.
            let recorded = await Task { await self.record(job, outcome) }.value
            logOutcome(outcome, recorded: recorded, metadata: metadata)
            wakePeriodicTasks(after: job.kind)
        } else {
            logger.warning(
                "job lease lost: another worker took it over; this attempt wrote nothing", metadata: metadata)
        }
        finished(job)
        wake.wake()
    }

    /// Frees `job`'s slot, unless the job was claimed again since (another attempt of it runs
    /// under a newer lease): this attempt's end must not take the newer one out of `running`,
    /// where its lease is renewed and drain counts it. Then forgets this attempt's signals,
    /// after its slot, so that no heartbeat sets them again.
    private func finished(_ job: ClaimedJob) {
        running.withLock { running in
            if running[job.id]?.leaseToken == job.leaseToken { running.removeValue(forKey: job.id) }
        }
        signals.forget(job)
    }

    /// Runs the handler and decides the outcome; nil when the lease was lost (write nothing).
    private func attempt(_ job: ClaimedJob) async -> JobOutcome? {
        guard let handler = handlers[job.kind] else {
            return .failed(
                error:
                    "unknown job kind \"\(job.kind)\" (this worker runs: \(handlers.keys.sorted().map(\.rawValue).joined(separator: ", ")))",
                result: nil)
        }
        let context = JobContext(
            job: job, logger: logger, queue: queue, pool: pool, sessions: sessions,
            databaseURL: configuration.databaseURL,
            signals: signals)
        do {
            let result = try await handler.run(context)
            return signals.wasRecorded(job) ? .recorded(result: result) : .succeeded(result: result)
        } catch let interruption as JobInterruption {
            return outcome(of: interruption)
        } catch let error where error is CancellationError || Task.isCancelled {
            return outcome(of: signals.interruption(for: job) ?? .shutdown)
        } catch let failure as JobFailure {
            if failure.transient && job.attempt < job.maxAttempts {
                return .retry(
                    error: failure.message, delay: configuration.backoff.delay(afterAttempt: job.attempt),
                    detail: failure.detail)
            }
            return .failed(error: failure.message, result: failure.resultJSON, detail: failure.detail)
        } catch let error as PostgresError where error.isTransient {
            if let interruption = signals.interruption(for: job) { return outcome(of: interruption) }
            if job.attempt < job.maxAttempts {
                return .retry(
                    error: error.summary, delay: configuration.backoff.delay(afterAttempt: job.attempt),
                    detail: error.detail)
            }
            return .failed(
                error: "\(error.summary) (attempt \(job.attempt) of \(job.maxAttempts))", result: nil,
                detail: error.detail)
        } catch let error as PostgresError {
            return .failed(error: error.summary, result: nil, detail: error.detail)
        } catch {
            return .failed(error: String(describing: error), result: nil)
        }
    }

    private func outcome(of interruption: JobInterruption) -> JobOutcome? {
        switch interruption {
        case .paused: .paused
        case .cancelled: .cancelled
        case .shutdown: .handBack
        case .leaseLost: nil
        }
    }

    /// How recording an outcome retries while the database is unreachable (a restart): for up
    /// to a lease, after which the job is rescued anyway.
    private var recordRetry: RetryPolicy {
        RetryPolicy(backoff: Backoff(base: .milliseconds(50), max: .seconds(2)), deadline: configuration.leaseTimeout)
    }

    /// Writes the outcome. Returns false when the lease was lost meanwhile or it could not be
    /// written.
    private func record(_ job: ClaimedJob, _ outcome: JobOutcome) async -> Bool {
        do {
            return try await recordRetry.run {
                try await self.pool.withConnection { try await self.queue.finish(job, outcome, on: $0) }
            }
        } catch {
            logger.error("could not record the job's outcome", metadata: ["job": "\(job.id)", "error": "\(error)"])
            return false
        }
    }

    /// Writes a batch of successes; returns the ids recorded.
    private func recordSuccesses(_ entries: [CompletionBatch.Entry]) async -> Set<Int64> {
        do {
            return try await recordRetry.run {
                try await self.pool.withConnection {
                    try await self.queue.finishSucceeded(entries.map { ($0.job, $0.result) }, on: $0)
                }
            }
        } catch {
            logger.error(
                "could not record finished jobs", metadata: ["count": "\(entries.count)", "error": "\(error)"])
            return []
        }
    }

    private func logOutcome(_ outcome: JobOutcome, recorded: Bool, metadata: Logger.Metadata) {
        var metadata = metadata
        guard recorded else {
            logger.warning("job outcome not recorded: the lease was lost meanwhile", metadata: metadata)
            return
        }
        switch outcome {
        case .succeeded, .recorded:
            logger.info("job succeeded", metadata: metadata)
        case .failed(let error, _, _):
            metadata["error"] = "\(error)"
            logger.error("job failed", metadata: metadata)
        case .retry(let error, let delay, _):
            metadata["error"] = "\(error)"
            metadata["retry_in"] = "\(delay.rustDebugDescription)"
            logger.warning("job will retry", metadata: metadata)
        case .paused:
            logger.notice("job paused", metadata: metadata)
        case .cancelled:
            logger.notice("job cancelled", metadata: metadata)
        case .handBack:
            logger.notice("job handed back to the queue", metadata: metadata)
        }
    }

    // MARK: Background loops

    /// Holds the LISTEN connection. After every (re)connect it wakes the claim loop once to
    /// catch up on what was missed; a quiet connection is pinged so a dead one is noticed.
    private func listenLoop() async {
        var delay = Duration.milliseconds(100)
        var options = configuration.sessionOptions
        options.applicationName = "godwit worker (listen)"
        while !Task.isCancelled {
            var connection: Connection?
            do {
                let listener = try await Connection.connect(configuration.databaseURL, options: options)
                connection = listener
                try await listener.listen(configuration.schema.channel)
                wake.wake()
                delay = .milliseconds(100)
                for try await _ in listener.notifications(pingingAfter: .seconds(30)) { wake.wake() }
            } catch {
                if !(error is CancellationError) && !Task.isCancelled {
                    logger.warning("LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
                }
            }
            await connection?.close()
            if Task.isCancelled { return }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Runs `body` every heartbeat interval until the task is cancelled; a failure is logged
    /// as `what` and tried again at the next interval.
    private func everyHeartbeat(_ what: String, _ body: () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.heartbeatInterval)
            } catch {
                return
            }
            do {
                try await body()
            } catch {
                if Task.isCancelled { return }
                logger.warning("\(what) failed; retrying", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Runs the periodic tasks that wake on `kind`: a job of it ended here, its outcome
    /// recorded (committed), so what the task reads shows it.
    private func wakePeriodicTasks(after kind: JobKind) {
        for (task, wake) in zip(configuration.periodicTasks, periodicWakes) where task.wakeOn.contains(kind) {
            wake.wake()
        }
    }

    /// Runs `task` now and then `task.interval` after each run ends, or as soon as `wake` rings
    /// (a job of a kind in `task.wakeOn` ended here), until the task is cancelled (the worker
    /// stopping); a run that fails is logged and the loop goes on.
    private func periodicLoop(_ task: PeriodicTask, wake: WakeSignal) async {
        var logger = self.logger
        logger[metadataKey: "task"] = "\(task.name)"
        let context = PeriodicTaskContext(pool: pool, schema: configuration.schema, logger: logger)
        while !Task.isCancelled {
            do {
                try await task.body(context)
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "periodic task \(task.name) failed; trying again in \(task.interval.roundedDescription)",
                    metadata: ["error": "\(error)"])
            }
            await wake.wait(timeout: task.interval)
        }
    }

    /// Renews the worker's own row in `<schema>.workers` and the leases of its running jobs, and
    /// passes pause and cancel requests to them. Never waits on a lock (see
    /// `JobQueue.heartbeat`), and has a loop of its own so that nothing else (a rescue, a
    /// clean-up) can hold it up.
    private func heartbeatLoop() async {
        let registration = configuration.registration
        await everyHeartbeat("heartbeat") {
            let leases = running.withLock { $0.values.map { (id: $0.id, token: $0.leaseToken) } }
            // The leases first: a failure to write the worker's own row must not cost them.
            let answer = try await pool.withConnection { connection in
                let answer = leases.isEmpty ? [:] : try await self.queue.heartbeat(leases, on: connection)
                do {
                    try await self.queue.beat(registration, on: connection)
                } catch let error as PostgresError where error.code == .server {
                    self.logger.warning(
                        "writing this worker's heartbeat in the workers table failed", metadata: ["error": "\(error)"])
                }
                return answer
            }
            // Only to attempts still running (under the lock of `running`, which an attempt's end
            // takes before forgetting its signals): an ended attempt's would stay for ever.
            running.withLock { running in
                for lease in leases where running[lease.id]?.leaseToken == lease.token {
                    let attempt = JobSignals.Attempt(id: lease.id, token: lease.token)
                    switch answer[lease.id] ?? .lost {
                    case .renewed(let control): signals.set(control?.interruption, for: attempt)
                    case .busy: break
                    case .lost: signals.set(.leaseLost, for: attempt)
                    }
                }
            }
        }
    }

    /// Rescues the jobs of workers that stopped heartbeating.
    private func rescueLoop() async {
        await everyHeartbeat("rescue") {
            let rescued = try await pool.withConnection {
                try await self.queue.rescueExpired(leaseTimeout: self.configuration.leaseTimeout, on: $0)
            }
            if !rescued.isEmpty {
                observer?.jobsRescued(rescued.count)
                logger.warning(
                    "rescued jobs whose worker stopped heartbeating",
                    metadata: ["jobs": "\(rescued.map(String.init).joined(separator: ","))"])
                wake.wake()
            }
        }
    }

    /// Deletes old finished jobs (their errors go with them: `job_errors` cascades) and the rows
    /// of workers gone for a day, at start and then hourly, in a loop of its own: however long a
    /// large clean-up takes, it never holds up a rescue or a heartbeat. Each batch of 1000 takes a
    /// pool connection of its own and gives it back.
    private func housekeepingLoop() async {
        while !Task.isCancelled {
            var deleted = 0
            do {
                while !Task.isCancelled {
                    let batch = try await pool.withConnection {
                        try await self.queue.deleteFinished(
                            olderThan: self.configuration.keepFinished, limit: 1000, on: $0)
                    }
                    deleted += batch
                    if batch < 1000 { break }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "deleting old finished jobs failed; trying again in an hour", metadata: ["error": "\(error)"])
            }
            if deleted > 0 { logger.info("deleted old finished jobs", metadata: ["count": "\(deleted)"]) }
            do {
                let gone = try await pool.withConnection {
                    try await self.queue.deleteGoneWorkers(olderThan: self.configuration.keepGoneWorkers, on: $0)
                }
                if gone > 0 {
                    logger.info("deleted the rows of workers gone for a day", metadata: ["count": "\(gone)"])
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "deleting the rows of gone workers failed; trying again in an hour", metadata: ["error": "\(error)"]
                )
            }
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                return
            }
        }
    }
}
