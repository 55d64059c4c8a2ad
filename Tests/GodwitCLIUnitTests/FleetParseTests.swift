import ArgumentParser
import Testing

@testable import GodwitCLI

/// The `godwit fleet` commands' options, defaults and usage errors.
@Suite("Parsing the fleet commands")
struct FleetParseTests {
    @Test func migrateHasItsDefaults() async throws {
        let migrate = try await parse(FleetCommand.Migrate.self, ["fleet", "migrate", "--targets", "t.txt"])
        #expect(migrate.targetOptions.targets == "t.txt")
        #expect(migrate.targetOptions.targetsQuery == nil)
        #expect(migrate.canary == 1)
        #expect(migrate.parallel == 4)
        #expect(migrate.onError == .stop)
        #expect(!migrate.strict)
        #expect(migrate.logLevel == .warning)
        #expect(migrate.schemaOptions.schema == "godwit")
        #expect(migrate.lockOptions.lockTimeout == .seconds(2))
        #expect(migrate.lockOptions.lockRetries == 30)
        #expect(migrate.connection.connectTimeout == 10)
    }

    @Test func migrateReadsItsOptions() async throws {
        let migrate = try await parse(
            FleetCommand.Migrate.self,
            [
                "fleet", "migrate", "--targets-query", "SELECT name, url FROM tenants", "--canary", "3",
                "--parallel", "8", "--on-error", "continue", "--strict", "--lock-timeout", "500ms",
                "--lock-retries", "2", "--source", "db", "--schema", "ops", "-D", "postgres://h/control",
                "--connect-timeout", "3",
            ])
        #expect(migrate.targetOptions.targetsQuery == "SELECT name, url FROM tenants")
        #expect(migrate.canary == 3 && migrate.parallel == 8 && migrate.onError == .continue && migrate.strict)
        #expect(migrate.lockOptions.lockTimeout == .milliseconds(500) && migrate.lockOptions.lockRetries == 2)
        #expect(migrate.folder.sourceFlag == "db")
        #expect(migrate.schemaOptions.schema == "ops")
        #expect(migrate.connection.databaseURL == "postgres://h/control")
        #expect(migrate.connection.connectTimeout == 3)
    }

    @Test func statusResumeAndCheck() async throws {
        #expect(try await parse(FleetCommand.Status.self, ["fleet", "status"]).runID == nil)
        #expect(try await parse(FleetCommand.Status.self, ["fleet", "status", "12"]).runID == 12)
        let resume = try await parse(
            FleetCommand.Resume.self, ["fleet", "resume", "12", "--targets", "t.txt", "--force-changed-source"])
        #expect(resume.runID == 12 && resume.forceChangedSource && resume.targetOptions.targets == "t.txt")
        #expect(resume.source == nil)
        let check = try await parse(FleetCommand.Check.self, ["fleet", "check", "--targets", "t.txt", "--source", "m"])
        #expect(check.folder.sourceFlag == "m" && check.parallel == 8 && !check.ignoreMissing)
    }

    @Test(arguments: [
        (
            ["fleet", "migrate", "--targets", "a", "--targets-query", "SELECT 1"],
            "--targets and --targets-query exclude each other"
        ),
        (["fleet", "migrate", "--targets", "a", "--on-error", "maybe"], "--on-error"),
        (["fleet", "resume"], "Missing expected argument"),
        (["fleet", "status", "latest"], "latest"),
    ])
    func usageErrors(arguments: [String], message: String) async throws {
        let (status, line) = try await usageError(arguments)
        #expect(status == 64)
        #expect(line.contains(message), "\(line)")
    }
}
