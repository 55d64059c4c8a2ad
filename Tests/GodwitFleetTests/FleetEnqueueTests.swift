import Foundation
import GodwitFleet
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `godwit fleet enqueue`: one job file, validated against each target, enqueued in each
/// target's queue; and the per-target progress `fleet status` shows.
@Suite("Fleet enqueue")
struct FleetEnqueueTests {
    /// Two database targets, two schema targets sharing a third database, and one target whose
    /// `items` has no `id`: the job is enqueued on the four where it validates, each schema
    /// target's job searching its own schema first, and the fifth fails alone with one line
    /// naming it and the job file.
    @Test func validatesPerTargetAndFailsOnlyWhereTheJobDoesNotFit() async throws {
        try await BackfillFleet.with(databases: 4, rows: 30) { fleet in
            let shared = fleet.databases[2].url
            try await Connection.withConnection(shared) { conn in
                try await conn.execute(
                    """
                    DROP TABLE items;
                    CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b;
                    CREATE TABLE tenant_a.items (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0);
                    CREATE TABLE tenant_b.items (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0);
                    INSERT INTO tenant_a.items (id) SELECT generate_series(1, 20);
                    INSERT INTO tenant_b.items (id) SELECT generate_series(1, 40);
                    """)
            }
            try await Connection.withConnection(fleet.databases[3].url) { conn in
                try await conn.execute("ALTER TABLE items RENAME COLUMN id TO item_id")
            }
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let targets = try directory.write(
                "targets.txt",
                """
                one \(fleet.databases[0].url)
                two \(fleet.databases[1].url)
                ta \(shared) schema=tenant_a
                tb \(shared) schema=tenant_b
                bad \(fleet.databases[3].url)

                """)
            let job = try directory.write("count_items.sql", BackfillFleet.backfillJob(batch: 7))
            let output = try await GodwitCommand.run(["fleet", "enqueue", job, "--targets", targets])
            #expect(output.status == 1)
            let errors = output.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
            #expect(errors.count == 2, "\(output.stderr)")
            #expect(errors.first?.hasPrefix("error: target bad: \(job)") == true, "\(output.stderr)")
            #expect(errors.last == "error: 1 of 5 targets failed: bad", "\(output.stderr)")
            for name in ["one", "two", "ta", "tb"] {
                #expect(output.stdout.contains("\(name): job "), "\(output.stdout)")
            }
            // One job in each database queue; two in the shared one, each under its tenant's path.
            let states = try await fleet.jobStates()
            #expect(states.map(\.count) == [1, 1, 2, 0], "\(states)")
            let paths = try await Connection.withConnection(shared) { conn in
                try await conn.query("SELECT payload->>'search_path' AS p FROM godwit.jobs ORDER BY 1").rows.map {
                    try $0.string("p")
                }
            }
            #expect(paths.count == 2 && paths[0].hasPrefix("tenant_a,") && paths[1].hasPrefix("tenant_b,"), "\(paths)")

            // A fleet worker runs them all (the shared database served once, both its jobs).
            let worker = try await GodwitCommand.run([
                "worker", "--targets", targets, "--connections", "4", "--drain", "--poll-interval", "0.2",
            ])
            #expect(worker.status == 0, "\(worker.stderr)")
            let counts = try await Connection.withConnection(shared) { conn in
                try await conn.query(
                    """
                    SELECT (SELECT count(*) FROM tenant_a.items WHERE n = 1) AS a,
                        (SELECT count(*) FROM tenant_b.items WHERE n = 1) AS b
                    """
                ).first.map { (try $0.int("a"), try $0.int("b")) }
            }
            #expect(counts?.0 == 20 && counts?.1 == 40, "\(String(describing: counts))")

            // And each target's progress reads from its own queue.
            let fleetTargets = try FleetTargets.parse(
                try String(contentsOfFile: targets, encoding: .utf8), file: targets)
            let jobIDs = Dictionary(
                uniqueKeysWithValues: output.stdout.split(separator: "\n").compactMap { line -> (String, Int64)? in
                    let parts = line.split(separator: " ")
                    guard parts.count == 3, parts[1] == "job", let id = Int64(parts[2]) else { return nil }
                    return (String(parts[0].dropLast()), id)
                })
            let progress = await FleetBackfillProgress.read(
                fleetTargets.targets.compactMap { target in jobIDs[target.name].map { (target, $0) } })
            #expect(progress.map(\.target) == ["one", "two", "ta", "tb"])
            #expect(progress.allSatisfy { $0.state == "succeeded" && $0.percent == 100 }, "\(progress)")
            #expect(progress.map(\.rowsDone) == [30, 30, 20, 40], "\(progress)")
            let unknown = await FleetBackfillProgress.read(target: fleetTargets.targets[0], jobID: 999_999)
            #expect(unknown.state == nil && unknown.summary == "unknown: no job 999999 in the target's queue")
        }
    }

    /// With -D the run is recorded on the control database (command enqueue, each target's
    /// job_id, the failed target's error), and `fleet status` shows each target's backfill from
    /// its own queue: exit 1 while a backfill has not succeeded or a target has no job, 0 once
    /// every job succeeded.
    @Test func recordsTheRunAndStatusShowsEachBackfill() async throws {
        try await BackfillFleet.with(databases: 3, rows: 25) { fleet in
            try await withTestDatabase(prefix: "godwit_fleet_control") { control in
                let directory = try TemporaryDirectory(prefix: "godwit-fleet")
                defer { directory.delete() }
                let good = try directory.write(
                    "good.txt", "one \(fleet.databases[0].url)\ntwo \(fleet.databases[1].url)\n")
                let job = try directory.write("count_items.sql", BackfillFleet.backfillJob(batch: 10))
                let enqueued = try await GodwitCommand.run([
                    "fleet", "enqueue", job, "--targets", good, "-D", control.url,
                ])
                #expect(enqueued.status == 0, "\(enqueued.stderr)")
                let runLine = enqueued.stdout.split(separator: "\n").first.map(String.init) ?? ""
                #expect(runLine.hasPrefix("fleet run "), "\(enqueued.stdout)")
                let runID = String(runLine.dropFirst("fleet run ".count))

                let before = try await GodwitCommand.run(["fleet", "status", runID, "-D", control.url])
                #expect(before.status == 1)
                #expect(
                    before.stdout.contains("run \(runID): enqueue \(job) on \(good), succeeded"), "\(before.stdout)")
                #expect(before.stdout.contains("BACKFILL"), "\(before.stdout)")
                #expect(
                    before.stderr == "error: run \(runID): 2 of 2 backfills have not succeeded (queued: one, two)\n",
                    "\(before.stderr)")

                let worker = try await GodwitCommand.run([
                    "worker", "--targets", good, "--drain", "--poll-interval", "0.2",
                ])
                #expect(worker.status == 0, "\(worker.stderr)")
                let after = try await GodwitCommand.run(["fleet", "status", runID, "-D", control.url])
                #expect(after.status == 0, "\(after.stderr)")
                let lines = after.stdout.split(separator: "\n").filter { $0.contains("succeeded  25/25 rows  100.0%") }
                #expect(lines.count == 2, "\(after.stdout)")

                // A target where the job does not fit: recorded failed, with its error, and no job.
                try await Connection.withConnection(fleet.databases[2].url) { conn in
                    try await conn.execute("DROP TABLE items")
                }
                let mixed = try directory.write(
                    "mixed.txt", "one \(fleet.databases[0].url)\nbad \(fleet.databases[2].url)\n")
                let second = try await GodwitCommand.run([
                    "fleet", "enqueue", job, "--targets", mixed, "-D", control.url,
                ])
                #expect(second.status == 1)
                let rows = try await Connection.withConnection(control.url) { conn in
                    try await conn.query(
                        """
                        SELECT r.command, r.state AS run_state, r.checksums ? 'sha384' AS has_sha, t.name, t.state,
                            t.job_id, t.error
                        FROM godwit.fleet_runs r JOIN godwit.fleet_targets t ON t.run_id = r.id
                        WHERE r.id = (SELECT max(id) FROM godwit.fleet_runs) ORDER BY t.position
                        """
                    ).rows
                }
                #expect(rows.map { $0["command"] } == ["enqueue", "enqueue"])
                #expect(rows.map { $0["run_state"] } == ["failed", "failed"])
                #expect(rows.map { $0["has_sha"] } == ["t", "t"])
                #expect(rows.map { $0["state"] } == ["succeeded", "failed"])
                #expect(rows[0]["job_id"] != nil && rows[1]["job_id"] == nil)
                #expect(rows[1]["error"]?.hasPrefix(job) == true, "\(String(describing: rows[1]["error"]))")
                let status = try await GodwitCommand.run(["fleet", "status", "-D", control.url])
                #expect(status.status == 1)
                #expect(status.stderr.contains("1 of 2 targets have no job (bad)"), "\(status.stderr)")
            }
        }
    }

    /// `fleet resume` of an enqueue run enqueues the run's job, with its recorded name, only
    /// where it is missing: on a target that failed (fixed since), not on one that succeeded;
    /// and a target recorded `running` by a run that died after its job was enqueued keeps that
    /// job. A job file changed since the run is refused unless --force-changed-source.
    @Test func resumeEnqueuesOnlyWhereTheJobIsMissing() async throws {
        try await BackfillFleet.with(databases: 3, rows: 12) { fleet in
            try await withTestDatabase(prefix: "godwit_fleet_control") { control in
                let directory = try TemporaryDirectory(prefix: "godwit-fleet")
                defer { directory.delete() }
                try await Connection.withConnection(fleet.databases[2].url) { conn in
                    try await conn.execute("ALTER TABLE items RENAME TO later_items")
                }
                let targets = try directory.write("targets.txt", fleet.targetsText)
                let text = BackfillFleet.backfillJob(batch: 5)
                let job = try directory.write("count_items.sql", text)
                let first = try await GodwitCommand.run([
                    "fleet", "enqueue", job, "--targets", targets, "--name", "counting", "-D", control.url,
                ])
                #expect(first.status == 1, "\(first.stdout)\n\(first.stderr)")
                let runID = try #require(first.stdout.split(separator: "\n").first?.split(separator: " ").last)
                #expect(try await fleet.jobStates() == [["queued"], ["queued"], []])
                // As if the process had died on db1 after its job was enqueued, before recording it.
                try await Connection.withConnection(control.url) { conn in
                    try await conn.execute(
                        """
                        UPDATE godwit.fleet_targets SET state = 'running', job_id = NULL, finished_at = NULL
                        WHERE name = 'db1';
                        UPDATE godwit.fleet_runs SET state = 'running', finished_at = NULL;
                        """)
                }
                let db1Job = try await Connection.withConnection(fleet.databases[1].url) { conn in
                    try await conn.query("SELECT id FROM godwit.jobs").first?.int64("id")
                }
                try await Connection.withConnection(fleet.databases[2].url) { conn in
                    try await conn.execute("ALTER TABLE later_items RENAME TO items")
                }
                let resume = ["fleet", "resume", String(runID), "-D", control.url]

                try directory.write("count_items.sql", text.replacingOccurrences(of: "n + 1", with: "n + 2"))
                let changed = try await GodwitCommand.run(resume)
                #expect(changed.status == 1)
                #expect(
                    changed.stderr.contains("changed since the run (its SHA-384 differs); nothing was resumed"),
                    "\(changed.stderr)")
                #expect(try await fleet.jobStates() == [["queued"], ["queued"], []])

                try directory.write("count_items.sql", text)
                let resumed = try await GodwitCommand.run(resume)
                #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
                #expect(resumed.stderr.contains("resuming 2 of 3 targets (db1, db2)"), "\(resumed.stderr)")
                #expect(
                    resumed.stdout.contains("db1: job \(db1Job ?? 0) (enqueued before the run was interrupted)"),
                    "\(resumed.stdout)")
                #expect(try await fleet.jobStates() == [["queued"], ["queued"], ["queued"]])
                let names = try await Connection.withConnection(fleet.databases[2].url) { conn in
                    try await conn.query("SELECT name FROM godwit.jobs").rows.map { try $0.string("name") }
                }
                #expect(names == ["counting"])
                let rows = try await Connection.withConnection(control.url) { conn in
                    try await conn.query(
                        """
                        SELECT t.name, t.state, t.job_id, t.attempts, r.state AS run_state
                        FROM godwit.fleet_targets t JOIN godwit.fleet_runs r ON r.id = t.run_id ORDER BY t.position
                        """
                    ).rows
                }
                #expect(rows.map { $0["state"] } == ["succeeded", "succeeded", "succeeded"])
                #expect(rows.map { $0["attempts"] } == ["1", "2", "2"])
                #expect(rows[1]["job_id"] == db1Job.map(String.init))
                #expect(rows.allSatisfy { $0["run_state"] == "succeeded" })

                let again = try await GodwitCommand.run(resume)
                #expect(again.status == 0)
                #expect(again.stderr.contains("every target has its job already; nothing to resume"), "\(again.stderr)")
                #expect(try await fleet.jobStates() == [["queued"], ["queued"], ["queued"]])
            }
        }
    }

    /// A job file that does not parse is refused once, with its line, before any target is
    /// touched: no queue is installed anywhere.
    @Test func aBadJobFileTouchesNoTarget() async throws {
        try await BackfillFleet.with(databases: 2, rows: 5) { fleet in
            let directory = try TemporaryDirectory(prefix: "godwit-fleet")
            defer { directory.delete() }
            let targets = try directory.write("targets.txt", fleet.targetsText)
            let job = try directory.write(
                "broken.sql",
                "-- godwit:batched\n-- table: items\n-- key: id\n-- colour: blue\nUPDATE items SET n = 1\n")
            let output = try await GodwitCommand.run(["fleet", "enqueue", job, "--targets", targets])
            #expect(output.status == 1)
            #expect(output.stderr.hasPrefix("error: \(job):4: unknown directive `colour`"), "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
            #expect(try await fleet.jobStates() == [[], []])
        }
    }
}
