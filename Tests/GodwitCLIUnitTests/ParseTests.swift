import ArgumentParser
import Testing

@testable import GodwitCLI

/// Parses `arguments` as `godwit` does (with `--http`'s default address filled in), and
/// returns the subcommand, which must be a `T`.
func parse<T: ParsableCommand>(_ type: T.Type, _ arguments: [String]) async throws -> T {
    let command = try await Godwit.asyncParseAsRoot(HTTPOptions.withDefaultAddress(arguments))
    return try #require(command as? T, "parsed as \(Swift.type(of: command))")
}

/// The usage error `arguments` makes: its exit status and its message's first line.
func usageError(_ arguments: [String]) async throws -> (status: Int32, message: String) {
    do {
        let command = try await Godwit.asyncParseAsRoot(HTTPOptions.withDefaultAddress(arguments))
        Issue.record("parsed as \(type(of: command))")
        return (0, "")
    } catch {
        let message = Godwit.fullMessage(for: error)
        return (Godwit.exitCode(for: error).rawValue, String(message.split(separator: "\n").first ?? ""))
    }
}

@Suite("Parsing the command line")
struct ParseTests {
    // MARK: defaults

    @Test func migrateRunHasItsDefaults() async throws {
        let run = try await parse(Migrate.Run.self, ["migrate", "run"])
        #expect(run.connection.databaseURL == nil)
        #expect(run.connection.databaseURLFile == nil)
        #expect(run.connection.noDotenv == false)
        #expect(run.connection.connectTimeout == 10)
        #expect(run.sourceOptions.sourceFlag == nil)
        #expect(run.sourceOptions.folder.configFile == nil)
        #expect(run.sourceOptions.logLevel == .notice)
        #expect(run.lockOptions.lockTimeout == .seconds(2))
        #expect(run.lockOptions.lockRetries == 30)
        #expect(run.targetVersion == nil)
        #expect(!run.dryRun && !run.ignoreMissing && !run.enqueue && !run.backup && !run.strict)
        #expect(run.backupDir == "backups")
        #expect(run.schema == "godwit")
    }

    @Test func migrateRunReadsItsOptions() async throws {
        let run = try await parse(
            Migrate.Run.self,
            [
                "migrate", "run", "-D", "postgres://h/db", "--source", "db", "--config", "x.toml", "--log-level",
                "debug",
                "--lock-timeout", "500ms", "--lock-retries", "0", "--target-version", "20240101000000", "--dry-run",
                "--ignore-missing", "--strict", "--schema", "ops", "--connect-timeout", "2.5",
            ])
        #expect(run.connection.databaseURL == "postgres://h/db")
        #expect(run.connection.connectTimeout == 2.5)
        #expect(run.sourceOptions.sourceFlag == "db")
        #expect(run.sourceOptions.folder.configFile == "x.toml")
        #expect(run.sourceOptions.logLevel == .debug)
        #expect(run.lockOptions.lockTimeout == .milliseconds(500))
        #expect(run.lockOptions.lockRetries == 0)
        #expect(run.targetVersion == 20_240_101_000_000)
        #expect(run.dryRun && run.ignoreMissing && run.strict)
        #expect(run.schema == "ops")
    }

    @Test(arguments: [
        ("2s", Duration.seconds(2)), ("500ms", .milliseconds(500)), ("1.5s", .milliseconds(1500)),
        ("2m", .seconds(120)), ("1min", .seconds(60)), ("1h", .seconds(3600)), ("3", .seconds(3)), ("0", .zero),
    ])
    func lockTimeoutsAreWrittenAsPeopleWriteThem(text: String, duration: Duration) async throws {
        let run = try await parse(Migrate.Run.self, ["migrate", "run", "--lock-timeout", text])
        #expect(run.lockOptions.lockTimeout == duration)
    }

    @Test func workerHasItsDefaults() async throws {
        let worker = try await parse(WorkerCommand.self, ["worker"])
        #expect(worker.jobsAtOnce == 4)
        #expect(!worker.drain && !worker.migrate)
        #expect(worker.pollInterval == 5 && worker.leaseTimeout == 30 && worker.shutdownTimeout == 30)
        #expect(worker.retryDelay == 1)
        #expect(worker.queueOptions.schema == "godwit")
        #expect(worker.queueOptions.logLevel == .notice)
        #expect(worker.folder.sourceFlag == nil && worker.folder.configFile == nil)
        #expect(worker.backupDir == "backups")
        #expect(worker.maxReplicationLag == 10)
        #expect(worker.holdDuringAutovacuum)
        #expect(worker.maxArchiveBacklog == 16)
        #expect(worker.healthQuery == nil)
        #expect(worker.batchHistory == 1000)
        #expect(worker.enqueuerLogins == nil)
        #expect(worker.httpOptions.http == nil)
        #expect(worker.lockOptions.lockTimeout == .seconds(2) && worker.lockOptions.lockRetries == 30)
    }

    @Test func workerReadsItsOptions() async throws {
        let worker = try await parse(
            WorkerCommand.self,
            [
                "worker", "--concurrency", "1", "--drain", "--migrate", "--source", "db", "--config", "c.toml",
                "--schema", "q", "--no-hold-during-autovacuum", "--max-archive-backlog", "0", "--http",
                "--lock-timeout", "1s", "--health-query", "SELECT true",
            ])
        #expect(worker.concurrency == 1 && worker.drain && worker.migrate)
        #expect(worker.folder.sourceFlag == "db" && worker.folder.configFile == "c.toml")
        #expect(worker.queueOptions.schema == "q")
        #expect(!worker.holdDuringAutovacuum)
        #expect(worker.maxArchiveBacklog == 0)
        // `--http` with no value, followed by another option: the default address.
        #expect(worker.httpOptions.http == "127.0.0.1:8432")
        #expect(worker.lockOptions.lockTimeout == .seconds(1))
        #expect(worker.healthQuery == "SELECT true")
    }

    @Test func httpAtTheEndTakesTheDefaultAddress() async throws {
        let serve = try await parse(ServeCommand.self, ["serve", "--read-only", "--http"])
        #expect(serve.httpOptions.http == "127.0.0.1:8432")
        #expect(serve.httpOptions.readOnly)
        let given = try await parse(ServeCommand.self, ["serve", "--http", "0.0.0.0:9000"])
        #expect(given.httpOptions.http == "0.0.0.0:9000")
        let none = try await parse(ServeCommand.self, ["serve"])
        #expect(none.httpOptions.http == nil)
    }

    @Test func jobListHasItsDefaultsAndRepeatsState() async throws {
        let list = try await parse(JobCommand.List.self, ["job", "list"])
        #expect(list.state.isEmpty && list.limit == 50 && list.format == .text)
        #expect(list.queueOptions.schema == "godwit")
        let some = try await parse(
            JobCommand.List.self, ["job", "list", "--state", "failed", "--state", "running", "--format", "json"])
        #expect(some.state.map(\.rawValue) == ["failed", "running"])
        #expect(some.format == .json)
    }

    @Test func jobCommandsTakeTheirArguments() async throws {
        let watch = try await parse(JobCommand.Watch.self, ["job", "watch", "42"])
        #expect(watch.id == 42 && watch.interval == 5)
        let show = try await parse(JobCommand.Show.self, ["job", "show", "7", "--schema", "q"])
        #expect(show.id == 7 && show.queueOptions.schema == "q")
        let enqueue = try await parse(
            JobCommand.Enqueue.self, ["job", "enqueue", "jobs/a.sql", "--name", "n", "--resume-from", "3"])
        #expect(enqueue.file == "jobs/a.sql" && enqueue.name == "n" && enqueue.resumeFrom == 3)
    }

    @Test func backupCommandsHaveTheirDefaults() async throws {
        let create = try await parse(BackupCommand.Create.self, ["backup", "create"])
        #expect(create.options.dir == "backups" && create.options.schema == "godwit")
        #expect(create.reason == "by hand")
        let verify = try await parse(BackupCommand.Verify.self, ["backup", "verify", "f.dump", "--schema", "s"])
        #expect(verify.file == "f.dump" && verify.schema == "s")
        let restore = try await parse(BackupCommand.Restore.self, ["backup", "restore", "f.dump"])
        #expect(!restore.yes && !restore.pauseJobs && restore.pauseTimeout == 120)
        #expect(restore.options.schema == "godwit")
    }

    /// `--schema` is one option group (`SchemaOptions`): the same name and default everywhere.
    @Test(arguments: [
        ["migrate", "run"], ["worker"], ["serve"], ["workers"], ["job", "list"], ["job", "show", "1"],
        ["job", "watch", "1"], ["job", "enqueue", "f.sql"], ["job", "pause", "1"], ["backup", "create"],
        ["backup", "list"], ["backup", "verify", "f"], ["backup", "restore", "f"],
    ])
    func everySchemaOptionIsTheSame(arguments: [String]) async throws {
        func schema(_ extra: [String]) async throws -> String? {
            let command = try await Godwit.asyncParseAsRoot(arguments + extra)
            return Mirror(reflecting: command).descendant(where: SchemaOptions.self)?.schema
        }
        #expect(try await schema([]) == "godwit")
        #expect(try await schema(["--schema", "ops"]) == "ops")
    }

    /// `--source` and `--config` are one option group (`MigrationFolderOptions`), with the
    /// same defaults (none given: sqlx.toml's, else `migrations`) in every command.
    @Test(arguments: [
        ["migrate", "run"], ["migrate", "add", "x"], ["migrate", "revert"], ["migrate", "info"], ["migrate", "verify"],
        ["migrate", "lint"], ["migrate", "check"], ["migrate", "baseline", "--target-version", "1"],
        ["migrate", "repair"], ["worker"], ["serve"],
    ])
    func everyFolderOptionIsTheSame(arguments: [String]) async throws {
        func folder(_ extra: [String]) async throws -> MigrationFolderOptions? {
            let command = try await Godwit.asyncParseAsRoot(arguments + extra)
            return Mirror(reflecting: command).descendant(where: MigrationFolderOptions.self)
        }
        let none = try #require(try await folder([]))
        #expect(none.sourceFlag == nil && none.configFile == nil)
        #expect(none.directory(in: .default) == "migrations")
        let given = try #require(try await folder(["--source", "db", "--config", "c.toml"]))
        #expect(given.sourceFlag == "db" && given.configFile == "c.toml")
        #expect(given.directory(in: .default) == "db")
    }

    // MARK: usage errors

    @Test(arguments: [
        (["migrate", "add", "-r", "--simple", "x"], "Error: --reversible and --simple exclude each other"),
        (
            ["migrate", "add", "--timestamp", "--sequential", "x"],
            "Error: --timestamp and --sequential exclude each other"
        ),
        (["migrate", "run", "--enqueue", "--dry-run"], "Error: --enqueue and --dry-run exclude each other"),
        (
            ["migrate", "info", "-D", "x", "--database-url-file", "f"],
            "Error: --database-url and --database-url-file exclude each other"
        ),
        (["migrate", "repair", "--applied", "f"], "Error: --applied needs --version"),
        (["migrate", "run", "--lock-retries", "-1"], "Error: --lock-retries must be 0 or more"),
        (["worker", "--concurrency", "0"], "Error: --concurrency must be at least 1"),
        (["worker", "--poll-interval", "0"], "Error: intervals and timeouts must be positive"),
        (["worker", "--max-archive-backlog=-1"], "Error: --max-archive-backlog must not be negative"),
        (
            ["worker", "--targets", "t", "--http"],
            "Error: --http serves one database: it cannot be used with --targets"
        ),
        (
            ["worker", "--targets", "t", "--migrate"],
            "Error: --migrate cannot be used with --targets: migrate a fleet with `godwit fleet migrate`"
        ),
        (
            ["worker", "--targets", "t", "--targets-query", "q"],
            "Error: --targets and --targets-query exclude each other"
        ),
        (["worker", "--targets", "t", "--connections", "0"], "Error: --connections must be at least 1"),
        (["fleet", "enqueue", "job.sql"], "Error: give --targets FILE or --targets-query SQL"),
        (
            ["backup", "create", "--reason", " "],
            "Error: --reason must be one line of words, such as \"before rollback of 20240101000000\""
        ),
        (
            ["backup", "restore", "f", "--pause-timeout", "0"],
            "Error: --pause-timeout must be a positive number of seconds"
        ),
    ])
    func exclusiveAndInvalidOptionsAreUsageErrors(arguments: [String], message: String) async throws {
        let error = try await usageError(arguments)
        #expect(error.status == 64)
        #expect(error.message == message)
    }

    @Test func aFleetWorkerRunsOneJobADatabaseWithinEightConnectionsByDefault() async throws {
        let worker = try await parse(WorkerCommand.self, ["worker", "--targets", "tenants.txt"])
        #expect(worker.jobsAtOnce == 1 && worker.connections == 8 && worker.slice == 60)
        #expect(worker.fleetTargets.targets == "tenants.txt")
    }

    @Test func aHealthQueryWithASemicolonIsRefused() async throws {
        let error = try await usageError(["worker", "--health-query", "SELECT 1; SELECT 2"])
        #expect(error.status == 64)
        #expect(error.message.hasPrefix("Error: --health-query must be one query with no \";\" in it"))
    }

    @Test func aBadDurationSaysHowToWriteOne() async throws {
        let error = try await usageError(["migrate", "run", "--lock-timeout", "soon"])
        #expect(error.status == 64)
        #expect(error.message.contains("'soon' is not a duration: write it like 2s, 500ms or 1m (0 turns it off)"))
    }

    @Test func unknownStatesFormatsAndLevelsAreUsageErrors() async throws {
        for arguments in [
            ["job", "list", "--state", "sleeping"], ["job", "list", "--format", "xml"],
            ["migrate", "info", "--log-level", "loud"], ["migrate", "frobnicate"], ["job", "show", "seven"],
            ["migrate", "baseline"],
        ] {
            let error = try await usageError(arguments)
            #expect(error.status == 64, "\(arguments)")
            #expect(error.message.hasPrefix("Error: "), "\(arguments): \(error.message)")
        }
    }

    /// A help request is no error: the help on stdout, exit 0.
    @Test(arguments: [["--help"], ["migrate", "run", "--help"], ["--version"], ["worker", "-h"], ["help", "backup"]])
    func helpAndVersionAreNoErrors(arguments: [String]) async throws {
        let outcome = await Godwit.run(arguments)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(!outcome.stdout.isEmpty && outcome.stderr.isEmpty)
    }
}

extension Mirror {
    /// The first value of type `T` among `reflecting`'s stored properties, looked for depth
    /// first (an `@OptionGroup` wraps its value in a property wrapper).
    func descendant<T>(where type: T.Type) -> T? {
        for child in children {
            if let value = child.value as? T { return value }
            if let found = Mirror(reflecting: child.value).descendant(where: type) { return found }
        }
        return nil
    }
}
