import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Files sqlx accepts: a `.down.sql` with no up file, and a simple file beside a down.
@Suite("Lone down files and simple files with a down")
struct LoneDownTests {
    @Test func aLoneDownLoadsWithAWarningNamingIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "CREATE TABLE a (id int);")
        let path = try dir.write("9_drop.down.sql", "DROP TABLE a;")
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.upMigrations.map(\.version) == [1])
        #expect(source.down(for: 9)?.path == path)
        #expect(source.warnings.count == 1)
        #expect(source.warnings.first?.hasPrefix("\(path) has no up file: it is never applied") == true)
    }

    @Test func aSimpleFileBesideADownIsAPairWithoutWarning() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "CREATE TABLE a (id int);")
        try dir.write("1_a.down.sql", "DROP TABLE a;")
        let source = try MigrationSource.load(directory: dir.path)
        #expect(source.upMigrations.map(\.kind) == [.simple])
        #expect(source.down(for: 1) != nil)
        #expect(source.warnings.isEmpty)
    }

    /// As sqlx: `run` applies the simple file, `revert` runs the down and removes the row.
    @Test func revertWorksOnASimpleFileAndItsDown() async throws {
        try await withFixture(["1_a.sql": "CREATE TABLE a (id int);", "1_a.down.sql": "DROP TABLE a;"]) { fx in
            let migrator = try fx.migrator()
            #expect(try await migrator.run(on: fx.conn).map(\.action) == [.applied])
            #expect(try await fx.exists("a"))
            #expect(try await migrator.status(on: fx.conn).first?.reversible == true)
            let reverted = try await migrator.revert(on: fx.conn)
            #expect(reverted.map(\.kind) == [.down])
            #expect(try await !fx.exists("a"))
            #expect(try await fx.ledger().isEmpty)
        }
    }

    /// A lone down is never applied; when its version is in the ledger (its up file deleted),
    /// run does not call the version missing, as sqlx does not, and revert runs the down.
    @Test func aLoneDownIsNeverAppliedButRevertsItsAppliedVersion() async throws {
        try await withFixture(["1_a.up.sql": "CREATE TABLE a (id int);", "1_a.down.sql": "DROP TABLE a;"]) { fx in
            try await fx.migrator().run(on: fx.conn)
            try fx.dir.remove("1_a.up.sql")
            let migrator = try fx.migrator()
            #expect(migrator.source.warnings.count == 1)
            #expect(try await migrator.run(on: fx.conn).isEmpty)
            #expect(try await fx.ledger().map(\.version) == [1])
            let status = try #require(try await migrator.status(on: fx.conn).first)
            #expect(status.state == .downOnly)
            #expect(status.reversible)
            #expect(status.path == fx.dir.path + "/1_a.down.sql")
            #expect(try await migrator.revert(on: fx.conn).map(\.version) == [1])
            #expect(try await !fx.exists("a"))
            #expect(try await fx.ledger().isEmpty)
            // Not in the ledger any more: nothing to apply, nothing to revert.
            #expect(try await migrator.run(on: fx.conn).isEmpty)
            #expect(try await migrator.revert(on: fx.conn).isEmpty)
        }
    }

    @Test func theExecutableWarnsOnStderrAndRuns() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.sql", "CREATE TABLE a (id int);")
        let down = try dir.write("2_b.down.sql", "DROP TABLE b;")
        try await withTestDatabase { db in
            let run = try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url])
            #expect(run.status == 0)
            #expect(run.stdout.hasPrefix("Applied 1/migrate a ("))
            #expect(run.stderr.hasPrefix("warning: \(down) has no up file"), "\(run.stderr)")
        }
    }

    /// `check` agrees with `run`: a version whose up file is gone but whose down is there is
    /// present (with the warning), one with neither is missing.
    @Test func checkAndInfoTakeALoneDownsVersionAsPresentAsRunDoes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("1_a.up.sql", "CREATE TABLE a (id int);")
        let down = try dir.write("1_a.down.sql", "DROP TABLE a;")
        try dir.write("2_b.sql", "CREATE TABLE b (id int);")
        try await withTestDatabase { db in
            #expect(try await GodwitCommand.run(["migrate", "run", "--source", dir.path, "-D", db.url]).status == 0)
            try dir.remove("1_a.up.sql")
            let check = try await GodwitCommand.run(["migrate", "check", "--source", dir.path, "-D", db.url])
            #expect(check.status == 0, "\(check.stdout)")
            #expect(check.stdout == "ok: 2 migrations applied, none pending or modified\n")
            #expect(check.stderr.hasPrefix("warning: \(down) has no up file"), "\(check.stderr)")
            let info = try await GodwitCommand.run(["migrate", "info", "--source", dir.path, "-D", db.url])
            #expect(
                info.stdout.hasPrefix("1/installed (only its down in the source) a\n2/installed b\n"), "\(info.stdout)")

            try dir.remove("1_a.down.sql")
            let missing = try await GodwitCommand.run(["migrate", "check", "--source", dir.path, "-D", db.url])
            #expect(missing.status == 1)
            #expect(missing.stdout == "applied but missing from \(dir.path): 1/a\n", "\(missing.stdout)")
        }
    }
}
