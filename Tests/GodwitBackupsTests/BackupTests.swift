import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("godwit backup")
struct BackupTests {
    func checksums(_ conn: Connection) async throws -> [String: String] {
        var sums: [String: String] = [:]
        for table in ["tenants", "media", "_sqlx_migrations"] {
            let row = try await conn.query(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS s FROM \(table) t"
            ).first!
            sums[table] = try row.string("s")
        }
        return sums
    }

    @Test func aBackupRoundTripRestoresIdenticalDataAndRemovesLaterObjects() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withTestDatabase { db in
            #expect(try await GodwitProcess.run(["migrate", "run", "-D", db.url]).status == 0)
            let conn = try await db.connect()
            try await conn.execute(
                """
                INSERT INTO tenants (slug, name) SELECT 'tenant-' || g, 'Tenant ' || g FROM generate_series(1, 20) g;
                INSERT INTO media (tenant_id, kind, filename, content_type, size_bytes, storage_key, metadata)
                SELECT 1 + g % 20, 'image', 'f' || g, 'image/png', g, 'k' || g, jsonb_build_object('title', 't' || g)
                FROM generate_series(1, 3000) g;
                """)
            let before = try await checksums(conn)
            let created = try await GodwitProcess.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            #expect(file.hasPrefix(dir.path + "/backup-") && file.hasSuffix(".dump"))
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let listed = try await GodwitProcess.run(["backup", "list", "--dir", dir.path, "-D", db.url])
            #expect(listed.stdout.contains(file))

            // Damage: drop a table's data, change rows, add an object after the backup.
            try await conn.execute(
                """
                DELETE FROM media WHERE id IN (SELECT id FROM media LIMIT 1000);
                UPDATE tenants SET name = 'changed';
                CREATE TABLE after_backup (id int);
                DROP TABLE webhooks;
                """)
            #expect(try await checksums(conn) != before)
            let restored = try await GodwitProcess.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 0, "\(restored.stderr)")
            await conn.close()
            let fresh = try await db.connect()
            #expect(try await checksums(fresh) == before)
            #expect(try await fresh.query("SELECT to_regclass('after_backup') IS NULL AS gone").first?.bool("gone") == true)
            #expect(try await fresh.query("SELECT to_regclass('webhooks') IS NOT NULL AS back").first?.bool("back") == true)
            // The restored schema works: its triggers and defaults are there.
            try await fresh.execute("INSERT INTO tenants (slug, name) VALUES ('after-restore', 'x')")
            // Godwit's own records survive the restore.
            #expect(try await fresh.query("SELECT count(*) AS n FROM godwit.backups").first?.int("n") == 1)
            await fresh.close()
        }
    }

    @Test func aCorruptFileFailsVerification() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("backup-broken.dump", "PGDMP this is not a dump")
        let output = try await GodwitProcess.run(["backup", "verify", path])
        #expect(output.status == 1)
        #expect(output.stderr.hasPrefix("error: backup \(path) failed verification"), "\(output.stderr)")
    }
}
