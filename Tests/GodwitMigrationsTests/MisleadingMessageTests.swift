import Foundation
import GodwitTestSupport
import Testing

/// Errors that once named the wrong problem (issue 19): each says what is wrong, and where.
@Suite("godwit's messages say what is wrong (the executable)")
struct MisleadingMessageTests {
    /// `-1` looked like a flag to the parser, which then reported a missing value.
    @Test func aNegativeLockRetriesSaysItMustBe0OrMore() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        for command in [["migrate", "run"], ["migrate", "revert"]] {
            let output = try await GodwitCommand.run(
                command + ["--lock-retries", "-1", "--source", dir.path, "-D", "postgres://127.0.0.1:1/x"])
            #expect(output.status == 64, "\(command): \(output.stderr)")
            #expect(output.stderr.contains("--lock-retries must be 0 or more"), "\(command): \(output.stderr)")
            #expect(!output.stderr.contains("Missing value"), "\(command): \(output.stderr)")
        }
    }

    /// The URL came from a file the user may not think of: the error names it.
    @Test func aBadDatabaseURLInDotEnvIsNamedInItsError() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write(".env", "DATABASE_URL=mysql://root:LEAKpw@db/app\n")
        try dir.write("migrations/1_first.sql", "SELECT 1;\n")
        for command in [["migrate", "info"], ["job", "list"]] {
            let output = try await GodwitCommand.run(
                command + ["--connect-timeout", "0"], environment: ["DATABASE_URL": nil], directory: dir.path)
            #expect(output.status == 1, "\(command): \(output.stderr)")
            #expect(
                output.stderr
                    == "error: DATABASE_URL in ./.env: not a PostgreSQL connection string: expected a postgres:// or postgresql:// URL or key=value settings, got a mysql:// URL\n",
                "\(command)")
            #expect(!output.stderr.contains("LEAKpw"))
        }
    }

    /// A database where no worker ever ran has no queue schema: the commands that read the
    /// queue say how to install it.
    @Test func theJobCommandsOnADatabaseWithoutTheQueueSaySoAndHowToInstallIt() async throws {
        try await withTestDatabase { db in
            for command in [["job", "list"], ["job", "show", "1"], ["job", "pause", "1"], ["job", "watch", "1"]] {
                let output = try await GodwitCommand.run(command + ["-D", db.url])
                #expect(output.status == 1, "\(command): \(output.stderr)")
                #expect(
                    output.stderr
                        == "error: the job queue's schema \"godwit\" is not installed in this database: run `godwit worker` once against it (it installs the schema), or have the database's owner install it\n",
                    "\(command): \(output.stderr)")
            }
            // Nothing was installed on the way.
            let conn = try await db.connect()
            #expect(
                try await conn.query("SELECT to_regnamespace('godwit') IS NULL AS absent").first?.bool("absent") == true
            )
            await conn.close()
        }
    }
}
