import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

extension FleetTests {
    /// What survives the fleet process: `kill -9` in the middle of a run, then `fleet resume`.
    @Suite("A fleet run survives kill -9")
    struct KillTests {
        /// Six database targets on three clusters, the second migration sleeping a second: the
        /// `godwit fleet migrate` process is killed once two targets succeeded and another runs.
        /// The run stays `running` and shows as interrupted; every target's ledger holds whole
        /// migrations only; resume finishes the rest and check passes.
        @Test func killedMidRunThenResumed() async throws {
            var migrations = FleetFixture.migrations
            migrations["2_add_note.sql"] = "ALTER TABLE items ADD COLUMN note text;\nSELECT pg_sleep(1);\n"
            try await FleetFixture.with(databasesPerCluster: 2, schemasPerDatabase: 0, migrations: migrations) {
                fleet in
                let process = try GodwitProcess.start(
                    [
                        "fleet", "migrate", "--targets", "targets.txt", "--source", "migrations", "--parallel", "2",
                        "-D", fleet.control.url,
                    ], directory: fleet.directory.path)
                let midway = try await eventually(timeout: .seconds(120), every: .milliseconds(20)) {
                    guard try await fleet.runCount() == 1 else { return false }
                    let rows = try await fleet.targetRows()
                    return rows.values.filter { $0.state == "succeeded" }.count >= 2
                        && rows.values.contains { $0.state == "running" }
                }
                process.signal(SIGKILL)
                let killed = try await process.wait()
                #expect(midway, "\(killed.stdout)\n\(killed.stderr)")
                #expect(killed.status != 0)
                let rows = try await fleet.targetRows()
                #expect(rows.values.contains { $0.state != "succeeded" }, "the run ended before the kill")
                #expect(try await fleet.latestRun().state == "running")

                // Each ledger holds whole migrations, in order: the one killed in its sleeping
                // second migration has the first only (its transaction never committed).
                for target in fleet.targets {
                    let versions = try await fleet.ledger(target)
                    #expect(versions == Array([1, 2, 3].prefix(versions.count)), "\(target.name): \(versions)")
                }
                // Once the server has noticed, the run's lock is free and status says interrupted.
                let (id, _) = try await fleet.latestRun()
                let interrupted = try await eventually(timeout: .seconds(60)) {
                    let status = try await fleet.fleet(["status", "\(id)"])
                    return status.status == 1 && status.stdout.contains(", interrupted,")
                }
                #expect(interrupted)
                let resumed = try await fleet.fleet(["resume", "\(id)"])
                #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
                let after = try await fleet.targetRows()
                #expect(after.values.allSatisfy { $0.state == "succeeded" }, "\(after)")
                for (name, row) in after where rows[name]?.state == "succeeded" {
                    #expect(row.attempts == 1, "\(name) ran again")
                }
                for target in fleet.targets {
                    #expect(try await fleet.ledger(target) == [1, 2, 3], "\(target.name)")
                }
                let check = try await fleet.check()
                #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
            }
        }
    }
}
