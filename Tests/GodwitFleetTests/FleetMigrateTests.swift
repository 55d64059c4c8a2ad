import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

extension FleetTests {
    /// `fleet migrate`, `status`, `check` and `resume` over 60 targets: 12 databases on three
    /// clusters, each a database target and four schema targets.
    @Suite("Migrate a fleet")
    struct MigrateTests {
        /// One schema target made to fail (a table of the name its third migration creates):
        /// with `--on-error continue` the other 59 succeed and it fails with its version and file;
        /// check says so; the conflict fixed, resume runs only it (connecting to no other: one
        /// database whose targets all succeeded refuses connections meanwhile), and check passes.
        @Test func oneConflictThenResumeRunsOnlyIt() async throws {
            try await FleetFixture.with(databasesPerCluster: 4, schemasPerDatabase: 4) { fleet in
                #expect(fleet.targets.count == 60)
                #expect(Set(fleet.targets.map(\.database)).count == 12)
                let before = try await fleet.check()
                #expect(before.status == 1)
                #expect(
                    before.stdout.split(separator: "\n").filter { $0.contains(": pending: 1/create items") }.count == 60
                )
                #expect(before.stderr.contains("error: 60 of 60 targets are not at version 3"), "\(before.stderr)")

                let broken = try fleet.target("c2-d3-s2")
                try await Connection.withConnection(broken.url) { conn in
                    try await conn.execute("CREATE SCHEMA t2; CREATE TABLE t2.tags (x int)")
                }
                let run = try await fleet.migrate(["--on-error", "continue", "--parallel", "8"])
                #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
                let rows = try await fleet.targetRows()
                #expect(rows.count == 60)
                #expect(rows.values.filter { $0.state == "succeeded" }.count == 59)
                let failed = try #require(rows[broken.name])
                #expect(failed.state == "failed")
                #expect(failed.applied == [1, 2])
                let error = try #require(failed.error)
                #expect(error.contains("migration 3 failed at"), "\(error)")
                #expect(error.contains("3_create_tags.sql"), "\(error)")
                #expect(error.contains("already exists"), "\(error)")
                #expect(!error.contains("\n"))
                for (name, row) in rows where name != broken.name {
                    #expect(row.applied == [1, 2, 3], "\(name)")
                    #expect(row.attempts == 1, "\(name)")
                }
                #expect(run.stdout.contains("60 targets: 59 succeeded, 1 failed"), "\(run.stdout)")
                #expect(run.stderr.contains("error: run "), "\(run.stderr)")
                #expect(run.stderr.contains("1 of 60 targets did not succeed (failed: c2-d3-s2)"), "\(run.stderr)")
                #expect(try await fleet.ledger(broken) == [1, 2])
                #expect(try await fleet.ledger(fleet.target("c2-d3")) == [1, 2, 3])
                #expect(try await fleet.ledger(fleet.target("c2-d3-s1")) == [1, 2, 3])

                let status = try await fleet.fleet(["status"])
                #expect(status.status == 1)
                #expect(status.stdout.contains("c2-d3-s2"))
                #expect(
                    status.stdout.split(separator: "\n").contains { $0.hasPrefix("c2-d3-s2") && $0.contains("failed") })

                let middle = try await fleet.check()
                #expect(middle.status == 1)
                let lines = middle.stdout.split(separator: "\n")
                #expect(lines.count == 1, "\(middle.stdout)")
                #expect(lines.first?.hasPrefix("c2-d3-s2: pending: 3/create tags") == true, "\(middle.stdout)")

                // The conflict fixed; a database whose every target succeeded refuses connections.
                try await Connection.withConnection(broken.url) { conn in try await conn.execute("DROP TABLE t2.tags") }
                let closed = try fleet.target("c1-d1").database
                try await Connection.withConnection(fleet.clusters[0].url) { admin in
                    try await admin.execute("ALTER DATABASE \(quoteIdentifier(closed)) ALLOW_CONNECTIONS false")
                }
                let (id, _) = try await fleet.latestRun()
                let resumed = try await fleet.fleet(["resume", "\(id)"])
                #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
                #expect(resumed.stderr.contains("resuming 1 of 60 targets (c2-d3-s2)"), "\(resumed.stderr)")
                let after = try await fleet.targetRows()
                #expect(after.values.allSatisfy { $0.state == "succeeded" })
                #expect(after[broken.name]?.attempts == 2)
                #expect(after[broken.name]?.applied == [1, 2, 3])
                #expect(after[broken.name]?.error == nil)
                #expect(after.filter { $0.key != broken.name }.allSatisfy { $0.value.attempts == 1 })
                #expect(try await fleet.latestRun().state == "succeeded")
                #expect(try await fleet.runCount() == 1)

                try await Connection.withConnection(fleet.clusters[0].url) { admin in
                    try await admin.execute("ALTER DATABASE \(quoteIdentifier(closed)) ALLOW_CONNECTIONS true")
                }
                let passed = try await fleet.check()
                #expect(passed.status == 0, "\(passed.stdout)\n\(passed.stderr)")
                #expect(passed.stdout.contains("ok: 60 targets at version 3"))
                let done = try await fleet.fleet(["status", "\(id)"])
                #expect(done.status == 0, "\(done.stdout)\n\(done.stderr)")
                #expect(done.stdout.contains("60 targets: 60 succeeded"))
                // Nothing is left to resume.
                let again = try await fleet.fleet(["resume", "\(id)"])
                #expect(again.status == 0)
                #expect(again.stderr.contains("nothing to resume"))
            }
        }

        /// The first of two canary targets fails: nothing else runs, every other target is
        /// `skipped`, and no other database has a ledger.
        @Test func aFailingCanaryStopsEverything() async throws {
            try await FleetFixture.with(databasesPerCluster: 2, schemasPerDatabase: 1) { fleet in
                let canary = fleet.targets[0]
                try await Connection.withConnection(canary.url) { conn in
                    try await conn.execute("CREATE TABLE public.items (x int)")
                }
                let run = try await fleet.migrate(["--canary", "2", "--on-error", "continue"])
                #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
                let rows = try await fleet.targetRows()
                #expect(rows[canary.name]?.state == "failed")
                let error = rows[canary.name]?.error ?? ""
                #expect(error.contains("migration 1 failed at migrations/1_create_items.sql:1:1: "), "\(error)")
                #expect(rows.count == fleet.targets.count)
                for target in fleet.targets.dropFirst() {
                    #expect(rows[target.name]?.state == "skipped", "\(target.name)")
                    #expect(rows[target.name]?.attempts == 0, "\(target.name)")
                    #expect(try await fleet.ledger(target) == [], "\(target.name)")
                }
                #expect(run.stdout.contains("skipped \(fleet.targets.count - 1):"), "\(run.stdout)")
                #expect(try await fleet.latestRun().state == "failed")
            }
        }

        /// `resume --targets FILE` takes only passwords from the file: a line naming another
        /// connection, or a target the run does not have, is refused with its line and nothing
        /// runs; the same connections with a password resume the run, and no password is stored.
        @Test func resumeTakesOnlyPasswordsFromATargetsFile() async throws {
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 0) { fleet in
                let broken = fleet.targets[1]
                try await Connection.withConnection(broken.url) { conn in
                    try await conn.execute("CREATE TABLE public.tags (x int)")
                }
                let run = try await fleet.migrate(["--on-error", "continue"])
                #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
                try await Connection.withConnection(broken.url) { conn in
                    try await conn.execute("DROP TABLE public.tags")
                }
                let (id, _) = try await fleet.latestRun()
                func withPassword(_ url: String) -> String {
                    url.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:s3cret-resume@")
                }
                var moved = fleet.targets.map { target in
                    FleetFixture.Target(
                        name: target.name, url: withPassword(target.url), schema: target.schema,
                        database: target.database)
                }
                moved[1].url = moved[1].url.replacingOccurrences(of: "/\(broken.database)", with: "/postgres")
                try fleet.writeTargets(moved, to: "moved.txt")
                let refused = try await fleet.fleet(["resume", "\(id)", "--targets", "moved.txt"])
                #expect(refused.status == 1)
                #expect(
                    refused.stderr.hasPrefix(
                        "error: moved.txt:3: target \(broken.name) names another connection or schema than run \(id) recorded"
                    ), "\(refused.stderr)")
                #expect(!refused.stderr.contains("s3cret-resume"))
                let stranger = [
                    FleetFixture.Target(name: "stranger", url: broken.url, schema: nil, database: broken.database)
                ]
                try fleet.writeTargets(stranger, to: "stranger.txt")
                let unknown = try await fleet.fleet(["resume", "\(id)", "--targets", "stranger.txt"])
                #expect(unknown.status == 1)
                #expect(unknown.stderr.hasPrefix("error: stranger.txt:2: target stranger is not one of run \(id)'s"))
                #expect(try await fleet.targetRows()[broken.name]?.attempts == 1)
                #expect(try await fleet.targetRows()[broken.name]?.state == "failed")

                try fleet.writeTargets(
                    fleet.targets.map { target in
                        FleetFixture.Target(
                            name: target.name, url: withPassword(target.url), schema: target.schema,
                            database: target.database)
                    }, to: "passwords.txt")
                let resumed = try await fleet.fleet(["resume", "\(id)", "--targets", "passwords.txt"])
                #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
                #expect(!resumed.stdout.contains("s3cret-resume") && !resumed.stderr.contains("s3cret-resume"))
                let rows = try await fleet.targetRows()
                #expect(rows[broken.name]?.attempts == 2 && rows[broken.name]?.state == "succeeded")
                let stored = try await fleet.withControl { conn in
                    try await conn.query("SELECT string_agg(connection, ' ') AS c FROM godwit.fleet_targets").first?
                        .string("c")
                }
                #expect(stored?.contains("s3cret") == false)
            }
        }

        /// `--strict`: lint's trace flags a pending migration on every target, so each refuses
        /// it in one line naming the file, line and rule, and applies nothing.
        @Test func strictRefusesAFlaggedMigrationOnEveryTarget() async throws {
            let first = ["1_create_items.sql": FleetFixture.migrations["1_create_items.sql"]!]
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 0, migrations: first) { fleet in
                let run = try await fleet.migrate()
                #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
                try fleet.directory.write("migrations/2_index.sql", "CREATE INDEX items_name ON items (name);\n")
                let strict = try await fleet.migrate(["--strict", "--canary", "0", "--on-error", "continue"])
                #expect(strict.status == 1, "\(strict.stdout)\n\(strict.stderr)")
                let rows = try await fleet.targetRows()
                #expect(rows.count == fleet.targets.count)
                for target in fleet.targets {
                    let error = rows[target.name]?.error ?? ""
                    #expect(rows[target.name]?.state == "failed", "\(target.name)")
                    #expect(
                        error.hasPrefix(
                            "--strict: migrate lint flags migrations/2_index.sql:1: non-concurrent-index: "),
                        "\(error)")
                    #expect(error.hasSuffix("; nothing was applied"), "\(error)")
                    #expect(try await fleet.ledger(target) == [1])
                }
            }
        }

        /// `--strict` on schema targets: lint's trace runs each tenant's migrations as its
        /// session will, in its own schema (made first in the scratch database, as the run makes
        /// it) and under its search_path. Every database's `public` has an `items` of its own,
        /// which a trace under the login's search_path would collide with.
        @Test func strictTracesASchemaTargetInItsSchema() async throws {
            let first = ["1_create_items.sql": FleetFixture.migrations["1_create_items.sql"]!]
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 2, migrations: first) { fleet in
                let schemaTargets = fleet.targets.filter { $0.schema != nil }
                #expect(schemaTargets.count == 6)
                for target in fleet.targets where target.schema == nil {
                    try await Connection.withConnection(target.url) { conn in
                        try await conn.execute("CREATE TABLE public.items (other int)")
                    }
                }
                try fleet.writeTargets(schemaTargets, to: "schemas.txt")
                let arguments = ["migrate", "--targets", "schemas.txt", "--source", "migrations", "--strict"]
                let run = try await fleet.fleet(arguments + ["--canary", "0"])
                #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
                for target in schemaTargets { #expect(try await fleet.ledger(target) == [1], "\(target.name)") }

                // The next migration is traced against the tenant's own items (which has a name).
                try fleet.directory.write("migrations/2_index.sql", "CREATE INDEX items_name ON items (name);\n")
                let flagged = try await fleet.fleet(arguments + ["--canary", "0", "--on-error", "continue"])
                #expect(flagged.status == 1)
                let rows = try await fleet.targetRows()
                for target in schemaTargets {
                    let error = rows[target.name]?.error ?? ""
                    #expect(
                        error.hasPrefix(
                            "--strict: migrate lint flags migrations/2_index.sql:1: non-concurrent-index: "),
                        "\(target.name): \(error)")
                }
            }
        }

        /// Targets from `--targets-query` on the control database, and `--on-error stop`: after
        /// the failure no new target starts.
        @Test func targetsFromAQueryAndStopOnError() async throws {
            try await FleetFixture.with(databasesPerCluster: 1, schemasPerDatabase: 2) { fleet in
                try await fleet.withControl { conn in
                    try await conn.execute(
                        "CREATE TABLE public.tenants (name text, url text, schema_name text, pos int)")
                    for (index, target) in fleet.targets.enumerated() {
                        try await conn.query(
                            "INSERT INTO public.tenants VALUES ($1, $2, $3, $4)",
                            [target.name, target.url, target.schema, index])
                    }
                }
                let broken = fleet.targets[1]
                try await Connection.withConnection(broken.url) { conn in
                    try await conn.execute("CREATE SCHEMA t1; CREATE TABLE t1.items (x int)")
                }
                let run = try await fleet.fleet([
                    "migrate", "--targets-query", "SELECT name, url, schema_name FROM tenants ORDER BY pos",
                    "--source", "migrations", "--parallel", "1",
                ])
                #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
                let rows = try await fleet.targetRows()
                #expect(rows[fleet.targets[0].name]?.state == "succeeded")
                #expect(rows[broken.name]?.state == "failed")
                let rest = fleet.targets.dropFirst(2)
                #expect(rest.allSatisfy { rows[$0.name]?.state == "skipped" }, "\(rows)")
                #expect(
                    try await fleet.withControl { conn in
                        try await conn.query("SELECT targets_origin FROM godwit.fleet_runs").first?.string(
                            "targets_origin")
                    } == "--targets-query")
            }
        }
    }
}
