import Foundation
import GodwitTestSupport
import Testing

@testable import GodwitPostgres

/// The client programs Godwit starts get no secret on their command line, which every local
/// user can read in `/proc/PID/cmdline`.
@Suite("client programs get no secret on their command line")
struct ChildSecretsTests {
    /// A URL of `db` with a password and an sslpassword (the test server does not ask for the
    /// one and, without a client certificate, never uses the other).
    func urlWithSecrets(_ db: TestDatabase) throws -> String {
        let address = try TestDatabase.serverAddress
        return "postgres://postgres:Argv-Password-7@\(address)/\(db.name)?sslpassword=Argv-SSL-Passphrase-9"
    }

    @Test func pgDumpGetsThePasswordAndTheSSLPasswordOffItsCommandLine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let fakes = try TemporaryDirectory(prefix: "godwit-fake-bin")
        defer { fakes.delete() }
        let realDump = await ClientProgram.path(of: "pg_dump")
        let record = { (name: String) in (fakes.path as NSString).appendingPathComponent(name) }
        // Records what pg_dump was given: its arguments, the service file libpq reads, and
        // where that file is; then does the real work.
        try fakes.writeProgram(
            "pg_dump",
            """
            printf '%s\\n' "$@" > '\(record("argv"))'
            printf '%s\\n' "$PGSERVICEFILE" > '\(record("servicefile"))'
            printf '%s\\n' "$PGSERVICE" > '\(record("service"))'
            printf '%s\\n' "$PGPASSWORD" > '\(record("pgpassword"))'
            stat -c %a "$PGSERVICEFILE" > '\(record("mode"))'
            cat "$PGSERVICEFILE" > '\(record("settings"))'
            exec '\(realDump)' "$@"
            """)
        try await withTestDatabase { db in
            let url = try urlWithSecrets(db)
            let created = try await GodwitCommand.run(
                ["backup", "create", "--dir", dir.path, "-D", url], environment: ["GODWIT_PG_BIN": fakes.path])
            #expect(created.status == 0, "\(created.stderr)")
            let read = { (name: String) in (try? String(contentsOfFile: record(name), encoding: .utf8)) ?? "" }
            let argv = read("argv")
            #expect(!argv.isEmpty)
            #expect(!argv.contains("Argv-Password-7") && !argv.contains("Argv-SSL-Passphrase-9"), "\(argv)")
            #expect(!argv.contains("password"), "\(argv)")
            #expect(read("pgpassword") == "Argv-Password-7\n")
            #expect(read("service") == "godwit\n")
            #expect(read("mode") == "600\n")
            #expect(read("settings") == "[godwit]\nsslpassword=Argv-SSL-Passphrase-9\n")
            // The service file went with the program.
            let serviceFile = read("servicefile").trimmingCharacters(in: .newlines)
            #expect(!serviceFile.isEmpty && !FileManager.default.fileExists(atPath: serviceFile), "\(serviceFile)")
        }
    }

    /// libpq reads a service file's value as written from after the `=` to the end of the line:
    /// every value `ServiceFile.canHold` accepts comes back unchanged (application_name shows
    /// it; sslpassword cannot be read back).
    @Test(arguments: [
        "plain", "with space", " leading", "quote'd \"double\"", #"back\slash"#, "a=b=c", "#hash", "[bracket]",
    ])
    func libpqReadsAServiceFileValueAsWritten(_ value: String) async throws {
        #expect(ServiceFile.canHold(value))
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let file = try dir.write("pg_service.conf", ServiceFile.text(service: "probe", ["application_name": value]))
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: try TestDatabase.serverURL)
        let output = try await ClientProgram.run(
            "psql", ["-X", "-A", "-t", "--dbname=\(conninfo)", "-c", "SELECT current_setting('application_name')"],
            environment: environment.merging(["PGSERVICEFILE": file, "PGSERVICE": "probe"]) { $1 })
        #expect(output.succeeded, "\(output.stderr)")
        #expect(output.stdout == value + "\n")
    }

    @Test(arguments: ["trailing ", "line\nbreak", "carriage\rreturn", "tab\t"])
    func aValueAServiceFileCannotHoldIsRefused(_ value: String) throws {
        #expect(!ServiceFile.canHold(value))
        let url = "host=db.example sslpassword=\(ClientProgram.conninfoQuoted(value))"
        let error = #expect(throws: ClientProgram.LaunchError.self) {
            _ = try ClientProgram.connectionArguments(for: url)
        }
        #expect(error?.description.contains(value) == false)
    }

    @Test func anSSLPasswordBesideAServiceIsRefused() throws {
        let error = #expect(throws: ClientProgram.LaunchError.self) {
            _ = try ClientProgram.connectionArguments(for: "service=prod sslpassword=Hidden-Passphrase")
        }
        #expect(error?.description.contains("pg_service.conf") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("Hidden-Passphrase") == false)
    }

    /// Through `run`, a program connects with the service file Godwit writes for it, and the
    /// variable that carries the sslpassword to `run` never reaches the program.
    @Test func aProgramConnectsWithTheSSLPasswordInItsServiceFile() async throws {
        let url = try TestDatabase.serverURL + "?sslpassword=Run-Passphrase-3"
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: url)
        #expect(!conninfo.contains("Run-Passphrase-3"))
        let output = try await ClientProgram.run(
            "psql",
            ["-X", "-A", "-t", "--dbname=\(conninfo)", "-c", "SELECT 42", "-c", #"\! env"#],
            environment: environment)
        #expect(output.succeeded, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("42\n"), "\(output.stdout)")
        #expect(output.stdout.contains("PGSERVICE=godwit\n"), "\(output.stdout)")
        #expect(!output.stdout.contains("Run-Passphrase-3"), "\(output.stdout)")
    }
}
