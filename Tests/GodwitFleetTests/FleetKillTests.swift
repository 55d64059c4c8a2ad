import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

extension FleetTests {
    /// What survives the fleet process: `kill -9` in the middle of a run, then `fleet resume`.
    @Suite("A fleet run survives kill -9")
    struct KillTests {
        /// The advisory lock the second migration waits for, where the test holds it.
        static let gate: Int64 = 23_023

        /// Six database targets on three clusters; the second migration is slow on one of them:
        /// it waits for an advisory lock the test holds in that database (the gate, in place of a
        /// `pg_sleep` that a loaded machine could outlast), with its first statement done and its
        /// transaction open. The `godwit fleet migrate` process is killed with SIGKILL once two
        /// targets succeeded and that one is inside its migration. The run stays `running` and
        /// shows as interrupted; every ledger holds whole migrations only (that target the first
        /// one, which its record says it applied); resume finishes the rest without running a
        /// target that had succeeded, and check passes.
        @Test func killedMidRunThenResumed() async throws {
            var migrations = FleetFixture.migrations
            migrations["2_add_note.sql"] =
                "ALTER TABLE items ADD COLUMN note text;\nSELECT pg_advisory_xact_lock(\(Self.gate));\n"
            try await FleetFixture.with(databasesPerCluster: 2, schemasPerDatabase: 0, migrations: migrations) {
                fleet in
                let slow = fleet.targets[2]
                let gate = try await Connection.connect(slow.url)
                try await gate.query("SELECT pg_advisory_lock($1::int8)", [Self.gate])
                let process = try GodwitProcess.start(
                    [
                        "fleet", "migrate", "--targets", "targets.txt", "--source", "migrations", "--parallel", "2",
                        "--lock-timeout", "0", "-D", fleet.control.url,
                    ], directory: fleet.directory.path)
                let midway = try await eventually(timeout: .seconds(180)) {
                    guard try await fleet.runCount() == 1 else { return false }
                    let rows = try await fleet.targetRows()
                    guard rows.values.filter({ $0.state == "succeeded" }).count >= 2,
                        rows[slow.name]?.state == "running", rows[slow.name]?.applied == [1]
                    else { return false }
                    return try await fleet.ledger(slow) == [1]
                }
                process.signal(SIGKILL)
                let killed = try await process.wait()
                #expect(midway, "\(killed.stdout)\n\(killed.stderr)")
                #expect(killed.status != 0)
                let rows = try await fleet.targetRows()
                #expect(rows[slow.name]?.state == "running")
                #expect(try await fleet.latestRun().state == "running")

                // The killed session's transaction never commits: once the gate opens, its
                // server process finds the client gone and rolls back.
                await gate.close()
                for target in fleet.targets {
                    let versions = try await fleet.ledger(target)
                    #expect(versions == Array([1, 2, 3].prefix(versions.count)), "\(target.name): \(versions)")
                }
                #expect(try await fleet.ledger(slow) == [1])
                // Once the server has noticed, the run's lock is free and status says interrupted.
                let (id, _) = try await fleet.latestRun()
                let interrupted = try await eventually(timeout: .seconds(120)) {
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
                #expect(after[slow.name]?.attempts == 2)
                #expect(after[slow.name]?.applied == [1, 2, 3])
                for target in fleet.targets {
                    #expect(try await fleet.ledger(target) == [1, 2, 3], "\(target.name)")
                }
                let check = try await fleet.check()
                #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
            }
        }
    }
}
