import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// The changes' part installs over the queue's, the backups' and the jobs' parts, and the
/// `changes` view has the columns the issue names, readable by a role with the schema's read
/// rights but not its tables.
@Suite("The changes' schema part")
struct ChangesSchemaTests {
    @Test func installsWithTheQueueAndShowsTheNamedColumns() async throws {
        try await withTestDatabase { database in
            let conn = try await database.connect()
            try await QueueSchema.withChanges().install(on: conn)
            // A second install (another worker starting) changes nothing and does not fail.
            try await QueueSchema.withChanges().install(on: conn)
            let columns = try await conn.query(
                """
                SELECT attname FROM pg_attribute
                WHERE attrelid = 'godwit.changes'::regclass AND attnum > 0 ORDER BY attnum
                """
            ).rows.map { try $0.string("attname") }
            for name in [
                "name", "table", "phase", "rows_done", "rows_total", "disagreeing_rows", "ready", "blocked_by",
            ] {
                #expect(columns.contains(name), "godwit.changes lacks \(name): \(columns)")
            }
            let owners = try await conn.query("SELECT DISTINCT owner FROM godwit.schema_version").rows.map {
                try $0.string("owner")
            }
            #expect(owners.contains("changes"), "\(owners)")
        }
    }
}
