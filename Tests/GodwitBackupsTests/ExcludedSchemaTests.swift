import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Testing

/// Godwit's schema is left out of every backup by name: exactly that schema, whatever its name
/// means to a `pg_dump` pattern.
@Suite("backups leave out exactly Godwit's schema")
struct ExcludedSchemaTests {
    /// Schemas of the application, each one a pattern made of a queue schema's name would catch
    /// (`Gw` folds to `gw`, `gw*` and `g?w` are wildcards).
    static let applicationSchemas = ["public", "gw", "gwapp", "gaw", "a", "b"]

    @Test(arguments: ["Gw", "gw*", "a.b", "g?w", #"we"ird$|x"#])
    func onlyTheQueueSchemaIsLeftOut(_ queueSchema: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await BackupManager(directory: "/tmp", schema: queueSchema).installSchema(on: conn)
            for schema in Self.applicationSchemas {
                try await conn.execute(
                    """
                    CREATE SCHEMA IF NOT EXISTS \(quoteIdentifier(schema));
                    CREATE TABLE \(quoteIdentifier(schema)).t (id int);
                    INSERT INTO \(quoteIdentifier(schema)).t VALUES (1);
                    """)
            }
            let manager = BackupManager(directory: dir.path, schema: queueSchema)
            let backup = try await manager.create(databaseURL: db.url, reason: BackupReason.byHand, on: conn)
            let objects = try await manager.contents(of: backup.file)
            for schema in Self.applicationSchemas {
                #expect(objects.contains("TABLE \(schema) t"), "\(schema) is missing from \(objects)")
            }
            #expect(!objects.contains { $0.hasPrefix("TABLE \(queueSchema) ") }, "\(objects)")
            await conn.close()
        }
    }
}
