import Foundation
import GodwitPostgres
import GodwitQueue
import Logging
import Synchronization

/// How a fleet worker runs: which databases, within how many connections, and the ordinary
/// worker settings each database's turn uses.
public struct FleetWorkerConfiguration: Sendable {
    /// The fleet's targets. Targets in one database (`FleetTarget.databaseKey`), such as a
    /// schema-per-tenant fleet's, share that database's queue: it is served once, with the
    /// first such target's connection string. A target's `schema=` is the tenant's schema, where
    /// its enqueued jobs' tables are (their search_path is recorded at enqueue); the queue itself
    /// is `worker.schema` in every database.
    public var targets: [FleetTarget]
    /// The most connections the process holds at once, across every database: the probe's one,
    /// and `connectionsPerDatabase` for each database being served.
    public var connections: Int
    /// The settings of each database's worker. Its `databaseURL` and `workerID` are replaced per
    /// database; it is run draining, without LISTEN, budgeted (see `FleetWorker`).
    public var worker: WorkerConfiguration
    /// The pool of each database's worker: claims, outcomes, heartbeats, rescues, housekeeping
    /// and the jobs' bookkeeping share it. Two, so that a heartbeat never waits behind more
    /// than one brief statement.
    public var poolSize = 2
    /// How long one database keeps a place while others wait for one: then its worker stops
    /// as on SIGTERM (running jobs go back to the queue at their next checkpoint, a batched job
    /// losing nothing) and the database waiting longest takes the place.
    public var slice: Duration = .seconds(60)
    /// Exit once every database is drained (see `FleetWorker.run`).
    public var drain = false

    public init(targets: [FleetTarget], connections: Int, worker: WorkerConfiguration) {
        self.targets = targets
        self.connections = connections
        self.worker = worker
    }

    /// What one database's worker may hold: its pool and one job session per concurrent job.
    public var connectionsPerDatabase: Int { poolSize + worker.concurrency }

    /// How many databases are served at once: what the budget holds after the probe's one.
    public var places: Int { max(0, (connections - 1) / connectionsPerDatabase) }

    /// Refuses a budget that cannot serve even one database.
    public func validate() throws {
        guard connections >= 1 + connectionsPerDatabase else {
            throw FleetError(
                .badOptions,
                "--connections \(connections) cannot serve one database: a database's worker holds up to \(connectionsPerDatabase) (a pool of \(poolSize) and one session per concurrent job, --concurrency \(worker.concurrency)) and looking for work takes 1 more: give --connections \(1 + connectionsPerDatabase) or more"
            )
        }
        guard slice > .zero else { throw FleetError(.badOptions, "--slice must be positive") }
    }
}

/// One database of a fleet worker: the targets that live in it, served as one queue.
public struct FleetDatabase: Sendable, Equatable {
    /// Its place among the fleet's databases, in the targets' order.
    public var index: Int
    /// The first target's name, which logs use for the database.
    public var name: String
    /// The first target's connection string.
    public var connection: String
    /// Every target in it, in order.
    public var targetNames: [String]

    /// The databases of `targets`, in the order their first target comes.
    public static func of(_ targets: [FleetTarget]) -> [FleetDatabase] {
        var databases: [FleetDatabase] = []
        var byKey: [String: Int] = [:]
        for target in targets {
            let key = target.databaseKey
            if let index = byKey[key] {
                databases[index].targetNames.append(target.name)
            } else {
                byKey[key] = databases.count
                databases.append(
                    FleetDatabase(
                        index: databases.count, name: target.name, connection: target.connection,
                        targetNames: [target.name]))
            }
        }
        return databases
    }
}

/// `godwit worker --targets`: the queues of many databases in one process, within a hard budget
/// of connections.
///
/// With 20 databases and 8 connections, not every database can hold a LISTEN connection and a
/// pool at once. So databases take turns: a scheduler looks for work in one database at a time
/// (a short session: is a job due, or a dead worker's job awaiting rescue?), and a database
/// that has some gets a place, where an ordinary `Worker` serves it, draining: it claims,
/// heartbeats, fences and rescues exactly as any worker does, and returns once nothing is due.
/// While other databases wait for a place, a database keeps one for at most `slice`; then its
/// worker stops as on SIGTERM and the database waiting longest goes next.
///
/// The budget is a hard cap on the process's sessions, not an average: the probe takes one
/// connection of the budget, each place `connectionsPerDatabase`, taken before any of them is
/// opened and given back only once every one is closed and its backend gone
/// (`SessionOptions.waitsForBackendExit`). A database's worker is made to fit: no LISTEN
/// connection (it polls), a pool of `poolSize`, and job sessions closed as each job gives its
/// session back, so that they never outnumber its running jobs. (A migrate job's backup runs
/// pg_dump, whose sessions are its own: fleet migrations are `godwit fleet migrate`'s.)
public final class FleetWorker: Sendable {
    public let configuration: FleetWorkerConfiguration
    public let databases: [FleetDatabase]
    private let makeHandlers: @Sendable (WorkerConfiguration) -> [any JobHandler]
    private let logger: Logger
    private let budget: ConnectionBudget
    private let wake = WakeSignal()
    private let shared = Mutex(Shared())

    /// What the scheduler shares with the databases' tasks and with `shutdown()`.
    private struct Shared {
        var stopping = false
        var workers: [Int: Worker] = [:]
        /// Databases whose worker returned since the scheduler last looked, with its error.
        var finished: [(index: Int, error: String?)] = []
    }

    /// A database's place in the schedule, kept by the scheduler alone.
    private struct Slot {
        var serving = false
        var servedSince: ContinuousClock.Instant?
        /// Asked to make way for another database.
        var yielding = false
        /// Has work, waits for a place.
        var waiting = false
        var lastServed: ContinuousClock.Instant?
        var nextProbe: ContinuousClock.Instant
        /// Nothing due within the poll interval and nothing to rescue, as last seen.
        var quiet = false
        /// Why the database could not be looked at or served, last time.
        var error: String?
    }

    /// What the fleet worker's run left: the databases it could not reach or serve the last
    /// time it tried (in drain mode, why it did not drain them).
    public struct Outcome: Sendable {
        public var failures: [(database: FleetDatabase, error: String)]
    }

    /// - Parameter makeHandlers: the job handlers of one database's worker, given its
    ///   configuration (the same kinds as a `godwit worker`'s).
    public init(
        configuration: FleetWorkerConfiguration, logger: Logger,
        makeHandlers: @escaping @Sendable (WorkerConfiguration) -> [any JobHandler]
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.databases = FleetDatabase.of(configuration.targets)
        self.makeHandlers = makeHandlers
        self.logger = logger
        self.budget = ConnectionBudget(total: configuration.connections)
    }

    /// Asks every database's worker to stop as on SIGTERM (running jobs go back to the queue at
    /// their next checkpoint) and `run` to return once they have.
    public func shutdown() {
        let workers = shared.withLock { shared -> [Worker] in
            shared.stopping = true
            return Array(shared.workers.values)
        }
        for worker in workers { worker.shutdown() }
        wake.wake()
    }

    private var stopping: Bool { shared.withLock { $0.stopping } || Task.isCancelled }

    /// Serves the databases until `shutdown()` (or cancellation), or, with `drain`, until no
    /// database is served and each was last seen with nothing due within the poll interval and
    /// no job running (under any worker: a dead worker's job is rescued and run once its lease
    /// expires, so a restart after a crash drains what the crash left), or could not be
    /// reached.
    public func run() async -> Outcome {
        let clock = ContinuousClock()
        var slots = databases.map { _ in Slot(nextProbe: clock.now) }
        let pollInterval = configuration.worker.pollInterval
        logger.notice(
            "fleet worker started",
            metadata: [
                "databases": "\(databases.count)", "targets": "\(configuration.targets.count)",
                "connections": "\(configuration.connections)", "places": "\(configuration.places)",
                "concurrency": "\(configuration.worker.concurrency)",
            ])
        await withTaskGroup(of: Void.self) { group in
            while !stopping {
                let ended = shared.withLock { shared -> [(index: Int, error: String?)] in
                    defer { shared.finished = [] }
                    return shared.finished
                }
                for finished in ended {
                    var slot = slots[finished.index]
                    // A worker that made way has work left: it is looked at again at once, and
                    // waits behind the databases that waited while it ran.
                    slot.quiet = !slot.yielding && finished.error == nil
                    slot.error = finished.error
                    slot.nextProbe = slot.yielding || finished.error == nil ? clock.now : clock.now + pollInterval
                    slot.serving = false
                    slot.yielding = false
                    slot.servedSince = nil
                    slot.lastServed = clock.now
                    slots[finished.index] = slot
                }
                // Look for work where nothing is known to wait, the longest unserved first.
                let order = slots.indices.sorted { a, b in
                    switch (slots[a].lastServed, slots[b].lastServed) {
                    case (nil, nil): a < b
                    case (nil, _?): true
                    case (_?, nil): false
                    case (let x?, let y?): x == y ? a < b : x < y
                    }
                }
                for index in order where !slots[index].serving && !slots[index].waiting {
                    if stopping { break }
                    guard slots[index].nextProbe <= clock.now else { continue }
                    let probe = await self.probe(databases[index])
                    switch probe {
                    case .work:
                        slots[index].waiting = true
                        slots[index].quiet = false
                        slots[index].error = nil
                    case .later(let due):
                        slots[index].quiet = due > pollInterval
                        slots[index].error = nil
                        slots[index].nextProbe = clock.now + min(due, pollInterval)
                    case .elsewhere:
                        slots[index].quiet = false
                        slots[index].error = nil
                        slots[index].nextProbe = clock.now + pollInterval
                    case .idle:
                        slots[index].quiet = true
                        slots[index].error = nil
                        slots[index].nextProbe = clock.now + pollInterval
                    case .failed(let error):
                        if slots[index].error != error {
                            logger.warning(
                                "cannot look for work in this target's database; trying again",
                                metadata: ["target": "\(databases[index].name)", "error": "\(error)"])
                        }
                        slots[index].error = error
                        slots[index].quiet = false
                        slots[index].nextProbe = clock.now + pollInterval
                    }
                }
                if stopping { break }
                // Give free places to waiting databases, the longest unserved first; the probe
                // keeps its one connection.
                let waiting = order.filter { slots[$0].waiting }
                for index in waiting where budget.available >= configuration.connectionsPerDatabase + 1 {
                    // Only this loop takes from the budget, so what it saw is there to take.
                    do {
                        try await budget.acquire(configuration.connectionsPerDatabase)
                    } catch {
                        break
                    }
                    let (worker, pool) = makeWorker(databases[index])
                    shared.withLock { $0.workers[index] = worker }
                    slots[index].waiting = false
                    slots[index].serving = true
                    slots[index].servedSince = clock.now
                    group.addTask { await self.serve(self.databases[index], worker, pool) }
                }
                // Databases still waiting take a place from one served longer than a slice.
                var wakeAt =
                    slots.filter { !$0.serving && !$0.waiting }.map(\.nextProbe).min() ?? clock.now + pollInterval
                if slots.contains(where: \.waiting) {
                    for index in slots.indices where slots[index].serving && !slots[index].yielding {
                        guard let since = slots[index].servedSince else { continue }
                        if clock.now - since >= configuration.slice {
                            slots[index].yielding = true
                            logger.info(
                                "making way for a waiting database", metadata: ["target": "\(databases[index].name)"])
                            shared.withLock { $0.workers[index] }?.shutdown()
                        } else {
                            wakeAt = min(wakeAt, since + configuration.slice)
                        }
                    }
                }
                if configuration.drain
                    && slots.allSatisfy({ !$0.serving && !$0.waiting && ($0.quiet || $0.error != nil) })
                {
                    break
                }
                let timeout = max(wakeAt - clock.now, .milliseconds(10))
                await wake.wait(timeout: min(timeout, pollInterval))
            }
            // Stopping: the workers still serving stop as on SIGTERM; the group waits for them.
            let workers = shared.withLock { shared -> [Worker] in
                shared.stopping = true
                return Array(shared.workers.values)
            }
            for worker in workers { worker.shutdown() }
        }
        for finished in shared.withLock({ $0.finished }) { slots[finished.index].error = finished.error }
        logger.notice("fleet worker stopped")
        return Outcome(
            failures: slots.indices.compactMap { index in slots[index].error.map { (databases[index], $0) } })
    }

    /// One database's worker and its pool, made to fit its place in the budget.
    private func makeWorker(_ database: FleetDatabase) -> (Worker, ConnectionPool) {
        var configuration = self.configuration.worker
        configuration.databaseURL = database.connection
        configuration.workerID = "\(self.configuration.worker.workerID):\(database.name)"
        configuration.drain = true
        configuration.listens = false
        configuration.budgeted = true
        var logger = self.logger
        logger[metadataKey: "target"] = "\(database.name)"
        let pool = makePool(configuration)
        let worker = Worker(
            configuration: configuration, pool: pool, handlers: makeHandlers(configuration), logger: logger)
        return (worker, pool)
    }

    private func makePool(_ configuration: WorkerConfiguration) -> ConnectionPool {
        ConnectionPool(
            configuration: .init(
                conninfo: configuration.databaseURL, options: configuration.sessionOptions,
                maximumConnections: self.configuration.poolSize,
                connectRetry: .connecting(for: configuration.connectTimeout)))
    }

    /// Runs a database's worker until it drains or is asked to stop, then closes its pool and
    /// gives its place back, once every session is gone.
    private func serve(_ database: FleetDatabase, _ worker: Worker, _ pool: ConnectionPool) async {
        var failure: String?
        do {
            try await worker.run()
        } catch {
            failure = FleetEnqueuer.oneLine(String(describing: error))
            logger.warning(
                "the worker of this target's database stopped with an error",
                metadata: ["target": "\(database.name)", "error": "\(error)"])
        }
        await pool.close()
        shared.withLock { shared in
            shared.workers[database.index] = nil
            shared.finished.append((database.index, failure))
        }
        budget.release(configuration.connectionsPerDatabase)
        wake.wake()
    }

    /// What a look at one database found.
    enum Probe: Equatable {
        /// A job is due now, or a dead worker's job awaits rescue.
        case work
        /// The next job is due in this long.
        case later(Duration)
        /// Nothing to claim or rescue now, but a job runs under some worker: a live one's, or
        /// a dead one's whose lease has not expired yet (then it is rescued once it has).
        case elsewhere
        /// No queued job (or no queue at all).
        case idle
        case failed(String)
    }

    /// Looks for work in `database` over a session of its own, which takes one connection of
    /// the budget and gives it back once closed.
    func probe(_ database: FleetDatabase) async -> Probe {
        do {
            return try await budget.withConnections(1) {
                var options = configuration.worker.sessionOptions
                options.applicationName = "godwit worker (fleet probe)"
                options.waitsForBackendExit = true
                let connection = try await Connection.connect(database.connection, options: options)
                do {
                    let probe = try await look(on: connection)
                    await connection.close()
                    return probe
                } catch {
                    await connection.close()
                    throw error
                }
            }
        } catch let error as PostgresError {
            return .failed(FleetEnqueuer.oneLine(error.summary))
        } catch {
            return .failed(FleetEnqueuer.oneLine(String(describing: error)))
        }
    }

    private func look(on connection: Connection) async throws -> Probe {
        let schema = configuration.worker.schema
        guard try await schema.installedVersion(on: connection) > 0 else { return .idle }
        let queue = JobQueue(schema: schema)
        if try await queue.hasExpiredLeases(leaseTimeout: configuration.worker.leaseTimeout, on: connection) {
            return .work
        }
        let seconds = try await queue.secondsUntilNextDue(on: connection)
        if let seconds, seconds <= 0 { return .work }
        // A parallel job's parent runs while its shards do; the shards are what is claimed.
        let running = try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM \(schema.qualified("jobs")) WHERE state = 'running' AND kind <> $1) AS running
            """, [JobKind.batchedParallel.rawValue]
        ).first?.bool("running")
        if running == true { return .elsewhere }
        return seconds.map { .later(.milliseconds(Int64($0 * 1000))) } ?? .idle
    }
}
