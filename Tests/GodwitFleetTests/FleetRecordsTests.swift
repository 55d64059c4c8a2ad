import Foundation
import GodwitFleet
import GodwitPostgres
import GodwitTestSupport
import Testing

/// The fleets' part on a control database: a run and its targets recorded, each target's
/// state, versions, error, times and lock wait, the heartbeat, the run's end, and its lock.
@Suite("Fleet records")
struct FleetRecordsTests {
    let records = FleetRecords()

    func withControl(_ body: (Connection) async throws -> Void) async throws {
        try await withTestDatabase(prefix: "godwit_fleet") { db in
            var options = SessionOptions()
            options.pinnedSearchPath = SessionOptions.catalogSearchPath
            try await Connection.withConnection(db.url, options: options) { conn in
                try await records.install(on: conn)
                try await body(conn)
            }
        }
    }

    static let fleet = [
        FleetTarget(name: "alpha", connection: "postgres://app:pass-w0rd@db1:5433/alpha?sslmode=disable", line: 1),
        FleetTarget(
            name: "beta", connection: "host=db2 dbname=shared password='x y' user=app", schema: "t_beta", line: 2),
        FleetTarget(name: "gamma", connection: "postgres://db2/shared", schema: "t_gamma", line: 3),
    ]

    func insert(_ conn: Connection) async throws -> Int64 {
        try await records.insertRun(
            command: "migrate", source: "migrations", checksums: #"[{"version": 1, "checksum": "ab"}]"#,
            options: #"{"canary": 1}"#, targetsOrigin: "targets.txt", targets: Self.fleet, canary: 1, on: conn)
    }

    @Test func recordsARunWithItsTargetsPendingAndNoPassword() async throws {
        try await withControl { conn in
            let id = try await insert(conn)
            let run = try #require(try await records.run(id, on: conn))
            #expect(run.state == .running)
            #expect(run.source == "migrations")
            #expect(run.targetsOrigin == "targets.txt")
            #expect(run.heartbeatAgeSeconds != nil)
            #expect(try await records.latestRun(on: conn)?.id == id)
            let targets = try await records.targets(run: id, on: conn)
            #expect(targets.map(\.name) == ["alpha", "beta", "gamma"])
            #expect(targets.map(\.position) == [0, 1, 2])
            #expect(targets.map(\.canary) == [true, false, false])
            #expect(targets.allSatisfy { $0.state == .pending && $0.attempts == 0 && $0.appliedVersions.isEmpty })
            #expect(targets.map(\.schema) == [nil, "t_beta", "t_gamma"])
            #expect(targets[0].connection == "host=db1 port=5433 dbname=alpha user=app sslmode=disable")
            #expect(targets[1].connection == "host=db2 dbname=shared user=app")
            #expect(targets[0].databaseKey == "db1:5433/alpha")
            #expect(targets[1].databaseKey == targets[2].databaseKey)
            let all = try await conn.query("SELECT string_agg(connection, ' ') AS c FROM godwit.fleet_targets")
            #expect(try all.first?.string("c").contains("w0rd") == false)
            #expect(try all.first?.string("c").contains("x y") == false)
            // What is stored connects to the same place.
            #expect(try ConnectionString.options(targets[0].connection)["dbname"] == "alpha")
        }
    }

    @Test func aTargetsStatesVersionsErrorAndLockWait() async throws {
        try await withControl { conn in
            let id = try await insert(conn)
            try await records.startTarget(run: id, name: "alpha", on: conn)
            var alpha = try await records.targets(run: id, on: conn)[0]
            #expect(alpha.state == .running)
            #expect(alpha.attempts == 1)
            #expect(alpha.startedAt != nil && alpha.finishedAt == nil)
            // Versions as they are applied, several targets' in one write (which may repeat one),
            // then all of the attempt's as it ends: each once.
            try await records.addApplied(run: id, versions: ["alpha": [1]], on: conn)
            try await records.addApplied(run: id, versions: ["alpha": [2, 1], "beta": [7], "gamma": []], on: conn)
            #expect(try await records.targets(run: id, on: conn).map(\.appliedVersions) == [[1, 2], [7], []])
            try await records.addApplied(run: id, versions: ["beta": []], on: conn)
            try await records.finishTarget(
                run: id, name: "alpha", state: .failed, applied: [1, 2], error: "migration 3 failed at 3_x.sql: boom",
                lockWaitMs: 12.5, on: conn)
            alpha = try await records.targets(run: id, on: conn)[0]
            #expect(alpha.state == .failed)
            #expect(alpha.appliedVersions == [1, 2])
            #expect(alpha.error == "migration 3 failed at 3_x.sql: boom")
            #expect(alpha.lockWaitMs == 12.5)
            #expect(alpha.finishedAt != nil && alpha.durationSeconds != nil)
            // Again: the versions add up, the error and lock wait are the last attempt's.
            try await records.startTarget(run: id, name: "alpha", on: conn)
            alpha = try await records.targets(run: id, on: conn)[0]
            #expect(alpha.error == nil && alpha.lockWaitMs == nil && alpha.attempts == 2)
            try await records.finishTarget(
                run: id, name: "alpha", state: .succeeded, applied: [3], error: nil, lockWaitMs: 0, on: conn)
            alpha = try await records.targets(run: id, on: conn)[0]
            #expect(alpha.state == .succeeded && alpha.appliedVersions == [1, 2, 3])

            #expect(try await records.skipPending(run: id, on: conn) == 2)
            #expect(try await records.targets(run: id, on: conn).map(\.state) == [.succeeded, .skipped, .skipped])
            try await records.finishRun(run: id, state: .failed, on: conn)
            let run = try #require(try await records.run(id, on: conn))
            #expect(run.state == .failed && run.finishedAt != nil)

            try await records.reopenRun(run: id, names: ["beta", "gamma"], on: conn)
            #expect(try await records.run(id, on: conn)?.state == .running)
            #expect(try await records.run(id, on: conn)?.finishedAt == nil)
            #expect(try await records.targets(run: id, on: conn).map(\.state) == [.succeeded, .pending, .pending])
        }
    }

    @Test func theRunsLockTellsALiveRunFromADeadOne() async throws {
        try await withTestDatabase(prefix: "godwit_fleet") { db in
            let holder = try await Connection.connect(db.url)
            try await records.install(on: holder)
            let id = try await insert(holder)
            let other = try await Connection.connect(db.url)
            #expect(try await records.isLive(run: id, on: other) == false)
            #expect(try await records.tryLock(run: id, on: holder))
            #expect(try await records.isLive(run: id, on: other))
            #expect(try await records.tryLock(run: id, on: other) == false)
            try await records.heartbeat(run: id, on: holder)
            await holder.close()
            let freed = try await eventually(timeout: .seconds(120)) {
                try await records.isLive(run: id, on: other) == false
            }
            #expect(freed)
            await other.close()
        }
    }

    @Test func noRunBeforeThePartIsInstalled() async throws {
        try await withTestDatabase(prefix: "godwit_fleet") { db in
            try await Connection.withConnection(db.url) { (conn: Connection) async throws in
                #expect(try await records.latestRun(on: conn) == nil)
                #expect(try await records.run(1, on: conn) == nil)
            }
        }
    }
}
