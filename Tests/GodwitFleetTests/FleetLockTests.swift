import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

extension FleetTests {
    /// An application holding sqlx's migration lock on one database (a service migrating at
    /// start-up) delays that target only.
    @Suite("sqlx's lock held by an application")
    struct LockTests {
        @Test func delaysOnlyItsTarget() async throws {
            try await FleetFixture.with(databasesPerCluster: 2, schemasPerDatabase: 0) { fleet in
                let held = fleet.targets[3]
                let application = try await Connection.connect(held.url)
                try await application.query(
                    "SELECT pg_advisory_lock($1::int8)", [MigrationLock.key(forDatabase: held.database)])
                let run = GodwitCommand.start(
                    [
                        "fleet", "migrate", "--targets", "targets.txt", "--source", "migrations", "--parallel", "6",
                        "-D", fleet.control.url,
                    ], directory: fleet.directory.path)
                let othersDone = try await eventually(timeout: .seconds(120)) {
                    guard try await fleet.runCount() == 1 else { return false }
                    let rows = try await fleet.targetRows()
                    return rows.count == fleet.targets.count
                        && rows.filter { $0.key != held.name }.allSatisfy { $0.value.state == "succeeded" }
                        && rows[held.name]?.state == "running"
                        && run.currentStdout.contains("\(held.name): waiting for the migration lock")
                }
                #expect(othersDone, "\(run.currentStdout)\n\(run.currentStderr)")
                #expect(try await fleet.ledger(held) == [])
                await application.close()
                let output = await run.wait()
                #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
                let rows = try await fleet.targetRows()
                #expect(rows.values.allSatisfy { $0.state == "succeeded" })
                #expect((rows[held.name]?.lockWaitMs ?? 0) > 0)
                let last = try await fleet.withControl { conn in
                    try await conn.query(
                        "SELECT name FROM godwit.fleet_targets ORDER BY finished_at DESC LIMIT 1"
                    ).first?.string("name")
                }
                #expect(last == held.name)
                #expect(try await fleet.ledger(held) == [1, 2, 3])
            }
        }
    }
}
