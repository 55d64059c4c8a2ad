import Foundation
import GodwitFleet
import GodwitHTTP
import GodwitPostgres
import GodwitTestSupport
import HummingbirdTesting
import Testing

/// The dashboard's fleet pages and the fleet's metrics, for a run recorded as `fleet migrate`
/// records one, in the dashboard's own database (the fleet's control database).
@Suite("The fleet pages and metrics")
struct FleetPageTests {
    static let hostile = #"<script>alert("x")</script> & 'quoted'"#

    /// A migrate run of three targets: one succeeded, one failed with a hostile error, one pending.
    static func record(_ database: TestDatabase) async throws -> Int64 {
        let conn = try await database.connect()
        let records = FleetRecords()
        try await records.install(on: conn)
        let targets = try FleetTargets.parse(
            """
            alpha postgres://h/alpha
            beta postgres://h/beta schema=tenant_beta
            gamma postgres://h/gamma
            """, file: "targets.txt")
        let run = try await records.insertRun(
            command: "migrate", source: "migrations", checksums: "[]", options: "{}", targetsOrigin: "targets.txt",
            targets: targets.targets, canary: 1, on: conn)
        try await records.startTarget(run: run, name: "alpha", on: conn)
        try await records.finishTarget(
            run: run, name: "alpha", state: .succeeded, applied: [1, 2], error: nil, lockWaitMs: 12, on: conn)
        try await records.startTarget(run: run, name: "beta", on: conn)
        try await records.finishTarget(
            run: run, name: "beta", state: .failed, applied: [1], error: "migration 2 (2_x.sql): \(hostile)",
            lockWaitMs: nil, on: conn)
        await conn.close()
        return run
    }

    @Test("Without a fleet run: the page says so, linked from every page's nav, and no fleet metric")
    func withoutRuns() async throws {
        try await withOperations { _, _, client in
            try await client.execute(uri: "/fleet", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("No fleet runs recorded in this database."))
                #expect(response.text.contains(#"<a href="/fleet" aria-current="page">Fleet</a>"#))
            }
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains(#"<a href="/fleet">Fleet</a>"#))
            }
            try await client.execute(uri: "/fleet/1", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/fleet/x", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(!response.text.contains("godwit_fleet_"))
                #expect(response.text.contains("godwit_database_up 1.0"))
            }
        }
    }

    @Test("A run whose process is gone: interrupted, targets by state, the failure's error escaped, metrics")
    func anInterruptedRun() async throws {
        try await withOperations { database, _, client in
            let run = try await Self.record(database)
            try await client.execute(uri: "/fleet", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains(#"<a href="/fleet/\#(run)">#\#(run)</a>"#))
                #expect(response.text.contains(#"data-state="interrupted""#))
                #expect(response.text.contains(#"data-count="succeeded">1 succeeded"#))
                #expect(response.text.contains(#"data-count="failed">1 failed"#))
                #expect(response.text.contains(#"data-count="pending">1 pending"#))
            }
            try await client.execute(uri: "/fleet/\(run)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(!response.text.contains("<script>alert"))
                #expect(
                    response.text.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"))
                #expect(response.text.contains("godwit fleet resume \(run)"))
                #expect(response.text.contains(#"<tr data-target="beta">"#))
                #expect(response.text.contains("tenant_beta"))
                #expect(response.text.contains("Failures"))
            }
            try await client.execute(uri: "/fragments/fleet/\(run)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(!response.text.contains("<html"))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.text.contains(#"godwit_fleet_runs{state="interrupted"} 1.0"#))
                #expect(response.text.contains(#"godwit_fleet_runs{state="running"} 0.0"#))
                #expect(response.text.contains(#"godwit_fleet_last_run_id{command="migrate"} \#(run).0"#))
                #expect(response.text.contains(#"godwit_fleet_last_run_targets{command="migrate",state="failed"} 1.0"#))
                #expect(
                    response.text.contains(#"godwit_fleet_last_run_targets{command="migrate",state="running"} 0.0"#))
            }
        }
    }

    @Test("A run whose process holds its lock is running, not interrupted")
    func aLiveRun() async throws {
        try await withOperations { database, _, client in
            let run = try await Self.record(database)
            let holder = try await database.connect()
            #expect(try await FleetRecords().tryLock(run: run, on: holder))
            try await client.execute(uri: "/fleet", method: .get) { response in
                #expect(response.text.contains(#"data-state="running""#))
                #expect(!response.text.contains(#"data-state="interrupted""#))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.text.contains(#"godwit_fleet_runs{state="running"} 1.0"#))
            }
            await holder.close()
        }
    }

    @Test("An enqueue run's page reads each target's backfill from the target's own queue")
    func anEnqueueRun() async throws {
        try await withOperations { database, _, client in
            let conn = try await database.connect()
            let records = FleetRecords()
            try await records.install(on: conn)
            // Two targets, both this very database: one job that is there, one that is not.
            let job = try await conn.query(
                "INSERT INTO godwit.jobs (kind, name, payload) VALUES ('sql', 'fill', '{}') RETURNING id"
            ).first!.int64("id")
            let fleet = FleetTargets(
                [
                    FleetTarget(name: "here", connection: database.url),
                    FleetTarget(name: "missing", connection: database.url),
                ], origin: "targets.txt")
            let run = try await records.insertRun(
                command: "enqueue", source: "jobs/fill.sql", checksums: "{}", options: "{}",
                targetsOrigin: "targets.txt", targets: fleet.targets, canary: 0, on: conn)
            try await records.setJob(run: run, name: "here", jobID: job, on: conn)
            try await records.setJob(run: run, name: "missing", jobID: job + 1000, on: conn)
            await conn.close()
            try await client.execute(uri: "/fleet/\(run)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("#\(job)"))
                #expect(
                    response.text.contains(#"<small>queued  0.0%</small>"#),
                    "the job's state, read from the target's progress view")
                #expect(response.text.contains("no job \(job + 1000) in the target&#39;s queue"))
            }
        }
    }
}
