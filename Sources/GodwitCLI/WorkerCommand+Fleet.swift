import ArgumentParser
import Foundation
import GodwitFleet
import GodwitPostgres
import GodwitQueue
import Logging
import ServiceLifecycle
import Synchronization

/// `godwit worker --targets FILE [--connections N]`: the queues of many databases in one process
/// (`FleetWorker`).
///
/// Decisions, for the options a single-database worker has:
/// - A target's `schema=` names the tenant's schema, not the queue's: targets in one database
///   share its queue (`--schema`, `godwit` by default), served once. A schema target's jobs run
///   under the search_path `fleet enqueue` recorded, which starts with its schema.
/// - `--http`, `--migrate` and `--enqueuer-logins` are refused with --targets: the dashboard
///   serves one database, fleet migrations are `godwit fleet migrate`'s, and a logins file
///   names one database's logins (a job's session logs in with its target's connection string,
///   the user replaced, as a worker does without the file).
extension WorkerCommand {
    func validateFleet() throws {
        guard fleetTargets.given else { return }
        if httpOptions.http != nil {
            throw ValidationError("--http serves one database: it cannot be used with --targets")
        }
        if migrate {
            throw ValidationError(
                "--migrate cannot be used with --targets: migrate a fleet with `godwit fleet migrate`")
        }
        if enqueuerLogins != nil {
            throw ValidationError(
                "--enqueuer-logins names one database's logins: with --targets, job sessions log in with each target's connection string, its user replaced (.pgpass)"
            )
        }
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard slice > 0 else { throw ValidationError("--slice must be positive") }
    }

    func runFleet(logger: Logger) async throws {
        let targets = try await fleetTargets.load(control: connection, logger: logger)
        // The template each database's worker starts from; its URL is the database's.
        var configuration = try workerConfiguration(databaseURL: "")
        configuration.concurrency = jobsAtOnce
        var fleet = FleetWorkerConfiguration(targets: targets.targets, connections: connections, worker: configuration)
        fleet.slice = .milliseconds(Int(slice * 1000))
        fleet.drain = drain
        let worker = try FleetWorker(configuration: fleet, logger: logger, makeHandlers: makeHandlers())
        let service = FleetWorkerService(worker: worker)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: Console.current.handlesSignals ? [.sigterm, .sigint] : [],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(shutdownTimeout * 1000))
        try await ServiceGroup(configuration: groupConfiguration).run()
        // Draining, a database that could not be reached or served was not drained.
        let failures = service.outcome?.failures ?? []
        if drain && !failures.isEmpty {
            for failure in failures.dropLast() {
                printError("target \(failure.database.name): \(failure.error)")
            }
            let last = failures[failures.count - 1]
            throw CLIError(
                "target \(last.database.name): \(last.error) (\(failures.count) of \(worker.databases.count) databases not drained)"
            )
        }
    }
}

extension FleetTargetOptions {
    /// Whether `--targets` or `--targets-query` was given: `worker` serves a fleet then.
    var given: Bool { targets != nil || targetsQuery != nil }
}

/// Runs a `FleetWorker` in a service group: graceful shutdown (SIGTERM, SIGINT) stops it as it
/// stops a worker.
final class FleetWorkerService: Service {
    let worker: FleetWorker
    private let result = Mutex<FleetWorker.Outcome?>(nil)

    init(worker: FleetWorker) { self.worker = worker }

    /// What the run left, once it returned.
    var outcome: FleetWorker.Outcome? { result.withLock { $0 } }

    func run() async throws {
        let outcome = await withGracefulShutdownHandler {
            await worker.run()
        } onGracefulShutdown: {
            self.worker.shutdown()
        }
        result.withLock { $0 = outcome }
    }
}
