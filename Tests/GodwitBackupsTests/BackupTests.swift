import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Synchronization
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
            #expect(try await GodwitCommand.run(["migrate", "run", "-D", db.url]).status == 0)
            let conn = try await db.connect()
            try await conn.execute(
                """
                INSERT INTO tenants (slug, name) SELECT 'tenant-' || g, 'Tenant ' || g FROM generate_series(1, 20) g;
                INSERT INTO media (tenant_id, kind, filename, content_type, size_bytes, storage_key, metadata)
                SELECT 1 + g % 20, 'image', 'f' || g, 'image/png', g, 'k' || g, jsonb_build_object('title', 't' || g)
                FROM generate_series(1, 3000) g;
                """)
            let before = try await checksums(conn)
            let created = try await GodwitCommand.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            #expect(file.hasPrefix(dir.path + "/backup-") && file.hasSuffix(".dump"))
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let listed = try await GodwitCommand.run(["backup", "list", "--dir", dir.path, "-D", db.url])
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
            let restored = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 0, "\(restored.stderr)")
            await conn.close()
            let fresh = try await db.connect()
            #expect(try await checksums(fresh) == before)
            #expect(
                try await fresh.query("SELECT to_regclass('after_backup') IS NULL AS gone").first?.bool("gone") == true)
            #expect(
                try await fresh.query("SELECT to_regclass('webhooks') IS NOT NULL AS back").first?.bool("back") == true)
            // The restored schema works: its triggers and defaults are there.
            try await fresh.execute("INSERT INTO tenants (slug, name) VALUES ('after-restore', 'x')")
            // Godwit's own records survive the restore.
            #expect(try await fresh.query("SELECT count(*) AS n FROM godwit.backups").first?.int("n") == 1)
            await fresh.close()
        }
    }

    @Test func aRelativeBackupFolderIsRecordedAndPrintedAsAnAbsolutePath() async throws {
        let work = try TemporaryDirectory()
        defer { work.delete() }
        try await withTestDatabase { db in
            let created = try await GodwitCommand.run(
                ["backup", "create", "--dir", "nested/../backups", "-D", db.url], directory: work.path)
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            #expect(file.hasPrefix("/"), "\(file)")
            #expect(!file.contains("/../") && !file.contains("/./"), "\(file)")
            let folder = URL(fileURLWithPath: work.path).appendingPathComponent("backups").resolvingSymlinksInPath()
                .path
            #expect(URL(fileURLWithPath: file).deletingLastPathComponent().resolvingSymlinksInPath().path == folder)
            let conn = try await db.connect()
            #expect(
                try await conn.query("SELECT file FROM godwit.backups").rows.map { try $0.string("file") } == [file])
            await conn.close()
            // verify, from another folder, finds its record by that name.
            let verified = try await GodwitCommand.run(["backup", "verify", file, "-D", db.url])
            #expect(verified.stdout.contains("matches the one recorded"), "\(verified.stdout)\(verified.stderr)")
        }
    }

    @Test func aRelativePathIsMadeAbsoluteAgainstTheWorkingDirectory() {
        let manager = BackupManager(directory: "some/./backups/")
        #expect(manager.directory == FileManager.default.currentDirectoryPath + "/some/backups")
        #expect(BackupManager(directory: "/srv/backups").directory == "/srv/backups")
        let elsewhere = BackupManager(directory: "some/../backups", workingDirectory: WorkingDirectory("/srv/app"))
        #expect(elsewhere.directory == "/srv/app/backups")
        #expect(
            BackupManager(directory: "/srv/backups", workingDirectory: WorkingDirectory("/srv/app")).directory
                == "/srv/backups")
    }

    @Test func theRestoreCommandQuotesAPathThatNeedsIt() {
        var backup = Backup(
            file: "/srv/backups/backup-1.dump", sizeBytes: 1, sha256: "", database: "", entries: 0, dataBlocks: 0,
            createdAt: "")
        #expect(backup.restoreCommand == "godwit backup restore /srv/backups/backup-1.dump --yes")
        backup.file = "/srv/o'neil backups/backup-1.dump"
        #expect(backup.restoreCommand == #"godwit backup restore '/srv/o'\''neil backups/backup-1.dump' --yes"#)
    }

    @Test func aCorruptFileFailsVerification() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let path = try dir.write("backup-broken.dump", "PGDMP this is not a dump")
        let output = try await GodwitCommand.run(["backup", "verify", path])
        #expect(output.status == 1)
        #expect(output.stderr.hasPrefix("error: backup \(path) failed verification"), "\(output.stderr)")
    }
}

/// Records every file and folder that appears under `path` while `body` runs, with its mode,
/// looking every millisecond or so from a thread of its own: a task on the cooperative pool,
/// which the tests running beside this one share, could go unscheduled for as long as a
/// program's private folder lives.
func watchingDirectory<T: Sendable>(
    _ path: String, _ body: () async throws -> T
) async throws -> (result: T, seen: [String: Int]) {
    let watch = Mutex((seen: [String: Int](), stop: false))
    let watcher = Thread {
        while !watch.withLock({ $0.stop }) {
            for entry in (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? [] {
                let full = (path as NSString).appendingPathComponent(entry)
                if let mode = (try? FileManager.default.attributesOfItem(atPath: full))?[.posixPermissions] as? Int {
                    watch.withLock { $0.seen[entry] = ($0.seen[entry] ?? 0) | mode }
                }
            }
            usleep(1000)
        }
    }
    watcher.start()
    // The thread ends at its next look; what it saw until now is the answer.
    defer { watch.withLock { $0.stop = true } }
    let result = try await body()
    return (result, watch.withLock { $0.seen })
}

@Suite("godwit backup restore")
struct RestoreTests {
    @Test func aRestoreWritesNothingOthersCanReadAndLeavesNothingBehind() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        let tmp = try TemporaryDirectory(prefix: "godwit-tmpdir")
        defer { tmp.delete() }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            try await conn.execute(
                """
                CREATE TABLE secrets (id int PRIMARY KEY, value text);
                INSERT INTO secrets SELECT g, md5(g::text) || md5((-g)::text) FROM generate_series(1, 60000) g;
                """)
            let environment = ["TMPDIR": tmp.path]
            let (created, seenCreating) = try await watchingDirectory(tmp.path) {
                try await GodwitCommand.run(
                    ["backup", "create", "--dir", dir.path, "-D", db.url], environment: environment)
            }
            #expect(created.status == 0, "\(created.stderr)")
            let file = String(created.stdout.split(separator: " ").first ?? "")
            try await conn.execute("UPDATE secrets SET value = 'changed'")

            let (restored, seenRestoring) = try await watchingDirectory(tmp.path) {
                try await GodwitCommand.run(
                    ["backup", "restore", file, "--yes", "-D", db.url], environment: environment)
            }
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(
                try await conn.query("SELECT count(*) AS n FROM secrets WHERE value = 'changed'").first?.int("n") == 0)

            // The programs' private folders were made under the TMPDIR given to the command.
            #expect(seenCreating.keys.contains { $0.hasPrefix("godwit-") }, "\(seenCreating)")
            for (entry, mode) in seenCreating.merging(seenRestoring, uniquingKeysWith: |) {
                #expect(mode & 0o077 == 0, "\(entry) in TMPDIR had mode \(String(mode, radix: 8))")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path) == [], "left behind in TMPDIR")
            await conn.close()
        }
    }

    @Test func aRestoreThatFailsAfterLoadingTheDataChangesNothing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withTestDatabase { db in
            let conn = try await db.connect()
            // The backup's table refers to a row of Godwit's schema (a backup's record; `backup
            // list` installs that table alone): the schema is not restored, so the foreign key
            // can only be re-created, after the data, if the row is still there.
            let created = try await GodwitCommand.run(["backup", "list", "-D", db.url])
            #expect(created.status == 0, "\(created.stderr)")
            try await conn.execute(
                """
                INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at)
                VALUES ('referenced', 0, '', '', now());
                CREATE TABLE refs (id int PRIMARY KEY, backup_id bigint REFERENCES godwit.backups (id));
                INSERT INTO refs SELECT g, (SELECT min(id) FROM godwit.backups) FROM generate_series(1, 1000) g;
                CREATE TABLE kept (label text);
                INSERT INTO kept VALUES ('before the backup');
                """)
            let backup = try await GodwitCommand.run(["backup", "create", "--dir", dir.path, "-D", db.url])
            #expect(backup.status == 0, "\(backup.stderr)")
            let file = String(backup.stdout.split(separator: " ").first ?? "")
            try await conn.execute(
                """
                DROP TABLE refs;
                DELETE FROM godwit.backups WHERE file = 'referenced';
                UPDATE kept SET label = 'after the backup';
                CREATE TABLE later (id int);
                """)

            let restored = try await GodwitCommand.run(["backup", "restore", file, "--yes", "-D", db.url])
            #expect(restored.status == 1)
            #expect(
                restored.stderr.hasPrefix(
                    "error: restore of \(file) failed (nothing was changed): psql exited with status 3:"),
                "\(restored.stderr)")
            #expect(restored.stderr.contains("violates foreign key constraint"), "\(restored.stderr)")
            #expect(restored.stderr.split(separator: "\n").count == 1)
            // Everything is as it was before the restore.
            #expect(try await conn.query("SELECT label FROM kept").first?.string("label") == "after the backup")
            #expect(
                try await conn.query("SELECT to_regclass('later') IS NOT NULL AS present").first?.bool("present")
                    == true)
            #expect(try await conn.query("SELECT to_regclass('refs') IS NULL AS absent").first?.bool("absent") == true)
            await conn.close()
        }
    }
}
