import ArgumentParser
import Foundation
import GodwitBackups
import GodwitChanges
import GodwitHTTP
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Logging
import ServiceLifecycle

/// Options naming Godwit's own schema, shared by `worker` and `job`.
struct QueueOptions: ParsableArguments {
    @OptionGroup var schemaOptions: SchemaOptions
    var schema: String { schemaOptions.schema }

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    /// `body`'s result; when it fails on a database where the queue's schema is not installed,
    /// one line saying so and how to install it, instead of the server's missing relation.
    /// Checked only after a failure, so a working queue costs no extra round trip.
    func explainingMissingSchema<T>(on conn: Connection, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.code == .server {
            let queueSchema = QueueSchema(name: schema)
            guard (try? await queueSchema.installedVersion(on: conn)) == 0 else { throw error }
            throw CLIError(
                "the job queue's schema \(queueSchema.quoted) is not installed in this database: run `godwit worker` once against it (it installs the schema), or have the database's owner install it"
            )
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run queued jobs: schema migrations and data migrations.",
        discussion: """
            Waits on the job table (LISTEN/NOTIFY, with a poll as a fallback), claims jobs with \
            FOR UPDATE SKIP LOCKED, renews their leases while they run, and rescues the jobs of \
            workers that died. SIGTERM or SIGINT stop it gracefully: running jobs stop at their \
            next checkpoint and go back to the queue.

            Example: godwit worker --concurrency 4

            With --targets FILE (or --targets-query), one process serves the queues of many \
            databases within --connections connections in all: databases with work take turns \
            (see README, Fleets).

            Example: godwit worker --targets tenants.txt --connections 8
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions
    @OptionGroup(title: "HTTP: /health, /metrics and the dashboard") var httpOptions: HTTPOptions

    @Option(help: "Jobs to run at once (default 4; with --targets, in each database served, default 1).")
    var concurrency: Int?

    /// `--concurrency`, or its default: 4, or 1 in each database of a fleet.
    var jobsAtOnce: Int { concurrency ?? (fleetTargets.given ? 1 : 4) }

    @OptionGroup(title: "Fleet: many databases' queues in one process") var fleetTargets: FleetTargetOptions

    @Option(help: "With --targets: the most connections this process holds at once, across every database.")
    var connections = 8

    @Option(help: "With --targets: seconds a database keeps its place while other databases wait for one.")
    var slice: Double = 60

    @Flag(help: "Exit (status 0) once no job is running here and none is due.")
    var drain = false

    @Option(help: "Seconds between looks at the queue when no notification arrives.")
    var pollInterval: Double = 5

    @Option(help: "Seconds without a heartbeat after which a running job is rescued by any worker.")
    var leaseTimeout: Double = 30

    @Option(help: "Seconds that SIGTERM waits for running jobs to reach a checkpoint.")
    var shutdownTimeout: Double = 30

    @Option(help: "Base of the retry backoff, in seconds (doubles every attempt, with jitter).")
    var retryDelay: Double = 1

    @Flag(help: "Apply pending schema migrations from --source at startup first.")
    var migrate = false

    /// `--source` and `--config`, for --migrate and the dashboard's migrations.
    @OptionGroup var folder: MigrationFolderOptions

    @OptionGroup(title: "Lock timeouts, for --migrate and the constraints a change validates") var lockOptions:
        LockOptions

    @Option(help: "Where migrate jobs with a backup write their dumps.")
    var backupDir = "backups"

    @Option(help: "Batched jobs hold while any standby's replication lag is above this many seconds.")
    var maxReplicationLag: Double = 10

    @Flag(inversion: .prefixedNo, help: "Batched jobs hold while autovacuum works on their table.")
    var holdDuringAutovacuum = true

    @Option(
        help: ArgumentHelp(
            "Batched jobs hold while WAL archiving is more than this many segments behind (0: never).",
            valueName: "segments"))
    var maxArchiveBacklog = 16

    @Option(
        help: ArgumentHelp(
            "A query run as the worker about once a second while a batched job runs; the job holds while it returns false or fails.",
            valueName: "sql"))
    var healthQuery: String?

    @Option(help: "Batches of each job kept in godwit.batches.")
    var batchHistory = 1000

    @Option(
        help: ArgumentHelp(
            "How to log in as each enqueuer: a file of 'ROLE CONNECTION-STRING' lines, mode 600 (default: "
                + "$GODWIT_ENQUEUER_LOGINS). A job runs in a session that logs in as the role that enqueued it; a role "
                + "with no line logs in with this worker's connection string, its user replaced and its password left "
                + "out (.pgpass, a client certificate, peer or trust).",
            valueName: "file"))
    var enqueuerLogins: String?

    func validate() throws {
        guard (concurrency ?? 1) >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        try validateFleet()
        guard pollInterval > 0, leaseTimeout > 0, shutdownTimeout >= 0, retryDelay >= 0 else {
            throw ValidationError("intervals and timeouts must be positive")
        }
        guard maxArchiveBacklog >= 0 else { throw ValidationError("--max-archive-backlog must not be negative") }
        if let healthQuery, healthQuery.contains(";") || healthQuery.allSatisfy(\.isWhitespace) {
            throw ValidationError(
                "--health-query must be one query with no \";\" in it, such as 'SELECT count(*) < 100 FROM pg_stat_activity'"
            )
        }
    }

    func run() async throws {
        try await withCLIErrors {
            let logger = makeLogger(queueOptions.logLevel)
            if fleetTargets.given {
                try await runFleet(logger: logger)
                return
            }
            let url = try connection.resolvedURL()
            // sqlx.toml, for --migrate and for the dashboard's migrations (its ledger and folder).
            let settings = try folder.resolvedConfig()
            let http = try httpOptions.configuration(
                databaseURL: url, schema: QueueSchema(name: queueOptions.schema),
                source: folder.directory(in: settings), migrationConfig: settings)
            if migrate {
                // Set up, and warned about, as `migrate run` does; the connection is closed
                // however the run ends.
                let migrator = try folder.migrator(config: settings, logger: logger, lockPolicy: lockOptions.policy)
                try await connection.withConnection(logger: logger) { conn in
                    try await migrator.run(on: conn, onEvent: { event in logger.info("\(event.line)") })
                }
            }
            var configuration = try workerConfiguration(databaseURL: url)
            configuration.concurrency = jobsAtOnce
            configuration.drain = drain
            if let path = enqueuerLogins ?? Console.current.environment["GODWIT_ENQUEUER_LOGINS"] {
                // A bad file is a GodwitError: withCLIErrors prints its one line.
                configuration.enqueuerLogins = try EnqueuerLogins.load(
                    path: path, relativeTo: Console.current.directory)
            }
            let pool = configuration.makePool()
            let metrics = http.map { WorkerMetrics(knownKinds: $0.knownKinds) }
            let worker = Worker(
                configuration: configuration, pool: pool, handlers: makeHandlers()(configuration), logger: logger,
                observer: metrics)
            // SIGTERM starts a graceful shutdown: running jobs stop at their next checkpoint.
            // After --shutdown-timeout the group cancels the worker, which cancels their
            // statements; they go back to the queue all the same, which takes the pool: so the
            // pool is not in the group (whose timeout would cancel it too) and closes only once
            // the worker has returned, every outcome written. The HTTP server, listed before the
            // worker, stops after it: /health says "draining" while running jobs wind down.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if let http {
                let server = OperationsServer(configuration: http, metrics: metrics, logger: logger) { worker.status }
                let application = server.service {
                    logger.notice("serving HTTP", metadata: ["address": "\(http.host):\(http.port)"])
                }
                services += [.init(service: server.pool), .init(service: application)]
            }
            services.append(.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup))
            var groupConfiguration = ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: Console.current.handlesSignals ? [.sigterm, .sigint] : [],
                logger: logger)
            groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(shutdownTimeout * 1000))
            let group = ServiceGroup(configuration: groupConfiguration)
            do {
                try await group.run()
            } catch {
                await pool.close()
                throw error
            }
            await pool.close()
        }
    }
}

extension WorkerCommand {
    /// The worker's settings from the options, but for the concurrency, drain and logins,
    /// which a fleet worker sets its own way.
    func workerConfiguration(databaseURL: String) throws -> WorkerConfiguration {
        var configuration = WorkerConfiguration(databaseURL: databaseURL)
        configuration.version = Godwit.configuration.version
        // With the changes' part: the worker runs changes' finish jobs, moves them on, and
        // samples the reader evidence `change complete` is gated on.
        configuration.schema = QueueSchema.withChanges(name: queueOptions.schema)
        configuration.periodicTasks = [
            ChangeSupervisor(schema: configuration.schema).task, ReaderSampler(schema: configuration.schema).task,
        ]
        configuration.pollInterval = .seconds(pollInterval)
        configuration.leaseTimeout = .seconds(leaseTimeout)
        configuration.connectTimeout = .milliseconds(Int(connection.connectTimeout * 1000))
        configuration.backoff = Backoff(base: .seconds(retryDelay))
        return configuration
    }

    /// The job kinds a worker runs, made for one database's configuration (a fleet worker
    /// makes them for each database it serves).
    func makeHandlers() -> @Sendable (WorkerConfiguration) -> [any JobHandler] {
        var throttle = BatchThrottle()
        throttle.maxReplicationLag = .milliseconds(Int(maxReplicationLag * 1000))
        throttle.holdDuringAutovacuum = holdDuringAutovacuum
        throttle.batchHistory = batchHistory
        throttle.maxArchiveBacklog = maxArchiveBacklog > 0 ? maxArchiveBacklog : nil
        throttle.healthQuery = healthQuery
        let lockPolicy = lockOptions.policy
        let backupDir = backupDir
        let directory = Console.current.directory
        return { [throttle] configuration in
            [
                NoopJob(), SQLJob(), BatchedJob(throttle: throttle, schema: configuration.schema),
                ChangeJob(schema: configuration.schema, lockPolicy: lockPolicy),
                MigrateJob(
                    backups: BackupManager(
                        directory: backupDir, schema: configuration.schema.name, workingDirectory: directory)),
            ]
        }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "List, inspect and control jobs (the same as godwit.pause(id) and friends in SQL).",
        subcommands: [Enqueue.self, List.self, Show.self, Watch.self, Pause.self, Resume.self, Cancel.self, Retry.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the newest jobs.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions

        @Option(help: "Only jobs in this state (repeatable).")
        var state: [JobState] = []

        @Option(help: "How many jobs to list.")
        var limit = 50

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func run() async throws {
            try await withCLIErrors {
                let jobs = try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                    try await queueOptions.explainingMissingSchema(on: conn) {
                        try await JobQueue(schema: QueueSchema(name: queueOptions.schema))
                            .list(states: state, limit: limit, on: conn)
                    }
                }
                switch format {
                case .json:
                    output(try jsonText(jobs))
                case .text:
                    output(
                        pad(
                            ["ID", "STATE", "KIND", "NAME", "ATTEMPTS", "PERCENT", "LAST ERROR"],
                            [8, 10, 8, 28, 9, 8, 0]))
                    for job in jobs {
                        output(
                            pad(
                                [
                                    "\(job.id)", job.state.rawValue, job.kind.rawValue, job.name,
                                    "\(job.attempts)/\(job.maxAttempts)", String(format: "%.1f", job.percent),
                                    job.staleMarker ?? job.lastError.map { String($0.prefix(60)) } ?? "",
                                ], [8, 10, 8, 28, 9, 8, 0]))
                    }
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one job, as JSON, with each attempt's error (errors) and a stale marker (stale_marker).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @Argument(help: "The job's id.") var id: Int64

        func run() async throws {
            try await withCLIErrors {
                let queue = JobQueue(schema: QueueSchema(name: queueOptions.schema))
                let job = try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) { conn in
                    let found = try await queueOptions.explainingMissingSchema(on: conn) {
                        try await queue.find(id, on: conn)
                    }
                    guard var job = found else { throw CLIError("no job \(id)") }
                    job.errors = try await queue.errors(of: id, on: conn)
                    return job
                }
                output(try jsonText(job))
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a job: a queued job waits; a running one stops at its next checkpoint.")
        @OptionGroup var arguments: ControlArguments
        func run() async throws { try await arguments.run(.pause) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused job where it stopped.")
        @OptionGroup var arguments: ControlArguments
        func run() async throws { try await arguments.run(.resume) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a job: a running one stops at its next checkpoint.")
        @OptionGroup var arguments: ControlArguments
        func run() async throws { try await arguments.run(.cancel) }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a failed or cancelled job again, with its attempts reset.")
        @OptionGroup var arguments: ControlArguments
        func run() async throws { try await arguments.run(.retry) }
    }
}

/// What `job pause|resume|cancel|retry` share: they differ only in the SQL function called.
struct ControlArguments: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions
    @Argument(help: "The job's id.") var id: Int64

    func run(_ action: JobAction) async throws {
        try await withCLIErrors {
            let queue = JobQueue(schema: QueueSchema(name: queueOptions.schema))
            let (before, changed) = try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel))
            {
                conn in
                // Read before: what the control acted on, not what a worker made of it since.
                let before = try await queueOptions.explainingMissingSchema(on: conn) {
                    try await queue.controlState(of: id, on: conn)
                }
                return (before, try await queue.control(action, job: id, on: conn))
            }
            guard let before else { throw CLIError("no job \(id)") }
            guard let said = Self.outcome(action, changed: changed, state: before.state, control: before.control) else {
                throw CLIError("job \(id) is \(before.state.rawValue): nothing to \(action.rawValue)")
            }
            output("job \(id): \(said)")
        }
    }

    /// What a control did to a job that was in `state` (with `control` requested), said
    /// plainly; nil when it could not apply (exit 1). Asking again for what is already so
    /// (pausing a paused job) is no error: the controls are idempotent.
    static func outcome(_ action: JobAction, changed: Bool, state: JobState, control: JobControl?) -> String? {
        switch (action, changed, state, control) {
        case (.pause, true, .running, _): "pausing: it stops at its next checkpoint"
        case (.pause, true, _, _): "paused"
        case (.pause, false, .paused, _): "already paused"
        case (.pause, false, .running, .pause?): "already pausing at its next checkpoint"
        case (.resume, true, .running, _): "pause withdrawn: it runs on"
        case (.resume, true, _, _): "resumed (queued)"
        case (.resume, false, .queued, _), (.resume, false, .running, nil): "not paused: already \(state.rawValue)"
        case (.cancel, true, .running, _): "cancelling: it stops at its next checkpoint"
        case (.cancel, true, _, _): "cancelled"
        case (.cancel, false, .cancelled, _): "already cancelled"
        case (.cancel, false, .running, .cancel?): "already cancelling at its next checkpoint"
        case (.retry, true, _, _): "queued again, its attempts reset"
        case (.retry, false, .queued, _), (.retry, false, .running, _): "already \(state.rawValue)"
        default: nil
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

extension JobState: ExpressibleByArgument {}

private func pad(_ cells: [String], _ widths: [Int]) -> String {
    zip(cells.map { TerminalText.escaped($0, keepingNewlines: false) }, widths).map { cell, width in
        width == 0 || cell.count >= width ? cell + " " : cell + String(repeating: " ", count: width - cell.count)
    }.joined().trimmingCharacters(in: .whitespaces)
}

func jsonText<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
