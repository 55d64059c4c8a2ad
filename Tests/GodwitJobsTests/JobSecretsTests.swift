import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A reader (`grant_read`) sees progress, names, states and errors, never a job's payload, its
/// result or the server's DETAIL of its error, which may quote rows of tables the reader cannot
/// SELECT. Those go to the job's enqueuer, the controllers and the owner.
@Suite("What a reader of the queue cannot see", .serialized)
struct JobSecretsTests {
    @Test func payloadsResultsAndErrorDetailsGoOnlyToTheEnqueuerControllersAndOwner() async throws {
        try await withRoles(["reader", "enqueuer", "controller"]) { roles in
            let (reader, enqueuer, controller) = (roles[0], roles[1], roles[2])
            try await withQueue { db, admin, queue in
                try await admin.execute(
                    """
                    CREATE TABLE secrets (id int PRIMARY KEY, v text NOT NULL CHECK (length(v) < 20));
                    INSERT INTO secrets VALUES (10, 'secret-10');
                    INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at)
                    VALUES ('/srv/app-1.dump', 1024, 'ab', 'app', now());
                    """)
                try await admin.query("SELECT godwit.grant_read($1::regrole)", [reader.name])
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [enqueuer.name])
                try await admin.query("SELECT godwit.grant_control($1::regrole)", [controller.name])
                // The owner's job fails with "Failing row contains (10, secret-10...)" as DETAIL.
                let failing = try await enqueueSQL(
                    "UPDATE secrets SET v = v || repeat('x', 30)", name: "grow the secret", on: admin)
                let asEnqueuer = try await enqueuer.connect(db)
                let scripted = try await enqueueSQL(
                    "SELECT 'CREATE ROLE x PASSWORD hunter2' AS s", name: "a script with a password", on: asEnqueuer)
                try await drain(db)
                let failed = try #require(try await queue.find(failing, on: admin))
                #expect(failed.state == .failed)
                #expect(failed.lastError?.contains("violates check constraint") == true, "\(failed.lastError ?? "")")
                #expect(failed.lastError?.contains("secret-10") == false, "\(failed.lastError ?? "")")
                #expect(failed.lastErrorDetail?.contains("secret-10") == true, "\(failed.lastErrorDetail ?? "")")

                let read = try await reader.connect(db)
                for column in ["payload", "result", "last_error_detail", "*"] {
                    await #expect(throws: PostgresError.self, "\(column)") {
                        try await read.query("SELECT \(column) FROM godwit.jobs")
                    }
                }
                #expect(try await read.query("SELECT count(*) AS n FROM godwit.job_details").first?.int("n") == 0)
                let seenByReader = try await queue.list(on: read)
                #expect(seenByReader.count == 2)
                for job in seenByReader {
                    #expect(job.payload == nil && job.result == nil && job.lastErrorDetail == nil, "job \(job.id)")
                    #expect(job.lastError?.contains("secret-10") != true)
                }
                let progressErrors = try await read.query(
                    "SELECT coalesce(string_agg(last_error, ' '), '') AS e FROM godwit.progress"
                )
                .first!.string("e")
                #expect(!progressErrors.contains("secret-10") && !progressErrors.isEmpty)
                let batchErrors = try await read.query(
                    "SELECT count(*) AS n FROM godwit.batches WHERE error LIKE '%secret-10%'")
                #expect(try batchErrors.first!.int("n") == 0)
                // Nor where backups are: that is for controllers and the owner, like a result.
                await #expect(throws: PostgresError.self) { try await read.query("SELECT file FROM godwit.backups") }
                #expect(try await read.query("SELECT count(*) AS n FROM godwit.backups").first?.int("n") == 1)
                #expect(try await read.query("SELECT count(*) AS n FROM godwit.backup_files").first?.int("n") == 0)
                await read.close()

                // The enqueuer sees its own job's payload and result, and nothing of the owner's.
                let own = try await queue.list(on: asEnqueuer)
                #expect(own.first { $0.id == scripted }?.payload != nil)
                #expect(own.first { $0.id == scripted }?.result != nil)
                #expect(own.first { $0.id == failing }?.payload == nil)
                #expect(own.first { $0.id == failing }?.lastErrorDetail == nil)
                await asEnqueuer.close()

                // A controller, who may retry any job, sees everything.
                let control = try await controller.connect(db)
                #expect(
                    try await control.query("SELECT file FROM godwit.backup_files").first?.string("file")
                        == "/srv/app-1.dump")
                let all = try await queue.list(on: control)
                #expect(all.allSatisfy { $0.payload != nil }, "\(all.map(\.id))")
                #expect(all.first { $0.id == failing }?.lastErrorDetail?.contains("secret-10") == true)
                await control.close()
            }
        }
    }
}
