import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `Migrator.deployCheck`, the rules of `godwit migrate check`, one reason at a time; the
/// command's output is `MigrateCheckTests`'.
@Suite("The deploy gate's reasons")
struct DeployCheckTests {
    @Test func aPendingMigrationFailsAndCreatesNothing() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": "CREATE TABLE b (id int);"]) { f in
            try await f.migrator().run(on: f.conn, targetVersion: 1)
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(!check.passed)
            #expect(check.reasons.map(\.kind) == [.pending])
            #expect(check.reasons.first?.status.version == 2)
            #expect(check.reasons.first?.text == "pending: 2/b (\(f.dir.path)/2_b.sql)")
            #expect(check.statuses.count == 2)
            try await withTestDatabase { empty in
                let conn = try await empty.connect()
                let fresh = try await f.migrator().deployCheck(on: conn)
                await conn.close()
                #expect(fresh.reasons.map(\.kind) == [.pending, .pending])
                #expect(
                    try await Connection.withConnection(empty.url) { conn in
                        try await conn.query("SELECT to_regclass('_sqlx_migrations') IS NULL AS absent").first?.bool(
                            "absent")
                    } == true, "the check must create nothing")
            }
        }
    }

    @Test func everythingAppliedAndUnchangedPasses() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            try await f.migrator().run(on: f.conn)
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(check.passed)
            #expect(check.reasons.isEmpty)
            #expect(check.statuses.map(\.state) == [.installed])
        }
    }

    @Test func aFileModifiedSinceItWasAppliedFails() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            try await f.migrator().run(on: f.conn)
            try f.dir.write("1_a.sql", "CREATE TABLE a (id bigint);")
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(check.reasons.map(\.kind) == [.modified])
            #expect(check.reasons.first?.text == "modified since it was applied: 1/a (\(f.dir.path)/1_a.sql)")
        }
    }

    @Test func aPartiallyAppliedMigrationFails() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);"]) { f in
            try await f.migrator().run(on: f.conn)
            try await f.conn.execute("UPDATE _sqlx_migrations SET success = false WHERE version = 1")
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(check.reasons.map(\.kind) == [.partiallyApplied])
            #expect(check.reasons.first?.text == "partially applied: 1/a")
        }
    }

    @Test func anAppliedMigrationMissingFromTheSourceFailsUnlessIgnored() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "2_b.sql": "CREATE TABLE b (id int);"]) { f in
            try await f.migrator().run(on: f.conn)
            try f.dir.remove("1_a.sql")
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(check.reasons.map(\.kind) == [.missingFromSource])
            #expect(check.reasons.first?.text == "applied but missing from \(f.dir.path): 1/a")
            let ignoring = try await f.migrator().deployCheck(on: f.conn, ignoreMissing: true)
            #expect(ignoring.passed)
            #expect(ignoring.statuses.map(\.state) == [.missingFromSource, .installed])
        }
    }

    @Test func aLoneDownKeepsItsVersionPresent() async throws {
        try await withFixture(["1_a.up.sql": "CREATE TABLE a (id int);", "1_a.down.sql": "DROP TABLE a;"]) { f in
            try await f.migrator().run(on: f.conn)
            try f.dir.remove("1_a.up.sql")
            let check = try await f.migrator().deployCheck(on: f.conn)
            #expect(check.passed, "\(check.reasons.map(\.text))")
            #expect(check.statuses.map(\.state) == [.downOnly])
        }
    }
}
