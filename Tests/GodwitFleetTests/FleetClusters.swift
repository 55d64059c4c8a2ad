import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Three private PostgreSQL clusters, started once for the fleet suite (`.fleetClusters`) and
/// destroyed after it; each test makes databases of its own on them (`FleetFixture`).
final class FleetClusters: Sendable {
    let clusters: [PrivateCluster]

    init(_ clusters: [PrivateCluster]) { self.clusters = clusters }

    /// The clusters of the suite running now.
    @TaskLocal static var current: FleetClusters?

    static func start() async throws -> FleetClusters {
        async let first = PrivateCluster()
        async let second = PrivateCluster()
        async let third = PrivateCluster()
        return FleetClusters(try await [first, second, third])
    }

    func destroy() async {
        for cluster in clusters { await cluster.destroy() }
    }

    /// The clusters, or a setup error outside a suite with the trait.
    static var shared: FleetClusters {
        get throws {
            guard let current else { throw TestSetupError(message: "the suite needs the .fleetClusters trait") }
            return current
        }
    }
}

/// Starts the three clusters around the suite it is given to, once, and destroys them after.
struct FleetClustersTrait: SuiteTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let clusters = try await FleetClusters.start()
        do {
            try await FleetClusters.$current.withValue(clusters) { try await function() }
            await clusters.destroy()
        } catch {
            await clusters.destroy()
            throw error
        }
    }
}

extension Trait where Self == FleetClustersTrait {
    /// Three private clusters for the suite's fleets.
    static var fleetClusters: Self { Self() }
}

/// One test's fleet: databases of its own on the three clusters, a database target for each
/// and `schemasPerDatabase` schema targets in each, a migrations folder, a targets file, and a
/// control database on the test server.
struct FleetFixture: Sendable {
    /// A target as the targets file names it.
    struct Target: Sendable {
        var name: String
        var url: String
        var schema: String?
        /// The database it lives in (its URL's).
        var database: String
    }

    let clusters: [PrivateCluster]
    /// `(cluster index, database name, URL)`.
    let databases: [(cluster: Int, name: String, url: String)]
    let targets: [Target]
    let directory: TemporaryDirectory
    let control: TestDatabase

    /// Three small migrations: a table, a column, another table.
    static let migrations = [
        "1_create_items.sql": "CREATE TABLE items (id bigint PRIMARY KEY, name text);\n",
        "2_add_note.sql": "ALTER TABLE items ADD COLUMN note text;\n",
        "3_create_tags.sql": "CREATE TABLE tags (id bigint PRIMARY KEY, label text);\n",
    ]

    var migrationsPath: String { "\(directory.path)/migrations" }
    var targetsPath: String { "\(directory.path)/targets.txt" }

    /// Makes `databasesPerCluster` databases on each cluster (created at once on the three),
    /// the targets file (per database: its database target, then its schema targets, names
    /// `c1-d1` and `c1-d1-s1`), the migrations folder and the control database.
    static func make(
        databasesPerCluster: Int, schemasPerDatabase: Int, migrations: [String: String] = FleetFixture.migrations
    ) async throws -> FleetFixture {
        let clusters = try FleetClusters.shared.clusters
        let tag = "f\(UInt32.random(in: 0...UInt32.max))"
        let made = try await withThrowingTaskGroup(of: [(cluster: Int, name: String, url: String)].self) { group in
            for (index, cluster) in clusters.enumerated() {
                group.addTask {
                    try await Connection.withConnection(cluster.url) { admin in
                        var made: [(cluster: Int, name: String, url: String)] = []
                        for number in 1...databasesPerCluster {
                            let name = "\(tag)_c\(index + 1)_d\(number)"
                            try await admin.execute("CREATE DATABASE \(quoteIdentifier(name)) TEMPLATE template0")
                            made.append((index, name, try TestDatabase.url(cluster.url, database: name)))
                        }
                        return made
                    }
                }
            }
            var all: [(cluster: Int, name: String, url: String)] = []
            for try await some in group { all += some }
            return all.sorted { ($0.cluster, $0.name) < ($1.cluster, $1.name) }
        }
        var targets: [Target] = []
        for database in made {
            let base = "c\(database.cluster + 1)-d\(database.name.split(separator: "_").last!.dropFirst())"
            targets.append(Target(name: base, url: database.url, schema: nil, database: database.name))
            for number in 0..<schemasPerDatabase {
                targets.append(
                    Target(
                        name: "\(base)-s\(number + 1)", url: database.url, schema: "t\(number + 1)",
                        database: database.name))
            }
        }
        let directory = try TemporaryDirectory(prefix: "godwit-fleet")
        for (name, text) in migrations { try directory.write("migrations/\(name)", text) }
        let fixture = FleetFixture(
            clusters: clusters, databases: made, targets: targets, directory: directory,
            control: try await TestDatabase.create(prefix: "godwit_fleet"))
        try fixture.writeTargets(targets)
        return fixture
    }

    /// Writes `targets` as the targets file, one line each, with a comment.
    func writeTargets(_ targets: [Target], to name: String = "targets.txt") throws {
        var text = "# a test fleet: \(targets.count) targets over \(clusters.count) clusters\n"
        for target in targets {
            text += "\(target.name) \(target.url)" + (target.schema.map { " schema=\($0)" } ?? "") + "\n"
        }
        try directory.write(name, text)
    }

    /// Runs `body` with a fixture, then drops its databases and folder, whatever `body` did.
    static func with<T>(
        databasesPerCluster: Int, schemasPerDatabase: Int, migrations: [String: String] = FleetFixture.migrations,
        _ body: (FleetFixture) async throws -> T
    ) async throws -> T {
        let fixture = try await make(
            databasesPerCluster: databasesPerCluster, schemasPerDatabase: schemasPerDatabase, migrations: migrations)
        do {
            let value = try await body(fixture)
            await fixture.drop()
            return value
        } catch {
            await fixture.drop()
            throw error
        }
    }

    func drop() async {
        for (index, cluster) in clusters.enumerated() {
            try? await Connection.withConnection(cluster.url) { admin in
                for database in databases where database.cluster == index {
                    try await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(database.name)) WITH (FORCE)")
                }
            }
        }
        try? await control.drop()
        directory.delete()
    }

    // MARK: Running and reading

    /// `godwit fleet ARGS -D control` in this process, in the fixture's folder (so `migrations`
    /// and `targets.txt` are found as given).
    func fleet(_ arguments: [String]) async throws -> GodwitProcess.Output {
        try await GodwitCommand.run(["fleet"] + arguments + ["-D", control.url], directory: directory.path)
    }

    /// `fleet migrate --targets targets.txt --source migrations ARGS`.
    func migrate(_ arguments: [String] = []) async throws -> GodwitProcess.Output {
        try await fleet(["migrate", "--targets", "targets.txt", "--source", "migrations"] + arguments)
    }

    /// `fleet check --targets targets.txt --source migrations`.
    func check() async throws -> GodwitProcess.Output {
        try await fleet(["check", "--targets", "targets.txt", "--source", "migrations"])
    }

    /// A connection to the control database for `body`.
    func withControl<T>(_ body: (Connection) async throws -> T) async throws -> T {
        try await Connection.withConnection(control.url, body)
    }

    /// The latest run's targets by name: `(state, applied versions, error, attempts)`.
    func targetRows(run: Int64? = nil) async throws -> [String: TargetRow] {
        try await withControl { conn in
            let result = try await conn.query(
                """
                SELECT name, state, array_to_string(applied_versions, ',') AS applied, error, attempts,
                       lock_wait_ms, finished_at
                FROM godwit.fleet_targets
                WHERE run_id = COALESCE($1, (SELECT max(id) FROM godwit.fleet_runs))
                """, [run])
            var rows: [String: TargetRow] = [:]
            for row in result.rows {
                rows[try row.string("name")] = TargetRow(
                    state: try row.string("state"),
                    applied: (row["applied"] ?? "").split(separator: ",").compactMap { Int64($0) },
                    error: row["error"], attempts: try row.int("attempts"),
                    lockWaitMs: row["lock_wait_ms"].flatMap(Double.init))
            }
            return rows
        }
    }

    /// The number of runs recorded (0 when the fleets' part is not even installed).
    func runCount() async throws -> Int {
        try await withControl { conn in
            guard
                try await conn.query("SELECT to_regclass('godwit.fleet_runs') IS NOT NULL AS present").first?.bool(
                    "present") == true
            else { return 0 }
            return try await conn.query("SELECT count(*) AS n FROM godwit.fleet_runs").first?.int("n") ?? 0
        }
    }

    /// The latest run's id and state.
    func latestRun() async throws -> (id: Int64, state: String) {
        try await withControl { conn in
            guard
                let row = try await conn.query("SELECT id, state FROM godwit.fleet_runs ORDER BY id DESC LIMIT 1").first
            else { throw TestSetupError(message: "no run recorded") }
            return (try row.int64("id"), try row.string("state"))
        }
    }

    /// The versions the target's ledger has (none without a ledger); a row left partially
    /// applied (`success = false`) throws.
    func ledger(_ target: Target) async throws -> [Int64] {
        try await Connection.withConnection(target.url) { conn in
            let table = target.schema.map { "\(quoteIdentifier($0))._sqlx_migrations" } ?? "public._sqlx_migrations"
            guard
                try await conn.query("SELECT to_regclass($1) IS NOT NULL AS present", [table]).first?.bool("present")
                    == true
            else { return [] }
            let rows = try await conn.query("SELECT version, success FROM \(table) ORDER BY version").rows
            if let dirty = try rows.first(where: { try !$0.bool("success") }) {
                throw TestSetupError(
                    message: "\(target.name): migration \(dirty["version"] ?? "") is partially applied")
            }
            return try rows.map { try $0.int64("version") }
        }
    }

    func target(_ name: String) throws -> Target {
        guard let target = targets.first(where: { $0.name == name }) else {
            throw TestSetupError(message: "no target \(name)")
        }
        return target
    }
}

/// A target's row in `fleet_targets`, as the tests read it.
struct TargetRow: Sendable {
    var state: String
    var applied: [Int64]
    var error: String?
    var attempts: Int
    var lockWaitMs: Double?
}
