import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// What the `godwit` executable does with its input: connection strings it must refuse or
/// must not print, usage errors, default log levels.
@Suite("godwit input (the executable)")
struct CommandInputTests {
    /// Each command has an hour to retry in: one that retried would hit the time limit.
    @Test(.timeLimit(.minutes(5))) func whatIsNotAConnectionStringFailsAtOnce() async throws {
        let expected =
            "error: not a PostgreSQL connection string: expected a postgres:// or postgresql:// URL or key=value settings"
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try FileManager.default.createDirectory(atPath: dir.path + "/migrations", withIntermediateDirectories: true)
        for (how, url, message) in [
            ("-D", "mysql://root:LEAKpw@db/app", expected + ", got a mysql:// URL\n"),
            ("-D", "not a url", expected + "\n"),
            ("DATABASE_URL", "mysql://root:LEAKpw@db/app", expected + ", got a mysql:// URL\n"),
        ] {
            for command in [["migrate", "info"], ["migrate", "verify"], ["job", "list"], ["worker", "--drain"]] {
                let output = try await GodwitCommand.run(
                    command + (how == "-D" ? ["-D", url] : []) + ["--connect-timeout", "3600"],
                    environment: how == "DATABASE_URL" ? ["DATABASE_URL": url] : [:],
                    directory: dir.path)
                #expect(output.status == 1, "\(command) \(how) \(url): \(output.stderr)")
                #expect(output.stderr == message, "\(command) \(how) \(url)")
            }
        }
    }

    @Test func usageErrorsExit64AndOtherFailuresExit1() async throws {
        let unknownOption = try await GodwitCommand.run(["migrate", "run", "--no-such-option"])
        #expect(unknownOption.status == 64)
        #expect(unknownOption.stderr.hasPrefix("Error: Unknown option '--no-such-option'"))
        let missingArgument = try await GodwitCommand.run(["job", "enqueue"])
        #expect(missingArgument.status == 64)
        let excluded = try await GodwitCommand.run(["migrate", "add", "--simple", "-r", "x"])
        #expect(excluded.status == 64)
        let failure = try await GodwitCommand.run(["migrate", "info", "-D", "not a url"])
        #expect(failure.status == 1)
        let help = try await GodwitCommand.run(["migrate", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: godwit migrate"))

        // The README says so.
        let readme = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../README.md"),
            encoding: .utf8)
        #expect(readme.contains("and exits 1"))
        #expect(readme.contains("exits 64"))
    }

    @Test func everyCommandLogsAtNoticeByDefault() async throws {
        let commands: [[String]] = [
            ["migrate", "add"], ["migrate", "run"], ["migrate", "revert"], ["migrate", "info"], ["migrate", "verify"],
            ["worker"], ["job", "list"], ["job", "show"], ["job", "pause"], ["job", "resume"], ["job", "cancel"],
            ["job", "retry"], ["job", "enqueue"], ["job", "watch"],
        ]
        for command in commands {
            let help = try await GodwitCommand.run(command + ["--help"])
            #expect(help.status == 0, "\(command)")
            // From the option to the next one: its help text, perhaps wrapped.
            let option = help.stdout.components(separatedBy: "\n  --log-level <log-level>").dropFirst().first
            let text = option?.components(separatedBy: "\n  -").first?.split(whereSeparator: \.isWhitespace).joined(
                separator: " ")
            #expect(text?.contains("default: notice)") == true, "\(command): \(text ?? help.stdout)")
        }
    }

    /// `--database-url-file` keeps the URL off the command line, which every local user can
    /// read; the file must be the user's alone.
    @Test func aDatabaseURLFileIsReadOnlyWhenNoOneElseMayReadIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let file = try dir.write("database-url", try TestDatabase.serverURL + "\n")
        let check = ["migrate", "check", "--source", dir.path, "--no-dotenv", "--database-url-file", file]
        for permissions in [0o644, 0o640, 0o604, 0o620] {
            #expect(chmod(file, mode_t(permissions)) == 0)
            let refused = try await GodwitCommand.run(check)
            #expect(refused.status == 1)
            #expect(
                refused.stderr
                    == "error: --database-url-file \(file): group or others may read or write it (mode 0\(String(permissions, radix: 8))), and it holds a password: chmod 600 \(file)\n"
            )
        }
        #expect(chmod(file, 0o600) == 0)
        let read = try await GodwitCommand.run(check)
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout == "ok: 0 migrations applied, none pending or modified\n")

        let both = try await GodwitCommand.run(check + ["-D", try TestDatabase.serverURL])
        #expect(both.status == 64)
        #expect(both.stderr.hasPrefix("Error: --database-url and --database-url-file exclude each other"))
    }

    @Test func theHelpSaysWhereToPutAURLWithAPassword() async throws {
        let help = try await GodwitCommand.run(["migrate", "run", "--help"])
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(
            text.contains(
                "Every local user can read a command line (/proc/PID/cmdline): for a URL with a password, prefer DATABASE_URL, ./.env or --database-url-file."
            ), "\(help.stdout)")
        #expect(text.contains("--database-url-file <file>"))
    }
}
