import Foundation
import GodwitTestSupport
import Testing

@Suite("godwit migrate check: the deploy gate")
struct MigrateCheckTests {
    @Test func failsWithALinePerReasonUntilEverythingIsAppliedAndUnmodified() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": "CREATE TABLE b (id int);"]) { f in
            let check = ["migrate", "check", "-D", f.db.url, "--source", f.dir.path]
            let fresh = try await GodwitCommand.run(check)
            #expect(fresh.status == 1)
            #expect(
                fresh.stdout.split(separator: "\n").map { $0.prefix(15) } == ["pending: 1/a (/", "pending: 2/b (/"],
                "\(fresh.stdout)")
            #expect(try await f.exists("_sqlx_migrations") == false, "check must create nothing")
            _ = try await GodwitCommand.run(["migrate", "run", "-D", f.db.url, "--source", f.dir.path])
            let applied = try await GodwitCommand.run(check)
            #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
            #expect(applied.stdout == "ok: 2 migrations applied, none pending or modified\n")
            try f.dir.write("2_b.sql", "CREATE TABLE b (id bigint);")
            try f.dir.write("3_c.sql", "CREATE TABLE c (id int);")
            let changed = try await GodwitCommand.run(check)
            #expect(changed.status == 1)
            let lines = changed.stdout.split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines.first?.hasPrefix("modified since it was applied: 2/b") == true, "\(changed.stdout)")
            #expect(lines.last?.hasPrefix("pending: 3/c") == true)
            try f.dir.remove("3_c.sql")
            try f.dir.write("2_b.sql", "CREATE TABLE b (id int);")
            try f.dir.remove("1_a.sql")
            let missing = try await GodwitCommand.run(check)
            #expect(missing.status == 1)
            #expect(missing.stdout.hasPrefix("applied but missing from"), "\(missing.stdout)")
            #expect(try await GodwitCommand.run(check + ["--ignore-missing"]).status == 0)
        }
    }
}
