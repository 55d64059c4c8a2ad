import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Migrations that hold their own `BEGIN; ... COMMIT;`, as zero-to-production's do: sqlx 0.8
/// sends such a file as one query inside its own transaction, so the file's BEGIN does
/// nothing and its COMMIT ends sqlx's transaction early. `migrate run` sends the same, and
/// `migrate lint` follows it without ever sending the file's COMMIT to its scratch database.
@Suite("Migrations with their own BEGIN and COMMIT")
struct OwnTransactionTests {
    static let subscriptions = """
        CREATE TABLE subscriptions (id uuid PRIMARY KEY, email text NOT NULL UNIQUE, status text);
        CREATE TABLE media (id bigint PRIMARY KEY, title text);
        """

    /// zero-to-production's `make_status_not_null_in_subscriptions`, word for word.
    static let zeroToProduction = """
        -- We wrap the whole migration in a transaction to make sure
        -- it succeeds or fails atomically. We will discuss SQL transactions
        -- in more details towards the end of this chapter!
        -- `sqlx` does not do it automatically for us.
        BEGIN;
            -- Backfill `status` for historical entries
            UPDATE subscriptions
                SET status = 'confirmed'
                WHERE status IS NULL;
            -- Make `status` mandatory
            ALTER TABLE subscriptions ALTER COLUMN status SET NOT NULL;
        COMMIT;
        """

    /// Pending files and the rules each must raise, in every mode.
    static let pending: [(file: String, sql: String, rules: Set<String>)] = [
        ("2_status_not_null.sql", zeroToProduction, ["set-not-null"]),
        // Wrapped whole: runs as it would without its BEGIN and COMMIT; the table is new, so
        // its index is no finding (the trace ran the CREATE TABLE).
        (
            "3_tokens.sql",
            "BEGIN;\nCREATE TABLE tokens (id bigint PRIMARY KEY, sub uuid);\nCREATE INDEX tokens_sub ON tokens (sub);\nCOMMIT;",
            []
        ),
        // Statements after the COMMIT: a finding at the COMMIT. The ACCESS EXCLUSIVE that the
        // ALTER took ends at the COMMIT, so the UPDATE after it is not work under that lock.
        (
            "4_after_commit.sql",
            "BEGIN;\nALTER TABLE media ADD COLUMN note text;\nCOMMIT;\nUPDATE media SET note = 'n' WHERE id < 10;",
            ["file-ends-transaction"]
        ),
        // Still in one implicit transaction after the COMMIT: CONCURRENTLY cannot run there.
        (
            "5_concurrently_after_commit.sql",
            "BEGIN;\nCREATE TABLE notes (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY media_title ON media (title);",
            ["file-ends-transaction", "needs-no-transaction"]
        ),
        // In a -- no-transaction file the BEGIN opens a transaction: the lock of the ALTER is
        // held for the UPDATE after it.
        (
            "6_no_transaction_block.sql",
            "-- no-transaction\nBEGIN;\nALTER TABLE media ADD COLUMN seen int;\nUPDATE media SET seen = 1 WHERE id < 10;\nCOMMIT;",
            ["work-under-exclusive-lock"]
        ),
    ]

    func write(_ dir: TemporaryDirectory) throws {
        try dir.write("migrations/1_base.sql", Self.subscriptions)
        for file in Self.pending { try dir.write("migrations/\(file.file)", file.sql + "\n") }
    }

    func rulesByFile(_ output: GodwitProcess.Output) throws -> [String: Set<String>] {
        let report = try #require(
            JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any],
            "\(output.stdout)\(output.stderr)")
        return LintCommandTests.rulesByFile(try #require(report["findings"] as? [[String: Any]]))
    }

    @Test func theTraceFollowsTheFilesOwnTransactionAndCommitsNothing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try write(dir)
        try await withTestDatabase { db in
            let base = try await GodwitCommand.run(
                ["migrate", "run", "--target-version", "1", "-D", db.url], directory: dir.path)
            #expect(base.status == 0, "\(base.stderr)")
            let conn = try await db.connect()

            let run = try await ScratchRun.run(
                ["migrate", "lint", "--format", "json", "-D", db.url], directory: dir.path)
            let output = run.output
            #expect(output.status == 1, "\(output.stderr)")
            #expect(output.stderr.isEmpty, "\(output.stderr)")
            let found = try rulesByFile(output)
            for file in Self.pending {
                #expect((found[file.file] ?? []) == file.rules, "\(file.file): \(found[file.file] ?? [])")
            }
            let text = try await GodwitCommand.run(["migrate", "lint", "-D", db.url], directory: dir.path)
            #expect(
                text.stdout.contains(
                    "migrations/4_after_commit.sql:3: file-ends-transaction: the file's own COMMIT ends the transaction migrate run and sqlx run the migration in, so the statement after it runs outside it"
                ), "\(text.stdout)")

            // Nothing of the pending files reached the target, and the scratch database is gone.
            #expect(
                try await conn.query("SELECT to_regclass('tokens') IS NULL AS absent").first?.bool("absent") == true)
            #expect(try await conn.query("SELECT count(*) AS n FROM _sqlx_migrations").first?.int("n") == 1)
            #expect(try await run.leftovers() == 0)
            await conn.close()
        }
    }

    @Test func theStaticRulesAndTheCatalogCheckSayTheSame() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try write(dir)
        let files = Self.pending.map { "migrations/\($0.file)" }
        let output = try await GodwitCommand.run(
            ["migrate", "lint", "--no-dotenv", "--format", "json"] + files, directory: dir.path)
        let found = try rulesByFile(output)
        for file in Self.pending {
            #expect((found[file.file] ?? []) == file.rules, "static \(file.file): \(found[file.file] ?? [])")
        }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute(Self.subscriptions)
            let migrations = try MigrationSource.load(directory: "\(dir.path)/migrations").upMigrations.filter {
                $0.version > 1
            }
            let report = try await MigrationLinter(source: MigrationSource(migrations: [], directory: "m"))
                .lint(migrations, on: conn)
            var catalog: [String: Set<String>] = [:]
            for finding in report.findings {
                catalog[(finding.file as NSString).lastPathComponent, default: []].insert(finding.rule)
            }
            for file in Self.pending {
                #expect((catalog[file.file] ?? []) == file.rules, "catalog \(file.file): \(catalog[file.file] ?? [])")
            }
            await conn.close()
        }
    }

    /// `migrate run` sends such a file as sqlx does: it applies and is recorded; and when a
    /// statement after the file's COMMIT fails, what came before the COMMIT stays, with no
    /// ledger row, exactly as under sqlx.
    @Test func runAppliesThemAsSqlxDoes() async throws {
        try await withFixture([
            "1_base.sql": Self.subscriptions,
            "2_status_not_null.sql": Self.zeroToProduction,
            "3_tokens.sql":
                "BEGIN;\nCREATE TABLE tokens (id bigint PRIMARY KEY);\nCOMMIT;\nCREATE TABLE after_commit (id int);\n",
        ]) { (fx: Fixture) async throws in
            let events = try await fx.migrator().run(on: fx.conn)
            #expect(events.map(\.version) == [1, 2, 3])
            #expect(try await fx.ledger().map(\.success) == [true, true, true])
            #expect(try await fx.exists("tokens"))
            #expect(try await fx.exists("after_commit"))
            #expect(await fx.conn.transactionStatus == .idle)

            try fx.dir.write("4_half.sql", "BEGIN;\nCREATE TABLE kept (id int);\nCOMMIT;\nSELECT 1 / 0;\n")
            let error = await #expect(throws: MigrationError.self) { try await fx.migrator().run(on: fx.conn) }
            #expect(error?.message.contains("4_half.sql:4:") == true, "\(error?.message ?? "")")
            #expect(try await fx.exists("kept"))
            #expect(try await fx.ledger().map(\.version) == [1, 2, 3])
            #expect(await fx.conn.transactionStatus == .idle)
        }
    }
}
