import Foundation
import GodwitJobs
import GodwitMigrations
import GodwitPostgres
import Logging
import Synchronization

/// Runs one migrations folder over a fleet, target by target, recording every step on the
/// control database (`FleetRecords`).
///
/// Each target gets what `godwit migrate run` does (`SafeMigration`: the lint gate, `--strict`,
/// sqlx's advisory lock, lock timeouts with retries) on a connection of its own, opened when it
/// starts and closed when it ends. The folder is read once, by the one `Migrator` of the run;
/// a schema target runs it with its own ledger (`<schema>._sqlx_migrations`, the schema created
/// when missing) and `search_path` (`"<schema>", public`).
///
/// The order: the canary targets first, one by one, and any failure among them stops the run
/// (the rest `skipped`); then the others, at most `parallel` at once, and never two of one
/// database at once (`FleetTarget.databaseKey`: sqlx's lock is database-wide, so they would
/// only queue on it). Under `OnError.stop` a failure starts no new target. While it runs the
/// process beats `fleet_runs.heartbeat_at` every `heartbeatInterval`; the caller holds the
/// run's advisory lock (`FleetRecords.tryLock`), which tells resume that it is alive.
public struct FleetRunner: Sendable {
    /// What happened, as it happened, for the live table.
    public enum Progress: Sendable {
        /// The target's session is connecting; it runs from now on.
        case started(name: String)
        /// The target waits for sqlx's migration lock (an application or another migrate
        /// holds it); `.applied` or `.finished` follows when it has it.
        case waitingForLock(name: String)
        /// One migration applied on the target.
        case applied(name: String, event: MigrationEvent)
        /// A lint warning for the target (the catalog check's; `--strict` refuses instead).
        case warning(name: String, message: String)
        /// The target ended.
        case finished(Outcome)
        /// These targets will not run in this attempt (a canary failed, or `--on-error stop`).
        case skipped(names: [String])
    }

    /// How one target ended.
    public struct Outcome: Sendable, Equatable {
        public var name: String
        public var state: FleetTargetState
        /// The versions applied in this attempt, in order (some, when it failed part-way).
        public var applied: [Int64]
        /// One line, scrubbed of the target's password: what failed, naming the migration's
        /// version and file when one did.
        public var error: String?
        /// How long its session waited for sqlx's lock, when it got that far.
        public var lockWaitMs: Double?
        public var seconds: Double
    }

    /// A target to run, and whether it is one of the canary.
    public struct Planned: Sendable {
        public var target: FleetTarget
        public var canary: Bool

        public init(target: FleetTarget, canary: Bool) {
            self.target = target
            self.canary = canary
        }
    }

    /// The run's migrations (read once) and sqlx.toml's settings for database targets.
    public let migrator: Migrator
    public let options: FleetMigrateOptions
    public let records: FleetRecords
    /// How often `fleet_runs.heartbeat_at` is written while the run goes on.
    public var heartbeatInterval: Duration = .seconds(5)
    /// How often the versions the targets applied since are written to their records (in one
    /// statement for all of them): a record is at most this much behind its target's ledger.
    public var appliedInterval: Duration = .milliseconds(500)

    public init(migrator: Migrator, options: FleetMigrateOptions, records: FleetRecords) {
        self.migrator = migrator
        self.options = options
        self.records = records
    }

    // MARK: Starting and resuming

    /// `[{"version": n, "checksum": "hex"}]` of the folder's up migrations, as
    /// `fleet_runs.checksums` records them.
    public static func checksumsJSON(of source: MigrationSource) -> String {
        "["
            + source.upMigrations.map { #"{"version": \#($0.version), "checksum": "\#($0.checksumHex)"}"# }
            .joined(separator: ", ") + "]"
    }

    /// How the folder differs from the checksums a run recorded: one phrase per version added,
    /// removed or changed; empty when it is the same.
    public static func sourceChanges(of source: MigrationSource, since recorded: String) throws -> [String] {
        struct Entry: Decodable {
            var version: Int64
            var checksum: String
        }
        let entries: [Entry]
        do {
            entries = try JSONDecoder().decode([Entry].self, from: Data(recorded.utf8))
        } catch {
            throw FleetError(.wrongState, "the run's recorded checksums cannot be read: \(error)")
        }
        let before = Dictionary(entries.map { ($0.version, $0.checksum) }, uniquingKeysWith: { $1 })
        let now = Dictionary(source.upMigrations.map { ($0.version, $0.checksumHex) }, uniquingKeysWith: { $1 })
        var changes: [String] = []
        for version in Set(before.keys).union(now.keys).sorted() {
            switch (before[version], now[version]) {
            case (nil, _?): changes.append("\(version) added")
            case (_?, nil): changes.append("\(version) removed")
            case (let old?, let new?) where old != new:
                changes.append("\(version) modified (\(source.up(for: version)?.path ?? "\(version)"))")
            default: break
            }
        }
        return changes
    }

    /// Starts a new run of `fleet` on `control`: checks the options against the fleet (nothing
    /// is recorded or run when they are refused), installs the fleets' part, records the run
    /// with every target pending, holds the run's lock, runs it (`run(_:)`), and returns its id.
    /// `source` is the folder as given, for `fleet_runs.source`.
    public func start(
        _ fleet: FleetTargets, source: String, control: Connection, onStart: @Sendable (Int64) -> Void = { _ in },
        onProgress: @escaping @Sendable (Progress) -> Void
    ) async throws -> Int64 {
        try options.validate(targetCount: fleet.targets.count)
        try await records.install(on: control)
        let id = try await records.insertRun(
            command: "migrate", source: source, checksums: Self.checksumsJSON(of: migrator.source),
            options: try options.jsonText(), targetsOrigin: fleet.origin, targets: fleet.targets,
            canary: options.canary, on: control)
        guard try await records.tryLock(run: id, on: control) else {
            throw FleetError(.wrongState, "run \(id): another session holds its lock")
        }
        onStart(id)
        let planned = fleet.targets.enumerated().map { Planned(target: $1, canary: $0 < options.canary) }
        try await run(id, planned, control: control, onProgress: onProgress)
        await records.unlock(run: id, on: control)
        return id
    }

    /// Runs `planned` (in order, the canary first) as run `id`, whose lock the caller holds,
    /// then ends the run: `succeeded` when every one of its targets has, else `failed`.
    public func run(
        _ id: Int64, _ planned: [Planned], control: Connection, onProgress: @escaping @Sendable (Progress) -> Void
    ) async throws {
        let unrecorded = Unrecorded()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [records, heartbeatInterval] in
                while !Task.isCancelled {
                    try await Task.sleep(for: heartbeatInterval)
                    try await records.heartbeat(run: id, on: control)
                }
            }
            group.addTask { [records, appliedInterval] in
                while !Task.isCancelled {
                    try await Task.sleep(for: appliedInterval)
                    let versions = unrecorded.take()
                    // A write that fails here is made again by finishTarget, which throws if the
                    // control database is gone: this one only keeps the record current.
                    try? await records.addApplied(run: id, versions: versions, on: control)
                }
            }
            defer { group.cancelAll() }
            try await runTargets(id, planned, control: control, unrecorded: unrecorded, onProgress: onProgress)
            let skipped = try await records.targets(run: id, on: control).filter { $0.state == .pending }.map(\.name)
            if !skipped.isEmpty {
                try await records.skipPending(run: id, on: control)
                onProgress(.skipped(names: skipped))
            }
            let all = try await records.targets(run: id, on: control)
            try await records.finishRun(
                run: id, state: all.allSatisfy { $0.state == .succeeded } ? .succeeded : .failed, on: control)
        }
    }

    /// The canary one by one, then the rest under `parallel` and one target per database at once.
    private func runTargets(
        _ id: Int64, _ planned: [Planned], control: Connection, unrecorded: Unrecorded,
        onProgress: @escaping @Sendable (Progress) -> Void
    ) async throws {
        for item in planned where item.canary {
            try await records.startTarget(run: id, name: item.target.name, on: control)
            let outcome = await migrate(item.target, unrecorded: unrecorded, onProgress: onProgress)
            try await record(outcome, run: id, control: control, onProgress: onProgress)
            guard outcome.state == .succeeded else { return }
        }
        var queue = planned.filter { !$0.canary }.map(\.target)
        var busy = Set<String>()
        var stopping = false
        try await withThrowingTaskGroup(of: (FleetTarget, Outcome).self) { group in
            var running = 0
            while true {
                var index = 0
                while !stopping, running < options.parallel, index < queue.count {
                    let target = queue[index]
                    guard !busy.contains(target.databaseKey) else {
                        index += 1
                        continue
                    }
                    queue.remove(at: index)
                    busy.insert(target.databaseKey)
                    running += 1
                    try await records.startTarget(run: id, name: target.name, on: control)
                    group.addTask { (target, await migrate(target, unrecorded: unrecorded, onProgress: onProgress)) }
                }
                guard let (target, outcome) = try await group.next() else { break }
                running -= 1
                busy.remove(target.databaseKey)
                try await record(outcome, run: id, control: control, onProgress: onProgress)
                if outcome.state != .succeeded && options.onError == .stop { stopping = true }
            }
        }
    }

    private func record(
        _ outcome: Outcome, run id: Int64, control: Connection, onProgress: @Sendable (Progress) -> Void
    ) async throws {
        try await records.finishTarget(
            run: id, name: outcome.name, state: outcome.state, applied: outcome.applied, error: outcome.error,
            lockWaitMs: outcome.lockWaitMs, on: control)
        onProgress(.finished(outcome))
    }

    // MARK: One target

    /// Migrates one target on a connection of its own; never throws: a failure is the outcome's.
    /// The versions it applies go to `unrecorded`, which the run writes to the record every
    /// `appliedInterval`.
    private func migrate(
        _ target: FleetTarget, unrecorded: Unrecorded, onProgress: @escaping @Sendable (Progress) -> Void
    ) async -> Outcome {
        await migrate(target) { progress in
            if case .applied(let name, let event) = progress { unrecorded.add(event.version, for: name) }
            onProgress(progress)
        }
    }

    /// Migrates one target on a connection of its own; never throws: a failure is the outcome's.
    func migrate(_ target: FleetTarget, onProgress: @escaping @Sendable (Progress) -> Void) async -> Outcome {
        let clock = ContinuousClock()
        let started = clock.now
        let collected = Collected()
        let name = target.name
        onProgress(.started(name: name))
        var connected = false
        do {
            let connection = try await Connection.connect(target.connection, options: options.sessionOptions)
            connected = true
            do {
                try await migrate(target, on: connection, collected: collected, onProgress: onProgress)
                await connection.close()
            } catch {
                await connection.close()
                throw error
            }
            return Outcome(
                name: name, state: .succeeded, applied: collected.applied.withLock { $0 }, error: nil,
                lockWaitMs: collected.lockWait.withLock { $0 }, seconds: (clock.now - started).seconds)
        } catch {
            return Outcome(
                name: name, state: .failed, applied: collected.applied.withLock { $0 },
                error: errorLine(error, target: target, connecting: !connected),
                lockWaitMs: collected.lockWait.withLock { $0 },
                seconds: (clock.now - started).seconds)
        }
    }

    private func migrate(
        _ target: FleetTarget, on connection: Connection, collected: Collected,
        onProgress: @escaping @Sendable (Progress) -> Void
    ) async throws {
        let name = target.name
        if let path = target.migrationSearchPath {
            try await connection.query("SELECT pg_catalog.set_config('search_path', $1, false)", [path])
        }
        var migrator = self.migrator
        migrator.config = target.migrationConfig(base: migrator.config)
        migrator.lockPolicy = options.lockPolicy
        // sqlx's lock, taken here first to time the wait (the migrator takes it again, at once:
        // a session's advisory locks nest), and held through the lint gate and the migrations.
        let clock = ContinuousClock()
        let asked = clock.now
        let key = try await withLockWaitReported(name: name, on: connection, onProgress: onProgress) {
            try await MigrationLock.acquire(on: connection, logger: migrator.logger)
        }
        collected.lockWait.withLock { $0 = (clock.now - asked).milliseconds }
        let safe = SafeMigration(
            migrator: migrator, databaseURL: target.connection,
            options: SafeMigration.Options(strict: options.strict))
        try await safe.run(on: connection) { event in
            switch event {
            case .migration(let event):
                guard event.action == .applied else { return }
                collected.applied.withLock { $0.append(event.version) }
                onProgress(.applied(name: name, event: event))
            case .lintWarning(let finding):
                onProgress(
                    .warning(
                        name: name,
                        message:
                            "\(finding.file):\(finding.line): \(finding.rule): \(finding.message) (godwit migrate lint says more; --strict refuses)"
                    ))
            case .lintFailed(let error):
                onProgress(.warning(name: name, message: "could not lint the pending migrations: \(error)"))
            case .backup:
                break
            }
        }
        try await MigrationLock.release(key: key, on: connection)
    }

    /// Runs `acquire`, reporting `.waitingForLock` when it has not returned within a moment.
    private func withLockWaitReported<T: Sendable>(
        name: String, on connection: Connection, onProgress: @escaping @Sendable (Progress) -> Void,
        _ acquire: () async throws -> T
    ) async throws -> T {
        let reporter = Task {
            try await Task.sleep(for: .milliseconds(300))
            onProgress(.waitingForLock(name: name))
        }
        defer { reporter.cancel() }
        return try await acquire()
    }

    /// The one line `fleet_targets.error` holds for `error`: what failed, naming the migration's
    /// version and file when one did, without line breaks, scrubbed of the target's secrets.
    func errorLine(_ error: any Error, target: FleetTarget, connecting: Bool) -> String {
        var text: String
        switch error {
        case let error as MigrationError:
            text = error.description
            if let version = error.version, let file = migrator.source.up(for: version)?.path,
                !text.contains(file)
            {
                text += " (\(file))"
            }
        case let error as SafeMigrationError:
            let first = error.findings.first.map { "\($0.file):\($0.line): \($0.rule): \($0.message)" } ?? ""
            let more = error.findings.count > 1 ? " (and \(error.findings.count - 1) more)" : ""
            text = "--strict: migrate lint flags \(first)\(more); nothing was applied"
        case let error as any GodwitError:
            text = connecting ? "could not connect: \(error.description)" : error.description
        case is CancellationError:
            text = "cancelled"
        default:
            text = "\(error)"
        }
        let oneLine = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return String(ConnectionString.scrub(oneLine, conninfo: target.connection).prefix(2000))
    }
}

/// The versions the run's targets applied that their records do not hold yet, by target.
private final class Unrecorded: Sendable {
    private let versions = Mutex<[String: [Int64]]>([:])

    func add(_ version: Int64, for target: String) { versions.withLock { $0[target, default: []].append(version) } }

    /// Those added since the last take.
    func take() -> [String: [Int64]] {
        versions.withLock { pending in
            defer { pending = [:] }
            return pending
        }
    }
}

/// What one target's migration collects as it goes, read whether it succeeds or fails.
private final class Collected: Sendable {
    /// The versions applied, in order.
    let applied = Mutex<[Int64]>([])
    /// How long the session waited for sqlx's lock, once it has it.
    let lockWait = Mutex<Double?>(nil)
}
