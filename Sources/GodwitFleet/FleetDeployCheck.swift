import GodwitMigrations
import GodwitPostgres

/// The deploy gate across a fleet (`godwit fleet check`): every target at the folder's newest
/// version, with no migration modified, partially applied or (unless ignored) missing from the
/// folder. Reads only, as `migrate check`: takes no lock, creates nothing, and needs no control
/// database. Targets are read `parallel` at once, each on a connection of its own.
public struct FleetDeployCheck: Sendable {
    /// What one target's check found.
    public struct Result: Sendable, Equatable {
        public var name: String
        /// Why it does not pass, one phrase each (`pending: 3/add_x (migrations/3_add_x.sql)`),
        /// or the one reason it could not be read (`could not connect: ...`); empty when it passes.
        public var reasons: [String]
        public var passed: Bool { reasons.isEmpty }

        /// `name: reason; reason`, the line `fleet check` prints for a target that fails.
        public var line: String { "\(name): \(reasons.joined(separator: "; "))" }
    }

    public let migrator: Migrator
    public var parallel: Int
    public var sessionOptions: SessionOptions
    public var ignoreMissing: Bool

    public init(migrator: Migrator, parallel: Int = 4, sessionOptions: SessionOptions, ignoreMissing: Bool = false) {
        self.migrator = migrator
        self.parallel = parallel
        self.sessionOptions = sessionOptions
        self.ignoreMissing = ignoreMissing
    }

    /// Checks every target of `fleet`; returns the results in the fleet's order.
    public func check(_ fleet: FleetTargets) async throws -> [Result] {
        guard parallel >= 1 else {
            throw FleetError(.badOptions, "--parallel \(parallel): at least 1 target must run at a time")
        }
        var results = [Result?](repeating: nil, count: fleet.targets.count)
        await withTaskGroup(of: (Int, Result).self) { group in
            var next = 0
            func startNext() {
                guard next < fleet.targets.count else { return }
                let index = next
                let target = fleet.targets[index]
                next += 1
                group.addTask { (index, await check(target)) }
            }
            for _ in 0..<parallel { startNext() }
            while let (index, result) = await group.next() {
                results[index] = result
                startNext()
            }
        }
        return results.compactMap { $0 }
    }

    /// One target's check; never throws: what could not be read is its reason.
    func check(_ target: FleetTarget) async -> Result {
        var migrator = self.migrator
        migrator.config = target.migrationConfig(base: migrator.config)
        var connected = false
        do {
            let check = try await Connection.withConnection(target.connection, options: sessionOptions) { conn in
                connected = true
                return try await migrator.deployCheck(on: conn, ignoreMissing: ignoreMissing)
            }
            return Result(name: target.name, reasons: check.reasons.map(\.text))
        } catch {
            let text = connected ? "\(error)" : "could not connect: \(error)"
            let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
            return Result(name: target.name, reasons: [ConnectionString.scrub(line, conninfo: target.connection)])
        }
    }
}
