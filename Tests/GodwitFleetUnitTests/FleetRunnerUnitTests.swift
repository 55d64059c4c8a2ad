import GodwitFleet
import GodwitMigrations
import GodwitPostgres
import Testing

/// The pure parts of a fleet run: the options' checks, the connection stored without its
/// password, the folder's checksums and how resume compares them, and the status table.
@Suite("Fleet runs, pure parts")
struct FleetRunnerUnitTests {
    @Test(arguments: [
        (FleetMigrateOptions(parallel: 0, sourcePath: "/m"), 3, "--parallel 0: at least 1 target must run at a time"),
        (FleetMigrateOptions(canary: 4, sourcePath: "/m"), 3, "--canary 4 is larger than the fleet (3 targets)"),
        (FleetMigrateOptions(canary: 2, sourcePath: "/m"), 1, "--canary 2 is larger than the fleet (1 target)"),
        (FleetMigrateOptions(canary: -1, sourcePath: "/m"), 3, "--canary -1: must be 0 or more"),
        (FleetMigrateOptions(connectTimeoutSeconds: 0, sourcePath: "/m"), 3, "--connect-timeout must be more than 0"),
    ])
    func refusesOptionsThatCannotWork(options: FleetMigrateOptions, count: Int, message: String) {
        do {
            try options.validate(targetCount: count)
            Issue.record("accepted \(options)")
        } catch let error as FleetError {
            #expect(error.code == .badOptions)
            #expect(error.description.hasPrefix(message), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func acceptsACanaryAsLargeAsTheFleet() throws {
        try FleetMigrateOptions(canary: 3, sourcePath: "/m").validate(targetCount: 3)
        try FleetMigrateOptions(canary: 0, parallel: 1, sourcePath: "/m").validate(targetCount: 1)
    }

    @Test func optionsRoundTripAsTheRunRecordsThem() throws {
        let options = FleetMigrateOptions(
            canary: 2, parallel: 8, onError: .continue, lockTimeoutMs: nil, lockRetries: 3, strict: true,
            connectTimeoutSeconds: 2.5, sourcePath: "/srv/app/migrations", configPath: "/srv/app/sqlx.toml")
        let text = try options.jsonText()
        #expect(text.contains(#""on_error":"continue""#), "\(text)")
        #expect(text.contains(#""source_path":"/srv/app/migrations""#), "\(text)")
        #expect(try FleetMigrateOptions.from(jsonText: text) == options)
        #expect(options.lockPolicy.lockTimeout == nil)
        #expect(options.sessionOptions.connectTimeout == .milliseconds(2500))
    }

    @Test(arguments: [
        (
            "postgres://app:s3cret@db1:5433/alpha?sslmode=require",
            "host=db1 port=5433 dbname=alpha user=app sslmode=require"
        ),
        ("host=db2 dbname=shared password='a b' user='x y'", "host=db2 dbname=shared user='x y'"),
        (
            "postgresql:///tenant?host=/run/pg&passfile=/home/a/.pgpass",
            "host=/run/pg dbname=tenant passfile=/home/a/.pgpass"
        ),
        (#"host=h dbname='it\'s' sslpassword=k"#, #"host=h dbname='it\'s'"#),
    ])
    func storesAConnectionWithoutItsPassword(given: String, stored: String) throws {
        let target = FleetTarget(name: "a", connection: given)
        #expect(target.storedConnection == stored)
        #expect(try ConnectionString.options(stored)["password"] == nil)
        // What is stored reads back as the same settings, the password aside.
        var expected = try ConnectionString.options(given)
        expected["password"] = nil
        expected["sslpassword"] = nil
        #expect(
            try ConnectionString.options(stored).filter { !$0.value.isEmpty } == expected.filter { !$0.value.isEmpty })
    }

    static func source(_ files: [(Int64, String)]) -> MigrationSource {
        MigrationSource(
            migrations: files.map {
                Migration(
                    version: $0.0, description: "m\($0.0)", kind: .simple, contents: Array($0.1.utf8),
                    path: "migrations/\($0.0)_m\($0.0).sql")
            }, directory: "migrations")
    }

    @Test func resumeComparesTheFolderWithTheRunsChecksums() throws {
        let before = Self.source([(1, "CREATE TABLE a ();"), (2, "CREATE TABLE b ();")])
        let recorded = FleetRunner.checksumsJSON(of: before)
        #expect(recorded.hasPrefix(#"[{"version": 1, "checksum": ""#))
        #expect(try FleetRunner.sourceChanges(of: before, since: recorded).isEmpty)
        let after = Self.source([(1, "CREATE TABLE a (x int);"), (3, "CREATE TABLE c ();")])
        #expect(
            try FleetRunner.sourceChanges(of: after, since: recorded) == [
                "1 modified (migrations/1_m1.sql)", "2 removed", "3 added",
            ])
        #expect(throws: FleetError.self) { try FleetRunner.sourceChanges(of: after, since: "{not json") }
    }

    @Test func theTableAlignsItsColumnsAndSaysWhatEachTargetDid() {
        let targets = [
            FleetTargetRecord(
                runID: 1, position: 0, name: "alpha", connection: "", schema: nil, databaseKey: "k", canary: true,
                state: .succeeded, appliedVersions: [1, 2, 3], durationSeconds: 0.123, lockWaitMs: 2.4, attempts: 1),
            FleetTargetRecord(
                runID: 1, position: 1, name: "b", connection: "", schema: "t", databaseKey: "k", canary: false,
                state: .failed, appliedVersions: [1], error: "migration 2 failed at migrations/2_x.sql:1:1: boom",
                durationSeconds: 75, lockWaitMs: 1500, attempts: 1),
            FleetTargetRecord(
                runID: 1, position: 2, name: "c", connection: "", schema: nil, databaseKey: "k", canary: false,
                state: .skipped),
        ]
        #expect(
            FleetTable.lines(targets) == [
                "TARGET   STATE      APPLIED   LOCK WAIT  TIME   ERROR",
                "alpha *  succeeded  3 (1..3)  2ms        0.12s",
                "b        failed     1         1.5s       1m15s  migration 2 failed at migrations/2_x.sql:1:1: boom",
                "c        skipped    -         -          -",
            ])
        #expect(FleetTable.summary(targets) == "3 targets: 1 succeeded, 1 failed, 1 skipped")
    }
}
