import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

extension FleetTests {
    /// Bad targets files and options: one clear `error:` line each, naming the file and line
    /// where there is one, and nothing runs (no run recorded, no target touched).
    @Suite("Bad fleet input")
    struct BadInputTests {
        static let cases: [(file: String?, arguments: [String], message: String)] = [
            ("a @URL@\nb @URL@\na @URL@\n", [], "error: targets.txt:3: duplicate target name a (first on line 1)"),
            ("a @URL@\nb mysql://h/b\n", [], "error: targets.txt:2: target b: not a PostgreSQL connection string"),
            ("a @URL@ schema=Tenant\n", [], "error: targets.txt:1: target a: schema Tenant is not an identifier"),
            ("# nothing here\n\n", [], "error: targets.txt: no targets: the fleet is empty"),
            ("a @URL@\nb @URL@ schema=t1\n", ["--parallel", "0"], "error: --parallel 0: at least 1 target"),
            (
                "a @URL@\nb @URL@ schema=t1\n", ["--canary", "3"],
                "error: --canary 3 is larger than the fleet (2 targets)"
            ),
            (nil, [], "error: targets.txt: no such file"),
        ]

        @Test(arguments: 0..<cases.count)
        func refusedBeforeAnythingRuns(index: Int) async throws {
            let (file, arguments, message) = Self.cases[index]
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 0) { fleet in
                let url = fleet.targets[0].url
                if let file {
                    try fleet.directory.write("targets.txt", file.replacingOccurrences(of: "@URL@", with: url))
                } else {
                    try fleet.directory.remove("targets.txt")
                }
                let run = try await fleet.migrate(arguments)
                #expect(run.status == 1)
                let lines = run.stderr.split(separator: "\n")
                #expect(lines.count == 1, "\(run.stderr)")
                #expect(lines.first?.hasPrefix(message) == true, "\(run.stderr)")
                #expect(run.stdout.isEmpty, "\(run.stdout)")
                #expect(try await fleet.runCount() == 0)
                for target in fleet.targets { #expect(try await fleet.ledger(target) == []) }
                let check = try await fleet.check()
                if file != nil && !message.contains("--") {
                    #expect(check.status == 1)
                    #expect(check.stderr.hasPrefix(message), "\(check.stderr)")
                }
            }
        }

        /// `status` and `resume` of a run that does not exist, and `status` before any run.
        @Test func unknownRuns() async throws {
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 0) { fleet in
                let none = try await fleet.fleet(["status"])
                #expect(none.status == 1)
                #expect(none.stderr.hasPrefix("error: no fleet run in schema godwit yet"), "\(none.stderr)")
                let missing = try await fleet.fleet(["resume", "42"])
                #expect(missing.status == 1)
                #expect(missing.stderr.hasPrefix("error: no fleet run 42 in schema godwit"), "\(missing.stderr)")
                #expect(try await fleet.runCount() == 0)
            }
        }

        /// A password in a targets file is never printed nor stored; a target whose server is
        /// down fails alone, with a one-line reason.
        @Test func passwordsStayOutAndADownTargetFailsAlone() async throws {
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 1) { fleet in
                var targets = fleet.targets
                let port = try freeLoopbackPort()
                targets.append(
                    FleetFixture.Target(
                        name: "down", url: "postgres://postgres:s3cret-fleet-pw@127.0.0.1:\(port)/nothing",
                        schema: nil, database: "nothing"))
                try fleet.writeTargets(targets)
                let run = try await fleet.migrate(["--on-error", "continue"])
                #expect(run.status == 1)
                #expect(!run.stdout.contains("s3cret-fleet-pw") && !run.stderr.contains("s3cret-fleet-pw"))
                let rows = try await fleet.targetRows()
                #expect(rows["down"]?.state == "failed")
                #expect(rows["down"]?.error?.hasPrefix("could not connect: ") == true, "\(rows["down"]?.error ?? "")")
                #expect(rows.filter { $0.key != "down" }.allSatisfy { $0.value.state == "succeeded" })
                let stored = try await fleet.withControl { conn in
                    try await conn.query("SELECT string_agg(connection, ' ') AS c FROM godwit.fleet_targets").first?
                        .string("c")
                }
                #expect(stored?.contains("s3cret") == false, "\(stored ?? "")")
                #expect(stored?.contains("port=\(port)") == true, "\(stored ?? "")")
            }
        }

        /// A target whose server never answers, one whose password is wrong, and one whose
        /// database does not exist each fail alone with a one-line reason; the hanging one is
        /// bounded by --connect-timeout, and the others succeed.
        @Test func unreachableTargetsFailAloneWithOneLine() async throws {
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 0) { fleet in
                // The test server asks every role but postgres for its password over TCP (the
                // private clusters trust loopback): the wrong-password target lives there.
                let cluster = fleet.clusters[0]
                let role = "fleet_pw_\(UInt32.random(in: 0...UInt32.max))"
                _ = try await fleet.withControl { admin in
                    try await admin.execute("CREATE ROLE \(role) LOGIN PASSWORD 'right-pw'")
                }
                let server = try #require(URLComponents(string: fleet.control.url))
                let serverHost = "\(server.host ?? "127.0.0.1"):\(server.port ?? 5432)"
                let silent = try LoopbackListener()
                let host = "127.0.0.1:\(cluster.port)"
                var targets = fleet.targets
                targets.append(
                    .init(
                        name: "hangs", url: "postgres://postgres@127.0.0.1:\(silent.port)/nothing", schema: nil,
                        database: "nothing"))
                targets.append(
                    .init(
                        name: "wrong-pw", url: "postgres://\(role):wrong-pw@\(serverHost)/postgres", schema: nil,
                        database: "postgres"))
                targets.append(
                    .init(
                        name: "no-db", url: "postgres://postgres@\(host)/no_such_database_here", schema: nil,
                        database: "no_such_database_here"))
                try fleet.writeTargets(targets)
                let run = try await fleet.migrate(["--on-error", "continue", "--connect-timeout", "2"])
                #expect(run.status == 1)
                #expect(!run.stdout.contains("wrong-pw@") && !run.stderr.contains("wrong-pw@"))
                let rows = try await fleet.targetRows()
                for name in ["hangs", "wrong-pw", "no-db"] {
                    let error = rows[name]?.error ?? ""
                    #expect(rows[name]?.state == "failed", "\(name)")
                    #expect(error.hasPrefix("could not connect: "), "\(name): \(error)")
                    #expect(!error.contains("\n") && !error.isEmpty, "\(name): \(error)")
                }
                #expect(rows["wrong-pw"]?.error?.contains("password") == true, "\(rows["wrong-pw"]?.error ?? "")")
                #expect(
                    rows["no-db"]?.error?.contains("no_such_database_here") == true, "\(rows["no-db"]?.error ?? "")")
                #expect(
                    rows.filter { !["hangs", "wrong-pw", "no-db"].contains($0.key) }.allSatisfy {
                        $0.value.state == "succeeded"
                    })
                _ = try await fleet.withControl { admin in
                    try await admin.execute("DROP ROLE \(role)")
                }
            }
        }
    }
}
