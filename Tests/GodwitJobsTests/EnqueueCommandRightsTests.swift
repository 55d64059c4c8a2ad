import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

/// `godwit job enqueue` needs no more than `grant_enqueue` once the queue schema is there, and
/// where it is not, says who can install it.
@Suite("godwit job enqueue with an enqueuer's rights")
struct EnqueueCommandRightsTests {
    @Test func aRoleWithOnlyGrantEnqueueEnqueuesThroughTheCLI() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withEnqueuer { db, admin, low in
            // The application's own rights on its table, which the job runs with; nothing on
            // the database or on schema godwit beyond grant_enqueue.
            try await admin.execute(
                """
                CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
                INSERT INTO items (id) SELECT generate_series(1, 100);
                GRANT SELECT, UPDATE ON items TO \(low.quoted);
                """)
            let output = try await GodwitCommand.run(["job", "enqueue", try counterJob(dir), "-D", try low.url(db)])
            #expect(output.status == 0, "\(output.stderr)")
            let id = try #require(
                Int64(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(output.stdout)")
            let row = try #require(
                try await admin.query(
                    "SELECT kind::text AS k, enqueued_by::text AS r FROM godwit.jobs WHERE id = $1", [id]
                ).first)
            #expect(try row.string("k") == "batched")
            #expect(try row.string("r") == low.name)
            #expect(!output.stderr.contains(low.password))
        }
    }

    @Test func withoutTheSchemaARoleThatMayNotCreateItIsToldWhoCan() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withRoles(["nobody"]) { roles in
            let nobody = roles[0]
            try await withTestDatabase { db in
                let admin = try await db.connect()
                try await admin.execute("CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0)")
                let output = try await GodwitCommand.run(
                    ["job", "enqueue", try counterJob(dir), "-D", try nobody.url(db)])
                #expect(output.status == 1)
                #expect(output.stdout.isEmpty)
                #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
                #expect(
                    output.stderr.hasPrefix(
                        "error: the job queue's schema \"godwit\" is not installed in this database, and role \"\(nobody.name)\" may not create it: start `godwit worker` once against this database"
                    ), "\(output.stderr)")
                #expect(!output.stderr.contains(nobody.password))
                let schema = try await admin.query("SELECT to_regnamespace('godwit') IS NOT NULL AS present").first
                #expect(try schema?.bool("present") == false)
                await admin.close()
            }
        }
    }
}
