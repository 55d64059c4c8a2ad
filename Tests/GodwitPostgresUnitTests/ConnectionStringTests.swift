import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("Connection strings")
struct ConnectionStringTests {
    // MARK: Examples

    @Test(arguments: [
        // Well formed.
        ("postgres://app:Zq1secret@db.example/app", "postgres://app:********@db.example/app"),
        (
            "postgres://app@db/app?sslmode=disable&password=Zq1secret",
            "postgres://app@db/app?sslmode=disable&password=********"
        ),
        ("host=db password=Zq1secret dbname=app", "host=db password=******** dbname=app"),
        ("host=db password = 'Zq1 it\\'s' dbname=app", "host=db password = ******** dbname=app"),
        // Malformed: libpq cannot parse these, the scan still finds the password.
        ("postgres://app:BadPass%zzZq1@db/app", "postgres://app:********@db/app"),
        ("postgres://app:Zq1secret@[::1/app", "postgres://app:********@[::1/app"),
        ("postgres://app:Zq1@sec:ret@db/app", "postgres://app:********@db/app"),
        ("postgres://db/app?PASS%57ORD=Zq1secret&bogus", "postgres://db/app?PASS%57ORD=********"),
        (
            "postgres://db/app?password=Zq1&secret&sslmode=require",
            "postgres://db/app?password=********&sslmode=require"
        ),
        ("postgres://app:Zq1secret/app", "postgres://app:********/app"),
        ("host=db password=Zq1 two words dbname=app", "host=db password=******** dbname=app"),
        ("host=db password=Zq1 bogus=1 port=5432", "host=db password=******** port=5432"),
        ("host=db password='Zq1 never closed", "host=db password=********"),
        ("dbname=postgres://app:Zq1secret@db/app", "dbname=postgres://app:********@db/app"),
        ("mysql://app:Zq1secret@db/app", "mysql://app:********@db/app"),
    ])
    func redactedHidesThePassword(conninfo: String, expected: String) {
        #expect(ConnectionString.redacted(conninfo) == expected)
    }

    @Test func redactedLeavesAStringWithoutAPasswordAlone() {
        for conninfo in ["", "postgres://app@db:5432/app?sslmode=require", "host=db port=5432 dbname=app", "not a url"]
        {
            #expect(ConnectionString.redacted(conninfo) == conninfo)
        }
    }

    @Test func parseErrorsNameTheProblemNotTheString() throws {
        let cases: [(String, String)] = [
            (
                "postgres://app:BadPass%zzLEAK@db/app",
                "invalid database URL: a % is not followed by two hexadecimal digits"
            ),
            (
                "postgres://app:LEAKpw@[::1/app",
                "invalid database URL: an IPv6 host address opened with [ is not closed"
            ),
            (
                "postgres://app:LEAKpw@db/app?bogus=1",
                "invalid database URL: a query parameter is not a libpq connection setting"
            ),
            ("host=db password=LEAK pw", "invalid connection string: a word is not followed by ="),
            ("host=db password='LEAK", "invalid connection string: a quoted value has no closing '"),
        ]
        for (conninfo, expected) in cases {
            let error = #expect(throws: PostgresError.self) { try ConnectionString.options(conninfo) }
            #expect(error?.description.hasPrefix(expected) == true, "\(error?.description ?? "")")
            #expect(error?.description.contains("LEAK") == false)
        }
        // With nothing secret in the string, an unknown setting is named.
        let unknown = #expect(throws: PostgresError.self) { try ConnectionString.options("host=db sslmod=require") }
        #expect(
            unknown?.description == "invalid connection string: a setting is not a libpq connection setting: \"sslmod\""
        )
    }

    @Test func validateRefusesWhatIsNotAConnectionString() {
        let expected = "expected a postgres:// or postgresql:// URL or key=value settings"
        let refused: [(String, String)] = [
            ("not a url", "not a PostgreSQL connection string: \(expected)"),
            ("mydatabase", "not a PostgreSQL connection string: \(expected)"),
            ("mysql://root:LEAK@db/app", "not a PostgreSQL connection string: \(expected), got a mysql:// URL"),
            (
                "jdbc:postgresql://db/app?password=LEAK",
                "not a PostgreSQL connection string: \(expected), got a jdbc:postgresql:// URL"
            ),
            (
                "POSTGRES://db/app",
                "not a PostgreSQL connection string: \(expected), got POSTGRES:// (write the scheme in lowercase)"
            ),
            (
                " postgres://db/app",
                "not a PostgreSQL connection string: \(expected), got whitespace before postgres://"
            ),
        ]
        for (conninfo, message) in refused {
            let error = #expect(throws: PostgresError.self) { try ConnectionString.validate(conninfo) }
            #expect(error?.message == message)
            #expect(error?.description.contains("LEAK") == false)
        }
        for accepted in [
            "", "  ", "postgres://db/app", "postgresql://", "postgresql:///app?host=/tmp", "host=db dbname=app",
        ] {
            #expect(throws: Never.self) { try ConnectionString.validate(accepted) }
        }
        // Malformed PostgreSQL strings are refused with the parse error.
        let malformed = #expect(throws: PostgresError.self) { try ConnectionString.validate("postgres://u:LEAK%zz@db") }
        #expect(malformed?.message.hasPrefix("invalid database URL: ") == true)
    }

    @Test func scrubRemovesEveryFormOfThePassword() {
        let conninfo = "postgres://app:Zq1%40sec%2Fret@db/app"
        let message =
            "raw Zq1%40sec%2Fret, decoded Zq1@sec/ret, lower zq1%40sec%2fret? no: Zq1%40sec%2fret, piece ret\nsec"
        let scrubbed = ConnectionString.scrub(message, conninfo: conninfo)
        #expect(!scrubbed.contains("Zq1"))
        #expect(!scrubbed.contains("sec"))
        #expect(!scrubbed.contains("ret"))
        #expect(scrubbed.contains("raw ********, decoded ********"))
        // A password libpq parses from a well-formed string, and a plain message, are left alone
        // apart from the secret.
        #expect(ConnectionString.scrub("user app failed", conninfo: "host=db password=Zq1secret") == "user app failed")
        #expect(ConnectionString.scrub("got Zq1secret", conninfo: "host=db password=Zq1secret") == "got ********")
        #expect(ConnectionString.scrub("anything", conninfo: "") == "anything")
    }

    // MARK: Fuzzing

    /// Hundreds of malformed and well-formed strings, each with a distinctive secret, through
    /// every function that may print them or libpq's view of them.
    @Test func fuzzedStringsNeverLeakTheirSecret() throws {
        for fuzz in SecretFuzzCase.generate(count: 600, seed: 0x60D_5EED) {
            let redacted = ConnectionString.redacted(fuzz.conninfo)
            #expect(fuzz.leak(in: redacted) == nil, "redacted: \(fuzz) -> \(redacted)")
            #expect(redacted.contains("********"), "redacted: \(fuzz) -> \(redacted)")
            for function in ["options", "validate"] {
                do {
                    if function == "options" {
                        _ = try ConnectionString.options(fuzz.conninfo)
                    } else {
                        try ConnectionString.validate(fuzz.conninfo)
                    }
                } catch {
                    #expect(fuzz.leak(in: "\(error)") == nil, "\(function): \(fuzz) -> \(error)")
                }
            }
            // The whole string as a message, as libpq echoes it for an unclosed [.
            let scrubbed = ConnectionString.scrub(fuzz.conninfo, conninfo: fuzz.conninfo)
            #expect(fuzz.leak(in: scrubbed) == nil, "scrub: \(fuzz) -> \(scrubbed)")
        }
    }

    /// How a worker logs in as a job's enqueuer by default: its own settings, another user, and
    /// no password of its own (empty, so libpq reads the password file but not PGPASSWORD).
    @Test(arguments: [
        "postgres://worker:s3cret@db.example:6432/app?sslmode=require&application_name=w",
        "host=db.example port=6432 dbname=app user=worker password='s3cret' sslmode=require application_name=w",
    ])
    func loggingInAsAnotherRoleKeepsTheSettingsAndDropsThePassword(_ conninfo: String) throws {
        let login = try ConnectionString.loggingIn(as: "o'brien \\ app", from: conninfo)
        #expect(!login.contains("s3cret"))
        let settings = try ConnectionString.options(login)
        #expect(settings["user"] == "o'brien \\ app")
        #expect(settings["password"] == "")
        #expect(settings["host"] == "db.example" && settings["port"] == "6432" && settings["dbname"] == "app")
        #expect(settings["sslmode"] == "require" && settings["application_name"] == "w")
    }
}
